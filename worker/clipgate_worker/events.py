"""Worker protocol v1 messages, shaped exactly as ``openapi/worker.v1.json`` says: the NDJSON JobEvent
lines of a job's stream and the WorkerErrorBody of a refusal. Nothing else builds protocol JSON."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import JobError

if TYPE_CHECKING:
    from .models import EncodedImage

PROTOCOL = "clipgate-worker/1"
SEED_MASK = (1 << 64) - 1
FINAL_EVENTS = frozenset({"result", "error"})

JobEvent = dict[str, Any]


@dataclass(frozen=True)
class JobTimings:
    queue_ms: float
    embedding_ms: float
    inference_ms: float
    total_ms: float


def accepted(job_id: str) -> JobEvent:
    return {"event": "accepted", "jobId": job_id}


def progress(job_id: str, step: int, steps: int) -> JobEvent:
    return {"event": "progress", "jobId": job_id, "step": step, "steps": steps}


def result(job_id: str, images: Sequence[EncodedImage], timings: JobTimings, warnings: Sequence[str] = ()) -> JobEvent:
    event: JobEvent = {
        "event": "result",
        "jobId": job_id,
        "images": [
            {
                "imageUUID": str(uuid.uuid4()),
                # Decimal strings: JSON numbers would round seeds above 2^53.
                "seed": str(image.seed & SEED_MASK),
                "format": image.format,
                "data": base64.b64encode(image.data).decode("ascii"),
            }
            for image in images
        ],
        "timings": {
            "queueMs": _ms(timings.queue_ms),
            "embeddingMs": _ms(timings.embedding_ms),
            "inferenceMs": _ms(timings.inference_ms),
            "totalMs": _ms(timings.total_ms),
        },
    }
    if warnings:
        event["warnings"] = list(warnings)
    return event


def error(job_id: str, failure: JobError) -> JobEvent:
    return {"event": "error", "jobId": job_id, "error": _error_object(failure)}


def error_body(failure: JobError) -> dict[str, Any]:
    """The JSON body of a refusal (any non-200 answer)."""
    return {"error": _error_object(failure)}


def internal(job_id: str) -> JobError:
    """What an unexpected exception becomes on the wire: retryable, and without internals (they are logged)."""
    return JobError(f"The worker failed while running job {job_id!r}; the worker's log has the details.")


def ndjson_line(event: JobEvent) -> bytes:
    return (json.dumps(event, separators=(",", ":")) + "\n").encode("utf-8")


def _error_object(failure: JobError) -> dict[str, Any]:
    return {"code": failure.code, "message": failure.message, "retryable": failure.retryable}


def _ms(value: float) -> float:
    # Clocks are monotonic, but a difference computed on two threads must still never read as negative.
    return round(max(0.0, value), 1)
