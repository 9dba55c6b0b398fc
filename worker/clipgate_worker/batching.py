"""The batching rule: which jobs may draw their images in one UNet pass.

The gateway applies the same rule (``src/dispatch/batch-key.ts``) to send a job where compatible ones wait, so
the two must change together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job_spec import JobSpec

#: What two jobs must share to draw their images in one UNet pass (see batch_key).
BatchKey = tuple[str, int, int, int, str, float, tuple[tuple[str, float], ...]]


def batch_key(job: JobSpec) -> BatchKey:
    """Jobs with equal keys can share one UNet pass; the gateway applies the same rule when it places jobs.

    The key holds what one pass cannot vary per image: the model, the latent size, the step count and
    the scheduler (one timestep schedule), the guidance scale (one CFG combine), and the LoRA set, as
    (sha256, weight) in job order (adapters are set on the whole UNet and text encoders). Everything that
    is per image stays out: prompts, embeddings, seeds, clip skip, prompt weighting (they only shape each
    job's conditioning rows), numberResults and the output encoding."""
    loras = tuple((lora.sha256, lora.weight) for lora in job.loras)
    return (job.model.air, job.width, job.height, job.steps, job.scheduler, job.cfg_scale, loras)
