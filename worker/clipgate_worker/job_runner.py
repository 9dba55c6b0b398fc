"""What the job thread does with one job: embeddings first, then the model, then the diffusion run.

Embeddings come first because they fail most (a gateway unreachable, a file that is not what it claims)
and cheapest: such a job should not cost a model swap. Each is fetched, read and checked against the
model before any inference, so a bad embedding ends the job with its own error and no GPU time spent.
Model loading counts as inference time: it is the device's work, and a swap is what `loaded` in health
lets the gateway avoid.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .conditioning_types import LoadedEmbedding, PlacedEmbedding
from .embedding_store import EmbeddingStore
from .errors import EmbeddingFileInvalid, LoraUnavailable
from .lora_adapters import PlacedLora
from .job_queue import JobControl, JobOutcome
from .job_spec import JobSpec
from .models import ModelRegistry

EmbeddingLoader = Callable[[Path, str], LoadedEmbedding]


class JobRunner:
    def __init__(
        self,
        models: ModelRegistry,
        store: EmbeddingStore,
        load_embedding: EmbeddingLoader | None = None,
        clock: Callable[[], float] = time.monotonic,
        lora_store: EmbeddingStore | None = None,
    ) -> None:
        self._models = models
        self._store = store
        self._lora_store = lora_store
        self._load_embedding = load_embedding or _real_loader
        self._clock = clock

    def __call__(self, job: JobSpec, control: JobControl) -> JobOutcome:
        started = self._clock()
        loaded: list[tuple[LoadedEmbedding, int]] = []
        for index, wanted in enumerate(job.embeddings):
            path = self._store.get(wanted.url, wanted.sha256)
            # Read at once: the store may evict the file when the job's next embedding arrives.
            embedding = self._load_embedding(path, wanted.sha256)
            if embedding.count != wanted.vectors:
                raise EmbeddingFileInvalid(
                    f"embeddings[{index}] ({wanted.air}): the job says {wanted.vectors} vectors; "
                    f"the file {wanted.sha256[:12]} holds {embedding.count}"
                )
            loaded.append((embedding, index))
            control.raise_if_cancelled()
        loras = self._fetch_loras(job, control)
        fetched = self._clock()

        generator = self._models.generator_for(job.model.air)
        model_ready = self._clock()
        for embedding, _ in loaded:
            generator.check_compatible(embedding)
        placed = [
            PlacedEmbedding(
                embedding=embedding,
                weight=job.embeddings[index].weight,
                placement=job.embeddings[index].placement,
                mentions=job.embeddings[index].mentions,
            )
            for embedding, index in loaded
        ]
        checked = self._clock()
        control.raise_if_cancelled()

        images = generator.run(job, placed, control.on_step, loras)
        finished = self._clock()
        return JobOutcome(
            images=images,
            embedding_ms=((fetched - started) + (checked - model_ready)) * 1000,
            inference_ms=((model_ready - fetched) + (finished - checked)) * 1000,
            warnings=warnings_for(job),
        )


    def _fetch_loras(self, job: JobSpec, control: JobControl) -> list[PlacedLora]:
        """Each LoRA file from its URL (the registry's), verified against the job's SHA-256, before any GPU work."""
        if not job.loras:
            return []
        if self._lora_store is None:
            raise LoraUnavailable("this worker has no LoRA store configured")
        placed = []
        for lora in job.loras:
            path = self._lora_store.get(lora.url, lora.sha256)
            placed.append(PlacedLora(sha256=lora.sha256, path=path, size_bytes=path.stat().st_size, weight=lora.weight))
            control.raise_if_cancelled()
        return placed


def warnings_for(job: JobSpec) -> list[str]:
    """What the client should know although the job ran (DESIGN §7)."""
    warnings = []
    if job.cfg_scale <= 1 and any(item.placement == "negative" for item in job.embeddings):
        warnings.append(
            f"cfgScale is {job.cfg_scale:g}: at 1 or below the negative prompt is not used, so negative embeddings have no effect"
        )
    return warnings


def _real_loader(path: Path, sha256: str) -> LoadedEmbedding:
    from .embedding_file import load_embedding_file

    return load_embedding_file(path, sha256)
