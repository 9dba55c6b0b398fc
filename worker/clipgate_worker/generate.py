"""One job's generation: the conditioning with embeddings, the diffusion loop, the encoded images."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .conditioning_types import Family, LoadedEmbedding, PlacedEmbedding
from .lora_adapters import LoraAdapters, PlacedLora
from .schedulers import scheduler_for
from .text_conditioning import TextConditioner

from .job_spec import DEFAULT_OUTPUT_QUALITY

if TYPE_CHECKING:
    from .job_spec import JobSpec

SEED_MASK = (1 << 64) - 1
_PIL_FORMATS = {"PNG": "PNG", "JPG": "JPEG", "WEBP": "WEBP"}


@dataclass(frozen=True)
class GeneratedImage:
    seed: int
    format: str
    data: bytes


class Generator:
    """Runs jobs on one loaded pipeline. Not thread-safe: the job queue runs one job at a time per device."""

    def __init__(self, pipeline: Any, family: Family, device: torch.device) -> None:
        self.pipeline = pipeline
        self.family = family
        self.device = device
        self.conditioner = TextConditioner(pipeline, family)
        self.loras = LoraAdapters(pipeline)
        self._default_scheduler = pipeline.scheduler

    def check_compatible(self, embedding: LoadedEmbedding) -> None:
        self.conditioner.check_compatible(embedding)

    def run(
        self, job: JobSpec, embeddings: list[PlacedEmbedding], on_step: Callable[[int, int], None], loras: Sequence[PlacedLora] = ()
    ) -> list[GeneratedImage]:
        # First: a LoRA on the text encoders changes the conditioning, and the previous job's must be gone.
        self.loras.activate(list(loras))
        conditioning = self.conditioner.encode(job.positive_prompt, job.negative_prompt, embeddings, job.clip_skip, job.prompt_weighting)
        self.pipeline.scheduler = scheduler_for(job.scheduler, self._default_scheduler)
        seeds = [(job.seed + index) & SEED_MASK for index in range(job.number_results)]
        # CPU generators: the same seed gives the same noise on any device.
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]

        def step_end(_pipeline: Any, step: int, _timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            on_step(step + 1, job.steps)
            return callback_kwargs

        extra: dict[str, Any] = {}
        if conditioning.pooled_prompt_embeds is not None:
            extra["pooled_prompt_embeds"] = conditioning.pooled_prompt_embeds
            extra["negative_pooled_prompt_embeds"] = conditioning.negative_pooled_prompt_embeds
        with torch.inference_mode():
            output = self.pipeline(
                prompt_embeds=conditioning.prompt_embeds,
                negative_prompt_embeds=conditioning.negative_prompt_embeds,
                num_inference_steps=job.steps,
                guidance_scale=job.cfg_scale,
                width=job.width,
                height=job.height,
                num_images_per_prompt=job.number_results,
                generator=generators,
                callback_on_step_end=step_end,
                output_type="pil",
                **extra,
            )
        return [
            GeneratedImage(seed=seed, format=job.output_format, data=encode_image(image, job.output_format, job.output_quality))
            for seed, image in zip(seeds, output.images)
        ]


def encode_image(image: Any, output_format: str, quality: int = DEFAULT_OUTPUT_QUALITY) -> bytes:
    """PNG is lossless; JPG and WEBP take the job's quality (capability ``outputQuality``)."""
    buffer = io.BytesIO()
    image.save(buffer, format=_PIL_FORMATS[output_format], **({"quality": quality} if output_format in ("JPG", "WEBP") else {}))
    return buffer.getvalue()
