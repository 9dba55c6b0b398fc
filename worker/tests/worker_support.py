"""What the worker's tests stand on: real servers on loopback, real embedding files, the protocol's own schemas.

- FileServer: an HTTP server (http.server, in a thread) serving embedding files, counting requests.
- canonical_embedding: a canonical safetensors embedding file, as the gateway serves them.
- job_body: a valid JobRequest, with overrides.
- ProtocolSchemas: ``openapi/worker.v1.json``, validated with jsonschema (Draft 2020-12).
- StandInGenerator / BlockingRun / RecordingBatchRun: stand-ins whose timing a test controls.
- serve: the app on a real uvicorn, on a free port, in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import torch
import uvicorn
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from safetensors.torch import save as save_safetensors

from clipgate_worker.conditioning_types import LoadedEmbedding, PlacedEmbedding
from clipgate_worker.errors import Cancelled, EmbeddingShapeMismatch
from clipgate_worker.job_queue import BatchMember, JobControl, JobOutcome, JobQueue
from clipgate_worker.job_spec import JobSpec
from clipgate_worker.models import BatchJob, ModelRegistry
from clipgate_worker.settings import ModelSource

PROTOCOL_PATH = Path(__file__).resolve().parents[2] / "openapi" / "worker.v1.json"
SD1_AIR = "civitai:4384@128713"
SDXL_AIR = "civitai:101055@128078"
TINY_SOURCES = (ModelSource(SD1_AIR, "sd1", None), ModelSource(SDXL_AIR, "sdxl", None))
WIDTHS = {"clip_l": 768, "clip_g": 1280}


class FileServer:
    """Serves ``files`` at /files/{name}; ``status`` overrides a name's answer, ``delay_s`` slows every answer."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.status: dict[str, int] = {}
        self.hits: Counter[str] = Counter()
        #: The Authorization header of each request, by file name (None when it carried none).
        self.authorization: dict[str, str | None] = {}
        self.delay_s = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                name = self.path.removeprefix("/files/")
                server.hits[name] += 1
                server.authorization[name] = self.headers.get("authorization")
                time.sleep(server.delay_s)
                status = server.status.get(name, 200 if name in server.files else 404)
                body = server.files.get(name, b"") if status == 200 else b"no"
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(self, data: bytes, name: str | None = None) -> tuple[str, str]:
        """Serves ``data``; returns (url, sha256)."""
        sha256 = hashlib.sha256(data).hexdigest()
        name = name or f"{sha256}.safetensors"
        self.files[name] = data
        return f"{self.base}/files/{name}", sha256

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def generator_job(**overrides: Any) -> Any:
    """The fields Generator.run reads of a JobSpec, 128x128 and 2 steps unless overridden."""
    fields: dict[str, Any] = dict(
        positive_prompt="a lighthouse at dusk",
        negative_prompt="blurry",
        width=128,
        height=128,
        steps=2,
        cfg_scale=7.0,
        seed=42,
        scheduler="Default",
        clip_skip=0,
        number_results=1,
        output_format="PNG",
        output_quality=95,
        prompt_weighting=None,
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


def random_embedding(family: str, count: int, seed: int) -> LoadedEmbedding:
    """A loaded embedding of ``count`` random vectors per encoder of the family, named by its parameters."""
    generator = torch.Generator().manual_seed(seed)
    vectors = {"clip_l": torch.randn(count, 768, generator=generator)}
    if family == "sdxl":
        vectors["clip_g"] = torch.randn(count, 1280, generator=generator)
    sha256 = hashlib.sha256(f"{family}-{count}-{seed}".encode()).hexdigest()
    return LoadedEmbedding(sha256=sha256, family=family, vectors=vectors)  # type: ignore[arg-type]


def canonical_embedding(family: str, vectors: int = 2, seed: int = 0) -> bytes:
    """A canonical clipgate embedding file: clip_l [n, 768] (sd1), plus clip_g [n, 1280] (sdxl)."""
    generator = torch.Generator().manual_seed(seed)
    names = ("clip_l",) if family == "sd1" else ("clip_l", "clip_g")
    tensors = {name: torch.randn(vectors, WIDTHS[name], generator=generator) * 0.01 for name in names}
    return save_safetensors(tensors, metadata={"family": family})


def job_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "jobId": "job-1",
        "model": {"air": SD1_AIR, "family": "sd1"},
        "positivePrompt": "a photo of a cat on the table",
        "negativePrompt": "blurry",
        "width": 128,
        "height": 128,
        "steps": 2,
        "cfgScale": 7.0,
        "seed": "42",
        "scheduler": "Default",
        "clipSkip": 0,
        "numberResults": 1,
        "outputFormat": "PNG",
        "embeddings": [],
    }
    body.update(overrides)
    return body


