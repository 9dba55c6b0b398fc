"""A job as the worker runs it: the protocol's JobRequest, parsed and validated once, then immutable.

The wire names are the protocol's (camelCase, ``openapi/worker.v1.json``); the Python names are their
snake_case twins. Validation follows the JSON schema exactly (ranges, enums, no unknown fields, JSON types:
``"128"`` is not a number) and adds what the schema cannot say or the worker cannot do otherwise:

- the seed, a decimal string so that no JSON number rounds it, must fit in 64 bits;
- width and height must be multiples of 8, the VAE's stride (the gateway sends multiples of 64);
- an embedding URL must be absolute http(s), the only kind the worker can download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from .conditioning_types import Family, Placement
from .errors import InvalidJob
from .prompt_weighting import PromptWeighting

MAX_SEED = (1 << 64) - 1
OutputFormat = Literal["PNG", "JPG", "WEBP"]
#: The encoder quality of JPG and WEBP when a job names none (protocol v1, capability ``outputQuality``).
DEFAULT_OUTPUT_QUALITY = 95

#: The optional protocol features this worker has, as its health report advertises them. It has no NSFW
#: classifier, so a job with ``checkNSFW`` is refused as a field it does not know.
CAPABILITIES = ("outputQuality", "promptWeighting", "embeddingMentions", "loras")
#: LoRA weights, as Runware's (a negative weight pushes the style away).
LORA_WEIGHT_LIMIT = 4
#: Room for a marker ``<embedding:AIR>`` around the longest AIR (300); bounds the matcher's work.
MAX_MENTION_LENGTH = 320
MAX_MENTIONS = 16


@dataclass(frozen=True)
class ModelRef:
    air: str
    #: Any family a worker may serve (`sd1`, `sdxl`, `flux`, …); the registry decides whether it is served here.
    family: str


@dataclass(frozen=True)
class JobEmbedding:
    air: str
    sha256: str
    url: str
    #: Emphasis, always >= 0: the sign of the client's weight became ``placement``.
    weight: float
    placement: Placement
    vectors: int
    family: Family
    #: Words of the embedding's side's prompt that stand for it (capability ``embeddingMentions``).
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobLora:
    air: str
    #: SHA-256 of the file at ``url``, as the registry lists it: the download is verified against it.
    sha256: str
    url: str
    size_bytes: int
    weight: float
    family: str


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    model: ModelRef
    positive_prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    cfg_scale: float
    #: The first image's seed; image i uses (seed + i) mod 2^64.
    seed: int
    scheduler: str
    clip_skip: int
    number_results: int
    output_format: OutputFormat
    embeddings: tuple[JobEmbedding, ...]
    #: JPG and WEBP encoder quality, 20-99.
    output_quality: int = DEFAULT_OUTPUT_QUALITY
    #: None: the prompts are text (capability ``promptWeighting``).
    prompt_weighting: PromptWeighting | None = None
    #: Capability ``loras``: adapters applied to the UNet and text encoder(s) for this job only.
    loras: tuple[JobLora, ...] = ()
    #: The W3C trace id of the request's ``traceparent`` header (not of the body), for the job's log lines.
    trace_id: str | None = None

    @property
    def log_name(self) -> str:
        """The job as its log lines name it: its id, and its trace when the gateway sent one."""
        return self.job_id if self.trace_id is None else f"{self.job_id} [trace {self.trace_id}]"


def parse_job(body: bytes | str) -> JobSpec:
    """The JobSpec of a POST /v1/jobs body; InvalidJob (400) naming each offending field otherwise."""
    try:
        request = _JobRequest.model_validate_json(body)
    except ValidationError as error:
        raise InvalidJob(f"Not a JobRequest: {describe_issues(error)}") from None
    return request.to_spec()


def describe_issues(error: ValidationError, limit: int = 5) -> str:
    """The first few problems as `path: message`, the same shape as the gateway's fake worker reports."""
    issues = error.errors(include_url=False)
    parts = [f"{'.'.join(str(part) for part in issue['loc']) or '(body)'}: {issue['msg']}" for issue in issues[:limit]]
    if len(issues) > limit:
        parts.append(f"and {len(issues) - limit} more")
    return "; ".join(parts)


