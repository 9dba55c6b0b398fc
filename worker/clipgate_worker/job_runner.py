"""What the job thread does with a batch of compatible jobs: each job's embeddings and LoRAs, then the model,
then one diffusion run for all of them.

Embeddings come first because they fail most (a gateway unreachable, a file that is not what it claims)
and cheapest: such a job should not cost a model swap. Each is fetched, read and checked against the
model before any inference, so a bad embedding ends its job with its own error and no GPU time spent; the
batch's other jobs go on without it. Model loading counts as inference time: it is the device's work, and a
swap is what `loaded` in health lets the gateway avoid. A batch's jobs share its inference time and each
keeps its own embedding time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .batching import batch_key
from .conditioning_types import LoadedEmbedding, PlacedEmbedding
from .embedding_store import EmbeddingStore
from .errors import EmbeddingFileInvalid, LoraUnavailable
from .job_queue import BatchMember, JobControl, JobOutcome
from .job_spec import JobSpec
from .lora_adapters import PlacedLora
from .models import BatchJob, ImageGenerator, ModelRegistry

EmbeddingLoader = Callable[[Path, str], LoadedEmbedding]


@dataclass
class _Prepared:
    """A batch member whose files are fetched: its embeddings read (and placed once checked), its LoRAs."""

    member: BatchMember
    loaded: list[tuple[LoadedEmbedding, int]]
    loras: list[PlacedLora]
    embedding_s: float
    placed: list[PlacedEmbedding] | None = None


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
        """One job, as the batch of one; its error is raised."""
        member = _Solo(job, control)
        self.run_batch([member])
        return member.outcome()

    def run_batch(self, members: Sequence[BatchMember]) -> None:
        """Runs the batch (one batch_key), reporting each member's end to it as soon as it is known."""
        if len({batch_key(member.job) for member in members}) > 1:
            raise ValueError("a batch holds jobs of one batch_key only")
        prepared = [ready for ready in (self._fetch(member) for member in members) if ready is not None]
        if not prepared:
            return
        model_started = self._clock()
        generator = self._models.generator_for(prepared[0].member.job.model.air)
        model_s = self._clock() - model_started
        checked = [ready for ready in prepared if self._check(ready, generator)]
        if not checked:
            return
        started = self._clock()
        # One LoRA set for the batch: its key holds the (sha256, weight) of each, so any member's files will do.
        outcomes = generator.run_batch([BatchJob(ready.member.job, ready.placed or [], ready.member) for ready in checked], checked[0].loras)
        inference_ms = (model_s + self._clock() - started) * 1000
        for ready, outcome in zip(checked, outcomes):
            if isinstance(outcome, Exception):
                ready.member.fail(outcome)
            else:
                job = ready.member.job
                ready.member.finish(JobOutcome(images=outcome, embedding_ms=ready.embedding_s * 1000, inference_ms=inference_ms, warnings=warnings_for(job)))

    def _fetch(self, member: BatchMember) -> _Prepared | None:
        """The member's embeddings (read and counted) and LoRA files; None once it has failed."""
        started = self._clock()
        try:
            loaded = self._fetch_embeddings(member.job, member)
            loras = self._fetch_loras(member.job, member)
        except Exception as failure:
            member.fail(failure)
            return None
        return _Prepared(member, loaded, loras, self._clock() - started)

    def _check(self, ready: _Prepared, generator: ImageGenerator) -> bool:
        """Checks the member's embeddings against the model and places them; False once it has failed."""
        started = self._clock()
        job = ready.member.job
        try:
            for embedding, _ in ready.loaded:
                generator.check_compatible(embedding)
            ready.member.raise_if_cancelled()
        except Exception as failure:
            ready.member.fail(failure)
            return False
        ready.placed = [
            PlacedEmbedding(
                embedding=embedding,
                weight=job.embeddings[index].weight,
                placement=job.embeddings[index].placement,
                mentions=job.embeddings[index].mentions,
            )
            for embedding, index in ready.loaded
        ]
        ready.embedding_s += self._clock() - started
        return True

    def _fetch_embeddings(self, job: JobSpec, control: JobControl) -> list[tuple[LoadedEmbedding, int]]:
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
        return loaded

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


class _Solo:
    """A BatchMember for JobRunner's one-job call: it keeps the outcome for the caller."""

    def __init__(self, job: JobSpec, control: JobControl) -> None:
        self.job = job
        self._control = control
        self._outcome: JobOutcome | BaseException | None = None

    def on_step(self, step: int, steps: int) -> None:
        self._control.on_step(step, steps)

    def raise_if_cancelled(self) -> None:
        self._control.raise_if_cancelled()

    def finish(self, outcome: JobOutcome) -> None:
        if self._outcome is None:
            self._outcome = outcome

    def fail(self, failure: BaseException) -> None:
        if self._outcome is None:
            self._outcome = failure

    def outcome(self) -> JobOutcome:
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        if self._outcome is None:
            raise RuntimeError(f"job {self.job.job_id!r} ended without an outcome")
        return self._outcome


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
