"""Generation: each job's conditioning with its embeddings, one diffusion loop for a batch of jobs, the images.

A batch is jobs of one ``batch_key`` (batching.py): one model, size, step count, scheduler, guidance scale and
LoRA set. Each job is encoded on its own (its prompts, embeddings, clip skip and weighting); the pipeline is
then called once with every job's rows stacked: num_images_per_prompt=1, each job's conditioning repeated
numberResults times in place (what diffusers' num_images_per_prompt does to one prompt's rows), and one CPU
``torch.Generator`` per image, seeded (seed + i) mod 2^64. diffusers draws a generator list's noise row by row
(``randn_tensor``, which the ancestral schedulers' step noise goes through too), so each image gets exactly the
noise it would get alone; only the rounding of batched kernels may differ (measured: worker/README.md).

Conditioning of different lengths (prompts longer than one 75-token window) cannot share a tensor: such jobs
run in sub-batches, one per length, one after another. Padding them to one length would change their images.
"""

from __future__ import annotations

import gc
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor

from .conditioning_types import Conditioning, Family, LoadedEmbedding, PlacedEmbedding
from .errors import Cancelled
from .job_spec import DEFAULT_OUTPUT_QUALITY
from .lora_adapters import LoraAdapters, PlacedLora
from .models import BatchJob
from .schedulers import scheduler_for
from .text_conditioning import TextConditioner

if TYPE_CHECKING:
    from .job_queue import JobControl
    from .job_spec import JobSpec

logger = logging.getLogger(__name__)

SEED_MASK = (1 << 64) - 1
_PIL_FORMATS = {"PNG": "PNG", "JPG": "JPEG", "WEBP": "WEBP"}


@dataclass(frozen=True)
class GeneratedImage:
    seed: int
    format: str
    data: bytes


#: How a job of a batch ended: its images as the pipeline's float arrays [n, height, width, 3] in 0..1, or the
#: error that ended this job alone (Cancelled included).
DrawnImages = np.ndarray | Exception
#: The same, with the images encoded.
JobImages = list[GeneratedImage] | Exception


class _EveryJobCancelled(Exception):
    """Raised from the step callback to stop a pipeline call whose images nobody wants any more."""


