"""The models this worker serves: AIR → family, and a lazily loaded pipeline with its Generator.

Weights load on a model's first job, on the job thread (the only thread that does torch work). At most
``max_loaded`` pipelines stay resident, least recently used first out: a model swap costs seconds, which is
why health reports which models are ``loaded`` and the gateway prefers a worker that has the model already.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from .conditioning_types import Family, LoadedEmbedding, PlacedEmbedding
from .errors import UnknownModel
from .settings import ModelSource, Settings

if TYPE_CHECKING:
    from .job_queue import JobControl
    from .job_spec import JobSpec
    from .lora_adapters import PlacedLora

logger = logging.getLogger(__name__)


class EncodedImage(Protocol):
    """One output image (generate.GeneratedImage has this shape)."""

    @property
    def seed(self) -> int: ...
    @property
    def format(self) -> str: ...
    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True)
class BatchJob:
    """A job of a batch, as a generator takes it: its spec, its placed embeddings, its own progress and cancellation."""

    job: JobSpec
    embeddings: list[PlacedEmbedding]
    control: JobControl


class ImageGenerator(Protocol):
    """What the job runner needs of a loaded model (generate.Generator has this shape)."""

    def check_compatible(self, embedding: LoadedEmbedding) -> None: ...

    def run(
        self, job: JobSpec, embeddings: list[PlacedEmbedding], on_step: Callable[[int, int], None], loras: Sequence[PlacedLora] = ()
    ) -> Sequence[EncodedImage]: ...

    def run_batch(self, batch: Sequence[BatchJob], loras: Sequence[PlacedLora] = ()) -> Sequence[Sequence[EncodedImage] | Exception]:
        """Each job's images or the error that ended it alone, in batch order; raises what ends them all."""
        ...


PipelineLoader = Callable[[ModelSource], Any]
GeneratorFactory = Callable[[Any, Family, torch.device], ImageGenerator]


@dataclass(frozen=True)
class ServedModel:
    air: str
    family: Family
    loaded: bool


class ModelRegistry:
    def __init__(
        self,
        sources: Sequence[ModelSource],
        device: torch.device,
        load_pipeline: PipelineLoader,
        make_generator: GeneratorFactory | None = None,
        max_loaded: int = 2,
    ) -> None:
        self._sources = {source.air: source for source in sources}
        self._device = device
        self._load_pipeline = load_pipeline
        self._make_generator = make_generator or _real_generator
        self._max_loaded = max_loaded
        self._loaded: OrderedDict[str, ImageGenerator] = OrderedDict()
        # Guards _loaded: health reads it on the event loop while the job thread loads and evicts.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, make_generator: GeneratorFactory | None = None) -> ModelRegistry:
        def load(source: ModelSource) -> Any:
            return load_pipeline(source, tiny=settings.tiny, dtype=settings.dtype)

        return cls(settings.models, settings.device, load, make_generator, settings.max_loaded_models)

    def family_of(self, air: str) -> Family | None:
        source = self._sources.get(air)
        return source.family if source else None

    @property
    def max_loaded(self) -> int:
        """Pipelines kept loaded at once (WORKER_MAX_LOADED_MODELS): loading one more evicts the least recently used."""
        return self._max_loaded

    def served(self) -> list[ServedModel]:
        with self._lock:
            loaded = set(self._loaded)
        return [ServedModel(air, source.family, air in loaded) for air, source in self._sources.items()]

    def families(self) -> list[Family]:
        return list(dict.fromkeys(source.family for source in self._sources.values()))

    def generator_for(self, air: str) -> ImageGenerator:
        """The model's Generator, loading it (and evicting the least recently used) if needed.

        Call from the job thread only: loading is torch work and is not meant to run twice at once."""
        with self._lock:
            generator = self._loaded.get(air)
            if generator is not None:
                self._loaded.move_to_end(air)
                return generator
        source = self._sources.get(air)
        if source is None:
            raise UnknownModel(f"This worker does not serve model {air!r}; it serves {', '.join(self._sources)}.")
        self._evict(keep=self._max_loaded - 1)
        logger.info("loading model %s (%s) on %s", air, source.family, self._device)
        pipeline = self._load_pipeline(source).to(self._device)
        generator = self._make_generator(pipeline, source.family, self._device)
        with self._lock:
            self._loaded[air] = generator
        return generator

    def _evict(self, keep: int) -> None:
        with self._lock:
            victims = []
            while len(self._loaded) > keep:
                victims.append(self._loaded.popitem(last=False))
        for air, _ in victims:
            logger.info("unloading model %s to make room (at most %d loaded)", air, self._max_loaded)
        if victims:
            victims.clear()
            gc.collect()
            if self._device.type == "cuda":
                torch.cuda.empty_cache()


def load_pipeline(source: ModelSource, tiny: bool, dtype: torch.dtype) -> DiffusionPipeline:
    """A pipeline on the CPU: tiny and random, or from local files only (never the network)."""
    if tiny:
        from .tiny_pipelines import build_tiny_pipeline

        return build_tiny_pipeline(source.family).to(dtype=dtype)
    if source.path is None:
        raise ValueError(f"model {source.air} has no path and the worker is not in tiny mode")
    pipeline_class = StableDiffusionXLPipeline if source.family == "sdxl" else StableDiffusionPipeline
    # The gateway never asks for a safety checker; SD 1.x folders may ship one, which would only cost time.
    extra: dict[str, Any] = {"safety_checker": None, "requires_safety_checker": False} if source.family == "sd1" else {}
    if source.path.is_file():
        pipeline = pipeline_class.from_single_file(str(source.path), dtype=dtype, local_files_only=True, **extra)
    else:
        pipeline = pipeline_class.from_pretrained(str(source.path), dtype=dtype, local_files_only=True, **extra)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _real_generator(pipeline: Any, family: Family, device: torch.device) -> ImageGenerator:
    # Imported on first load, so the registry (and health) work before generate's heavy imports are needed.
    from .generate import Generator

    return Generator(pipeline, family, device)