def _integral(value: object) -> object:
    """JSON Schema counts 2.0 as an integer; strict pydantic would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: An integer the JSON Schema way: 2 and 2.0, never "2" or true.
JsonInt = Annotated[int, BeforeValidator(_integral)]


# Pydantic models mirror the JSON schema field for field; strict mode keeps "128" from passing as 128.
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _ModelRef(_Strict):
    air: str
    family: Annotated[str, Field(min_length=1)]


class _JobEmbedding(_Strict):
    air: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    url: str
    weight: Annotated[float, Field(ge=0, le=4, allow_inf_nan=False)]
    placement: Placement
    vectors: Annotated[JsonInt, Field(ge=1, le=75)]
    family: Family
    mentions: Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_MENTION_LENGTH)]], Field(max_length=MAX_MENTIONS)] = []

    @field_validator("url")
    @classmethod
    def _fetchable(cls, url: str) -> str:
        return _fetchable_url(url)


def _fetchable_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an absolute http(s) URL; found {url!r}")
    return url


class _JobLora(_Strict):
    air: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    url: str
    sizeBytes: Annotated[JsonInt, Field(ge=1)]
    weight: Annotated[float, Field(ge=-LORA_WEIGHT_LIMIT, le=LORA_WEIGHT_LIMIT, allow_inf_nan=False)]
    family: Annotated[str, Field(min_length=1)]

    @field_validator("url")
    @classmethod
    def _fetchable(cls, url: str) -> str:
        return _fetchable_url(url)


class _JobRequest(_Strict):
    jobId: Annotated[str, Field(min_length=1, max_length=128)]
    model: _ModelRef
    positivePrompt: str
    negativePrompt: str
    # Multiples of 8 on top of the schema: the VAE cannot do otherwise (the gateway sends multiples of 64).
    width: Annotated[JsonInt, Field(ge=128, le=2048, multiple_of=8)]
    height: Annotated[JsonInt, Field(ge=128, le=2048, multiple_of=8)]
    steps: Annotated[JsonInt, Field(ge=1, le=100)]
    cfgScale: Annotated[float, Field(ge=0, le=30, allow_inf_nan=False)]
    seed: Annotated[str, Field(pattern=r"^\d{1,20}$")]
    scheduler: str
    clipSkip: Annotated[JsonInt, Field(ge=0, le=2)]
    numberResults: Annotated[JsonInt, Field(ge=1, le=20)]
    outputFormat: OutputFormat
    outputQuality: Annotated[JsonInt, Field(ge=20, le=99)] = DEFAULT_OUTPUT_QUALITY
    promptWeighting: PromptWeighting | None = None
    embeddings: list[_JobEmbedding]
    loras: list[_JobLora] = []

    @field_validator("seed")
    @classmethod
    def _fits_64_bits(cls, seed: str) -> str:
        if int(seed) > MAX_SEED:
            raise ValueError(f"expected an unsigned 64-bit seed (at most {MAX_SEED}); found {seed}")
        return seed

    def to_spec(self) -> JobSpec:
        return JobSpec(
            job_id=self.jobId,
            model=ModelRef(air=self.model.air, family=self.model.family),
            positive_prompt=self.positivePrompt,
            negative_prompt=self.negativePrompt,
            width=self.width,
            height=self.height,
            steps=self.steps,
            cfg_scale=self.cfgScale,
            seed=int(self.seed),
            scheduler=self.scheduler,
            clip_skip=self.clipSkip,
            number_results=self.numberResults,
            output_format=self.outputFormat,
            output_quality=self.outputQuality,
            prompt_weighting=self.promptWeighting,
            embeddings=tuple(
                JobEmbedding(
                    air=item.air,
                    sha256=item.sha256,
                    url=item.url,
                    weight=item.weight,
                    placement=item.placement,
                    vectors=item.vectors,
                    family=item.family,
                    mentions=tuple(item.mentions),
                )
                for item in self.embeddings
            ),
            loras=tuple(
                JobLora(air=item.air, sha256=item.sha256, url=item.url, size_bytes=item.sizeBytes, weight=item.weight, family=item.family)
                for item in self.loras
            ),
        )