def embedding_entry(url: str, sha256: str, family: str = "sd1", vectors: int = 2, weight: float = 1.0, placement: str = "positive") -> dict[str, Any]:
    return {"air": "civitai:1@1", "sha256": sha256, "url": url, "weight": weight, "placement": placement, "vectors": vectors, "family": family}


class ProtocolSchemas:
    """The worker protocol's schemas, with ``#/components/schemas/...`` refs resolved inside the document."""

    URI = "urn:clipgate:worker.v1"

    def __init__(self, path: Path = PROTOCOL_PATH) -> None:
        self.document = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(self.URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, name: str) -> Draft202012Validator:
        if name not in self.document["components"]["schemas"]:
            raise KeyError(f"the protocol has no schema {name!r}; it has {sorted(self.document['components']['schemas'])}")
        if name not in self._validators:
            schema = {"$ref": f"{self.URI}#/components/schemas/{name}"}
            self._validators[name] = Draft202012Validator(
                schema, registry=self._registry, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        return self._validators[name]

    def validate(self, name: str, instance: Any) -> None:
        self.validator(name).validate(instance)

    def is_valid(self, name: str, instance: Any) -> bool:
        return self.validator(name).is_valid(instance)


@dataclass(frozen=True)
class StandInImage:
    seed: int
    format: str
    data: bytes


class StandInGenerator:
    """A Generator that does no torch work: each step waits ``step_s`` (or until ``gate`` opens) and reports to
    every job of the batch still wanted; a cancelled job is dropped, and the batch stops once all are."""

    def __init__(self, family: str, step_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.family = family
        self.step_s = step_s
        self.gate = gate
        self.runs: list[tuple[JobSpec, list[PlacedEmbedding]]] = []
        #: The job ids of each batch run, in order.
        self.batches: list[list[str]] = []
        self.stopped_by: list[BaseException] = []

    def check_compatible(self, embedding: LoadedEmbedding) -> None:
        if embedding.family != self.family:
            raise EmbeddingShapeMismatch(f"stand-in: embedding is {embedding.family}; model is {self.family}")

    def run(self, job: JobSpec, embeddings: list[PlacedEmbedding], on_step: Callable[[int, int], None], loras: Sequence[Any] = ()) -> Sequence[StandInImage]:
        control = SimpleNamespace(on_step=on_step, raise_if_cancelled=lambda: None)
        outcome = self.run_batch([BatchJob(job, embeddings, control)], loras)[0]  # type: ignore[arg-type]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def run_batch(self, batch: Sequence[BatchJob], loras: Sequence[Any] = ()) -> list[Sequence[StandInImage] | Exception]:
        self.batches.append([getattr(item.job, "job_id", "?") for item in batch])
        self.runs.extend((item.job, item.embeddings) for item in batch)
        dropped: dict[int, Exception] = {}
        steps = batch[0].job.steps
        for step in range(1, steps + 1):
            if self.gate is not None:
                self.gate.wait(10)
            time.sleep(self.step_s)
            for index, item in enumerate(batch):
                if index not in dropped:
                    try:
                        item.control.on_step(step, steps)
                    except Cancelled as cancelled:
                        dropped[index] = cancelled
            if len(dropped) == len(batch):
                self.stopped_by.append(dropped[0])
                break
        return [dropped.get(index) or self._images(item.job) for index, item in enumerate(batch)]

    @staticmethod
    def _images(job: JobSpec) -> list[StandInImage]:
        return [StandInImage(seed=(job.seed + index) % (1 << 64), format=job.output_format, data=b"stand-in") for index in range(job.number_results)]


class BlockingRun:
    """A JobRun for queue tests: reports a step every few ms until ``release`` is set, then returns."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.running = threading.Event()

    def __call__(self, job: JobSpec, control: JobControl) -> JobOutcome:
        self.started.append(job.job_id)
        self.running.set()
        step = 0
        try:
            while not self.release.wait(0.005):
                step += 1
                control.on_step(min(step, job.steps), job.steps)
        except BaseException:
            self.cancelled.append(job.job_id)
            raise
        finally:
            self.running.clear()
        return JobOutcome(images=[StandInImage(job.seed, job.output_format, b"x")], embedding_ms=0.0, inference_ms=1.0)


class RecordingBatchRun:
    """A BatchRun for queue tests: records each batch's job ids, and reports a step to each job still wanted every
    few ms until ``allow`` lets the batch end. A cancelled job is reported (Cancelled) only when its batch ends, as
    the real runner does once torch lets go of its rows; the others then finish. A batch whose jobs are all
    cancelled ends by itself."""

    def __init__(self) -> None:
        self._allowed = threading.Semaphore(0)
        self.batches: list[list[str]] = []

    def allow(self, batches: int = 1) -> None:
        """Lets that many batches (running or to come) end."""
        for _ in range(batches):
            self._allowed.release()

    def run_batch(self, members: Sequence[BatchMember]) -> None:
        self.batches.append([member.job.job_id for member in members])
        cancelled: dict[int, Cancelled] = {}
        while len(cancelled) < len(members) and not self._allowed.acquire(timeout=0.005):
            for index, member in enumerate(members):
                if index not in cancelled:
                    try:
                        member.on_step(1, member.job.steps)
                    except Cancelled as stopped:
                        cancelled[index] = stopped
        for index, member in enumerate(members):
            if index in cancelled:
                member.fail(cancelled[index])
            else:
                member.finish(JobOutcome(images=[StandInImage(member.job.seed, member.job.output_format, b"x")], embedding_ms=0.0, inference_ms=1.0))


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app on a real uvicorn on loopback (real sockets: disconnects are real); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@dataclass
class JobAnswer:
    """A POST /v1/jobs answer: the stream's events (200) or the refusal's error object."""

    status: int
    events: list[dict[str, Any]]
    error: dict[str, Any] | None

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]


#: conftest's start_worker: (registry, queue_max, batch_size) → (a validating client, the app's queue).
StartWorker = Callable[..., "tuple[WorkerClient, JobQueue]"]
#: conftest's stand_in_models: (step_s, gate) → (a registry of stand-ins, the stand-in generators by family).
StandInModels = Callable[..., "tuple[ModelRegistry, dict[str, StandInGenerator]]"]


class WorkerClient:
    """A client of a running worker that validates every answer against the protocol's schemas, so every
    test that talks to the worker is also a contract test. ``seen`` counts what was validated, by kind."""

    def __init__(self, base: str, schemas: ProtocolSchemas) -> None:
        self.base = base
        self.schemas = schemas
        self.http = httpx.Client(base_url=base, timeout=30)
        self.seen: Counter[str] = Counter()

    def health(self) -> dict[str, Any]:
        response = self.http.get("/v1/health")
        assert response.status_code == 200, response.text
        return self._valid("WorkerHealth", response.json(), "health")

    def submit(self, body: Any) -> JobAnswer:
        with self.open(body) as (status, events_or_error):
            if status != 200:
                return JobAnswer(status, [], events_or_error)  # type: ignore[arg-type]
            return JobAnswer(status, list(events_or_error), None)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def open(self, body: Any) -> Iterator[tuple[int, Any]]:
        """(200, an iterator of validated events) or (status, the refusal's error object)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self.http.stream("POST", "/v1/jobs", content=content, headers={"content-type": "application/json"}) as response:
            if response.status_code != 200:
                response.read()
                yield response.status_code, self._refusal(response)
                return
            assert response.headers["content-type"] == "application/x-ndjson", response.headers
            yield 200, self._events(response)

    def cancel(self, job_id: str) -> int:
        response = self.http.delete(f"/v1/jobs/{job_id}")
        if response.status_code != 204:
            self._refusal(response)
        return response.status_code

    def _events(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        for line in response.iter_lines():
            if line:
                event = self._valid("JobEvent", json.loads(line), f"event:{json.loads(line)['event']}")
                if event["event"] == "error":
                    self.seen[f"error:{event['error']['code']}"] += 1
                yield event

    def _refusal(self, response: httpx.Response) -> dict[str, Any]:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        body = self._valid("WorkerErrorBody", response.json(), f"refusal:{response.status_code}")
        return body["error"]

    def _valid(self, schema: str, instance: Any, kind: str) -> Any:
        self.schemas.validate(schema, instance)
        self.seen[kind] += 1
        return instance

    def close(self) -> None:
        self.http.close()
