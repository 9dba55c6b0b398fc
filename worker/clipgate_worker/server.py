"""The worker's HTTP face: worker protocol v1 over FastAPI (``openapi/worker.v1.json``).

Handlers are thin: parse, ask the registry and the queue, shape the answer. A job is refused with a plain
HTTP error (WorkerErrorBody) while refusing is still possible — malformed 400, not servable here 422,
already here 409, starting or draining 503, full 429, in that order: what the job cannot fix by waiting
comes first, as in the gateway's fake worker. Once admitted, the answer is 200 and an NDJSON stream that
begins with `accepted` and ends with exactly one `result` or `error`. A client that hangs up cancels its job.
A W3C ``traceparent`` header (a gateway that traces sends one) puts its trace id in the job's log lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from . import __version__, events
from .embedding_store import EmbeddingStore
from .errors import EmbeddingShapeMismatch, JobError, PayloadTooLarge, UnknownJob, UnknownModel
from .job_queue import BatchRun, EventChannel, JobQueue, JobRun
from .job_runner import JobRunner
from .job_spec import CAPABILITIES, JobSpec, parse_job
from .models import ModelRegistry
from .settings import Settings
from .trace_context import parse_traceparent

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
#: How long shutdown waits for the running job once the app is told to stop (SIGTERM drains before that).
STOP_TIMEOUT_S = 30.0
NDJSON_HEADERS = {"cache-control": "no-store"}
_ROUTING_CODES = {404: "notFound", 405: "methodNotAllowed"}


def create_app(
    settings: Settings,
    models: ModelRegistry,
    store: EmbeddingStore,
    queue: JobQueue,
    run: JobRun | BatchRun | None = None,
    lora_store: EmbeddingStore | None = None,
) -> FastAPI:
    """The app; its lifespan starts the queue's job thread (``run``: the real JobRunner unless a test
    passes another) and stops it after the running job."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        queue.start(run or JobRunner(models, store, lora_store=lora_store))
        yield
        await asyncio.to_thread(queue.stop, STOP_TIMEOUT_S)

    app = FastAPI(title="clipgate worker", version=__version__, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings

    @app.exception_handler(JobError)
    async def refuse(_request: Request, failure: JobError) -> JSONResponse:
        return JSONResponse(events.error_body(failure), status_code=failure.status)

    @app.exception_handler(HTTPException)
    async def no_such_endpoint(request: Request, failure: HTTPException) -> JSONResponse:
        code = _ROUTING_CODES.get(failure.status_code, f"http{failure.status_code}")
        body = {"error": {"code": code, "message": f"No endpoint answers {request.method} {request.url.path}.", "retryable": False}}
        return JSONResponse(body, status_code=failure.status_code, headers=getattr(failure, "headers", None))

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        running, queued = queue.load()
        return {
            "protocol": events.PROTOCOL,
            "status": queue.status,
            "families": models.families(),
            "models": [{"air": model.air, "family": model.family, "loaded": model.loaded} for model in models.served()],
            "maxConcurrency": queue.max_concurrency,
            "load": {"running": running, "queued": queued},
            "capabilities": list(CAPABILITIES),
            # The most images one UNet pass draws for compatible jobs (batching.batch_key) together.
            "batchSize": queue.batch_size,
            # Models kept loaded at once: the gateway prefers a swap that evicts nothing.
            "maxLoadedModels": models.max_loaded,
        }

    @app.post("/v1/jobs")
    async def submit(request: Request) -> StreamingResponse:
        job = parse_job(await _read_body(request))
        trace = parse_traceparent(request.headers.getlist("traceparent"))
        if trace is not None:
            job = replace(job, trace_id=trace.trace_id)
        _check_servable(job, models)
        channel = EventChannel(asyncio.get_running_loop())
        queue.submit(job, channel)
        logger.info("job %s accepted", job.log_name)
        return StreamingResponse(
            _stream(job, channel, queue), media_type="application/x-ndjson", headers=NDJSON_HEADERS
        )

    @app.delete("/v1/jobs/{job_id}", status_code=204)
    def cancel(job_id: str) -> Response:
        if not queue.cancel(job_id):
            raise UnknownJob(f"No job {job_id!r} is running or queued here.")
        return Response(status_code=204)

    return app


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"A job body is at most {MAX_BODY_BYTES} bytes; this one declares {declared}.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"A job body is at most {MAX_BODY_BYTES} bytes; this one is longer.")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_servable(job: JobSpec, models: ModelRegistry) -> None:
    """Refusals a retry elsewhere cannot fix only if this worker's catalogue is wrong: 422."""
    air = job.model.air
    family = models.family_of(air)
    if family is None:
        served = ", ".join(model.air for model in models.served())
        raise UnknownModel(f"This worker does not serve model {air!r}; it serves {served}.")
    if family != job.model.family:
        raise UnknownModel(f"This worker serves {air!r} as family {family}; the job says {job.model.family}.")
    for index, embedding in enumerate(job.embeddings):
        if embedding.family != family:
            raise EmbeddingShapeMismatch(
                f"embeddings[{index}] ({embedding.air}) is a {embedding.family} embedding; model {air!r} is {family}."
            )


#: A job's stream says something at least this often: while it waits in the queue, fetches embeddings or loads
#: its model there is no step to report, and the gateway takes a silent stream for a hung worker.
HEARTBEAT_SECONDS = 5.0


async def _stream(job: JobSpec, channel: EventChannel, queue: JobQueue) -> AsyncIterator[bytes]:
    job_id = job.job_id
    step = 0
    try:
        while True:
            try:
                event = await asyncio.wait_for(channel.get(), timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                # The last step again: progress as a heartbeat (protocol v1 allows repeats).
                event = events.progress(job_id, step, job.steps)
            if event["event"] == "progress":
                step = event["step"]
            yield events.ndjson_line(event)
            if event["event"] in events.FINAL_EVENTS:
                return
    finally:
        # Reached early only when the client went away (Starlette cancels the stream on disconnect).
        if not channel.finished:
            logger.info("client of job %s disconnected; cancelling it", job.log_name)
            queue.cancel(job_id, reason=f"Job {job_id!r} was cancelled: its client disconnected.")