class Generator:
    """Runs batches of jobs on one loaded pipeline. Not thread-safe: the job queue's one thread drives it."""

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
        """One job, as the batch of one; its error is raised (Cancelled when ``on_step`` raises it)."""
        outcome = self.run_batch([BatchJob(job, embeddings, _StepsOnly(on_step))], loras)[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def run_batch(self, batch: Sequence[BatchJob], loras: Sequence[PlacedLora] = ()) -> list[JobImages]:
        """Each job's encoded images or its own error, in batch order (see ``draw``)."""
        return [_encoded(item.job, drawn) for item, drawn in zip(batch, self.draw(batch, loras))]

    def draw(self, batch: Sequence[BatchJob], loras: Sequence[PlacedLora] = ()) -> list[DrawnImages]:
        """Each job's images as float arrays, or the error that ended it alone, in batch order.

        Raises only what ends every job of the batch: a LoRA that does not load, an unknown scheduler."""
        if not batch:
            return []
        # First: a LoRA on the text encoders changes the conditioning, and the previous batch's must be gone.
        self.loras.activate(list(loras))
        self.pipeline.scheduler = scheduler_for(batch[0].job.scheduler, self._default_scheduler)
        items = [BatchJob(item.job, item.embeddings, _Monotonic(item.control)) for item in batch]
        outcomes: dict[int, DrawnImages] = {}
        conditioned: list[tuple[int, Conditioning]] = []
        for index, item in enumerate(items):
            try:
                item.control.raise_if_cancelled()
                conditioned.append((index, self._condition(item)))
            except Exception as failure:  # this job's own: its embeddings, its prompt
                outcomes[index] = failure
        for group in _same_length(conditioned):
            drawn = self._draw_group([(items[index], conditioning) for index, conditioning in group])
            outcomes.update(zip((index for index, _ in group), drawn))
        return [outcomes[index] for index in range(len(items))]

    def _condition(self, item: BatchJob) -> Conditioning:
        job = item.job
        return self.conditioner.encode(job.positive_prompt, job.negative_prompt, item.embeddings, job.clip_skip, job.prompt_weighting)

    def _draw_group(self, group: list[tuple[BatchJob, Conditioning]]) -> list[DrawnImages]:
        """One pipeline call for the group. If it fails for another reason than cancellation (out of memory, say)
        and holds several jobs, each runs again alone, so that whatever fails fails for its own job only."""
        try:
            return self._denoise(group)
        except Exception as failure:
            if len(group) == 1:
                return [failure]
            logger.warning("a batch of %d jobs failed (%s: %s); running each alone", len(group), type(failure).__name__, failure)
        # Out of the except block, so the failed call's frames (and their tensors) are gone before the reruns.
        self._release_memory()
        return [self._draw_group([member])[0] for member in group]

    def _denoise(self, group: list[tuple[BatchJob, Conditioning]]) -> list[DrawnImages]:
        """The batched pipeline call. Every job gets its own progress at each step; a cancelled one's images
        are dropped while the others go on, and the call stops at the step where the last one is cancelled."""
        dropped: dict[int, Cancelled] = {}
        for position, (item, _) in enumerate(group):
            try:
                item.control.raise_if_cancelled()
            except Cancelled as cancelled:
                dropped[position] = cancelled
        if len(dropped) == len(group):
            return [dropped[position] for position in range(len(group))]
        job = group[0][0].job

        def step_end(_pipeline: Any, step: int, _timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            for position, (item, _) in enumerate(group):
                if position not in dropped:
                    try:
                        item.control.on_step(step + 1, job.steps)
                    except Cancelled as cancelled:
                        dropped[position] = cancelled
            if len(dropped) == len(group):
                raise _EveryJobCancelled
            return callback_kwargs

        try:
            images = self._call_pipeline(group, step_end)
        except _EveryJobCancelled:
            return [dropped[position] for position in range(len(group))]
        bounds = np.cumsum([item.job.number_results for item, _ in group])[:-1]
        return [dropped.get(position, rows) for position, rows in enumerate(np.split(images, bounds))]

    def _call_pipeline(self, group: list[tuple[BatchJob, Conditioning]], step_end: Callable[..., dict[str, Any]]) -> np.ndarray:
        counts = [item.job.number_results for item, _ in group]
        conditionings = [conditioning for _, conditioning in group]
        # CPU generators: the same seed gives the same noise on any device, and in any batch.
        generators = [torch.Generator(device="cpu").manual_seed(seed) for item, _ in group for seed in image_seeds(item.job)]
        extra: dict[str, Any] = {}
        if conditionings[0].pooled_prompt_embeds is not None:
            extra["pooled_prompt_embeds"] = _rows([c.pooled_prompt_embeds for c in conditionings], counts)
            extra["negative_pooled_prompt_embeds"] = _rows([c.negative_pooled_prompt_embeds for c in conditionings], counts)
        job = group[0][0].job
        with torch.inference_mode():
            output = self.pipeline(
                prompt_embeds=_rows([c.prompt_embeds for c in conditionings], counts),
                negative_prompt_embeds=_rows([c.negative_prompt_embeds for c in conditionings], counts),
                num_inference_steps=job.steps,
                guidance_scale=job.cfg_scale,
                width=job.width,
                height=job.height,
                num_images_per_prompt=1,
                generator=generators,
                callback_on_step_end=step_end,
                output_type="np",
                **extra,
            )
        return output.images

    def _release_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def image_seeds(job: JobSpec) -> list[int]:
    """Image i's seed: (seed + i) mod 2^64."""
    return [(job.seed + index) & SEED_MASK for index in range(job.number_results)]


def _rows(tensors: Sequence[torch.Tensor | None], counts: Sequence[int]) -> torch.Tensor:
    """Each job's one conditioning row repeated for each of its images, jobs one after another."""
    return torch.cat([tensor.repeat_interleave(count, dim=0) for tensor, count in zip(tensors, counts) if tensor is not None])


def _same_length(conditioned: list[tuple[int, Conditioning]]) -> list[list[tuple[int, Conditioning]]]:
    """Jobs grouped by their conditioning's shape, in order of first appearance."""
    groups: dict[tuple[int, ...], list[tuple[int, Conditioning]]] = {}
    for index, conditioning in conditioned:
        groups.setdefault(tuple(conditioning.prompt_embeds.shape[1:]), []).append((index, conditioning))
    return list(groups.values())


def _encoded(job: JobSpec, drawn: DrawnImages) -> JobImages:
    if isinstance(drawn, Exception):
        return drawn
    try:
        # The conversion diffusers' own output_type="pil" makes: images and bytes are what a lone job gets.
        images = VaeImageProcessor.numpy_to_pil(drawn)
        return [
            GeneratedImage(seed=seed, format=job.output_format, data=encode_image(image, job.output_format, job.output_quality))
            for seed, image in zip(image_seeds(job), images)
        ]
    except Exception as failure:
        return failure


def encode_image(image: Any, output_format: str, quality: int = DEFAULT_OUTPUT_QUALITY) -> bytes:
    """PNG is lossless; JPG and WEBP take the job's quality (capability ``outputQuality``)."""
    buffer = io.BytesIO()
    image.save(buffer, format=_PIL_FORMATS[output_format], **({"quality": quality} if output_format in ("JPG", "WEBP") else {}))
    return buffer.getvalue()


class _StepsOnly:
    """A JobControl made of a bare step callback (Generator.run's): cancellation is what the callback raises."""

    def __init__(self, on_step: Callable[[int, int], None]) -> None:
        self.on_step = on_step

    def raise_if_cancelled(self) -> None:
        return None


class _Monotonic:
    """Passes each step on once: when a failed batch reruns its jobs alone, their streams never go back."""

    def __init__(self, control: JobControl) -> None:
        self._control = control
        self._reported = 0

    def on_step(self, step: int, steps: int) -> None:
        if step <= self._reported:
            self._control.raise_if_cancelled()
            return
        self._control.on_step(step, steps)
        self._reported = step

    def raise_if_cancelled(self) -> None:
        self._control.raise_if_cancelled()
