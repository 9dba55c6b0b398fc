"""Errors a job can end in, each with the protocol code and HTTP status it is reported with.

Like diffusers' loaders, messages say what was expected and what was found, with both numbers.
"""

from __future__ import annotations


class JobError(Exception):
    """Base class: a job failed for a reason the protocol can name."""

    code = "internal"
    status = 500
    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidJob(JobError):
    code = "invalidJob"
    status = 400
    retryable = False


class UnknownModel(JobError):
    code = "unknownModel"
    status = 422
    retryable = False


class EmbeddingShapeMismatch(JobError):
    """An embedding's tensors do not fit the pipeline's text encoder(s)."""

    code = "embeddingShapeMismatch"
    status = 422
    retryable = False


class EmbeddingFileInvalid(JobError):
    """The file is not a canonical clipgate safetensors embedding."""

    code = "embeddingFileInvalid"
    status = 422
    retryable = False


class EmbeddingSlotsExhausted(JobError):
    """The job's embeddings need more vectors at once than the text encoder has slots: no worker of the same
    build could run it, so a retry would only fail again."""

    code = "embeddingSlotsExhausted"
    status = 422
    retryable = False


class ConditioningNotFinite(JobError):
    """The encoded prompt holds NaN or infinite values (values that overflow the device's dtype): generating
    from it would return noise, so the job ends before the diffusion loop."""

    code = "conditioningNotFinite"
    status = 422
    retryable = False


class EmbeddingChecksumMismatch(JobError):
    code = "embeddingChecksumMismatch"
    status = 422
    retryable = True


class EmbeddingUnavailable(JobError):
    """The embedding could not be downloaded now (network, gateway down)."""

    code = "embeddingUnavailable"
    status = 503
    retryable = True


class LoraUnavailable(JobError):
    """A LoRA file could not be downloaded now (network, the registry's status)."""

    code = "loraUnavailable"
    status = 503
    retryable = True


class LoraChecksumMismatch(JobError):
    code = "loraChecksumMismatch"
    status = 422
    retryable = True


class LoraFileInvalid(JobError):
    """The LoRA file is larger than the cap, or does not load into this model (no key or shape fits)."""

    code = "loraFileInvalid"
    status = 422
    retryable = False


class Busy(JobError):
    code = "busy"
    status = 429
    retryable = True


class DuplicateJob(JobError):
    code = "duplicateJob"
    status = 409
    retryable = True


class NotReady(JobError):
    code = "notReady"
    status = 503
    retryable = True


class Cancelled(JobError):
    code = "cancelled"
    status = 499
    retryable = False


class UnknownJob(JobError):
    """DELETE /v1/jobs/{jobId} for a job that is neither running nor queued here."""

    code = "unknownJob"
    status = 404
    retryable = False


class PayloadTooLarge(JobError):
    code = "payloadTooLarge"
    status = 413
    retryable = False
