"""Every kind of answer the worker gives validates against ``openapi/worker.v1.json`` (Draft 2020-12).

WorkerClient validates each answer as it reads it; these tests make sure each kind was actually produced
and read: health in each status, every refusal, and every NDJSON event of real jobs on tiny pipelines —
a result, an error and a cancellation.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import uuid
from typing import Any

import pytest
from worker_support import (
    SDXL_AIR,
    FileServer,
    ProtocolSchemas,
    StandInModels,
    StartWorker,
    canonical_embedding,
    embedding_entry,
    job_body,
    wait_until,
)

from clipgate_worker.errors import InvalidJob
from clipgate_worker.job_spec import parse_job
from clipgate_worker.models import ModelRegistry

VALID_EMBEDDING = embedding_entry("http://127.0.0.1:8080/v1/embeddings/e.safetensors", "0" * 64)


def test_the_protocol_document_has_the_schemas_the_worker_speaks(schemas: ProtocolSchemas) -> None:
    names = set(schemas.document["components"]["schemas"])
    assert {"WorkerHealth", "JobRequest", "JobEvent", "WorkerErrorBody"} <= names


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"embeddings": [VALID_EMBEDDING]},
        {"seed": "18446744073709551615", "numberResults": 20, "outputFormat": "WEBP", "clipSkip": 2},
        {"model": {"air": "runware:100@1", "family": "flux"}},
        {"jobId": ""},
        {"jobId": "x" * 129},
        {"width": 127},
        {"height": 2056},
        {"steps": 0},
        {"steps": 2.5},
        {"steps": 2.0},
        {"steps": True},
        {"cfgScale": 7},
        {"cfgScale": 31},
        {"cfgScale": "7"},
        {"seed": "-1"},
        {"seed": 42},
        {"seed": "123456789012345678901"},
        {"clipSkip": 3},
        {"numberResults": 0},
        {"outputFormat": "GIF"},
        {"positivePrompt": None},
        {"model": {"air": "a"}},
        {"model": {"air": "a", "family": ""}},
        {"embeddings": [{**VALID_EMBEDDING, "sha256": "A" * 64}]},
        {"embeddings": [{**VALID_EMBEDDING, "weight": -1}]},
        {"embeddings": [{**VALID_EMBEDDING, "vectors": 76}]},
        {"embeddings": [{**VALID_EMBEDDING, "family": "flux"}]},
        {"embeddings": [{**VALID_EMBEDDING, "placement": "both"}]},
        {"embeddings": [{**VALID_EMBEDDING, "extra": 1}]},
        {"unknownField": True},
        {"outputQuality": 20},
        {"outputQuality": 99},
        {"outputQuality": 19},
        {"outputQuality": 100},
        {"outputQuality": "80"},
    ],
)
def test_the_job_parser_accepts_exactly_what_the_schema_accepts(schemas: ProtocolSchemas, change: dict[str, Any]) -> None:
    body = {**job_body(), **copy.deepcopy(change)}
    try:
        spec = parse_job(json.dumps(body))
    except InvalidJob:
        spec = None
    assert (spec is not None) == schemas.is_valid("JobRequest", body), body
    if spec is not None:
        assert spec.job_id == body["jobId"] and spec.seed == int(body["seed"])
        assert len(spec.embeddings) == len(body["embeddings"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"width": 130}, "width: Input should be a multiple of 8"),
        ({"embeddings": [{**VALID_EMBEDDING, "url": "ftp://gateway/e.safetensors"}]}, "expected an absolute http(s) URL"),
    ],
)
def test_what_the_worker_refuses_beyond_the_schema(schemas: ProtocolSchemas, change: dict[str, Any], message: str) -> None:
    """Two deliberate refusals the schema does not make: the VAE needs multiples of 8, and the worker can only
    download over http(s). The gateway never sends either (it sends multiples of 64 and its own http URLs)."""
    body = {**job_body(), **change}
    assert schemas.is_valid("JobRequest", body)
    with pytest.raises(InvalidJob, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_job(json.dumps(body))


def test_a_field_of_a_capability_it_lacks_is_refused(schemas: ProtocolSchemas) -> None:
    """The schema allows checkNSFW (capability nsfwCheck); this worker has no classifier, does not advertise
    it, and refuses the field rather than ignore it."""
    body = {**job_body(), "checkNSFW": True}
    assert schemas.is_valid("JobRequest", body)
    with pytest.raises(InvalidJob, match="checkNSFW"):
        parse_job(json.dumps(body))


@pytest.mark.parametrize("without", ["jobId", "model", "negativePrompt", "seed", "scheduler", "embeddings"])
def test_every_required_field_is_required(schemas: ProtocolSchemas, without: str) -> None:
    body = job_body()
    del body[without]
    assert not schemas.is_valid("JobRequest", body)
    with pytest.raises(InvalidJob, match=without):
        parse_job(json.dumps(body))


def test_health_validates_when_ready_and_when_draining(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    models, _ = stand_in_models()
    client, queue = start_worker(models)
    assert client.health()["status"] == "ready"
    queue.drain()
    assert client.health()["status"] == "draining"
    assert client.seen["health"] == 2


def test_every_refusal_is_a_worker_error_body(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    gate = threading.Event()
    models, _ = stand_in_models(gate=gate)
    client, queue = start_worker(models, queue_max=0)
    assert client.submit(b"[]").status == 400
    assert client.submit(job_body(model={"air": "nope:1@1", "family": "sd1"})).status == 422
    assert client.submit(b"{" + b" " * (1 << 20) + b"}").status == 413
    assert client.cancel("nobody") == 404
    with client.open(job_body(jobId="holder")) as (status, events):
        assert status == 200 and next(events)["event"] == "accepted"
        assert client.submit(job_body(jobId="holder")).status == 409
        assert client.submit(job_body(jobId="other")).status == 429
        gate.set()
        assert list(events)[-1]["event"] == "result"
    wait_until(lambda: queue.load() == (0, 0), what="an idle queue")
    queue.drain()
    assert client.submit(job_body(jobId="late")).status == 503
    for status in (400, 404, 409, 413, 422, 429, 503):
        assert client.seen[f"refusal:{status}"] >= 1, f"no {status} refusal was validated"


def test_every_event_of_real_jobs(start_worker: StartWorker, tiny_models: ModelRegistry, file_server: FileServer) -> None:
    client, _ = start_worker(tiny_models)
    url, sha = file_server.add(canonical_embedding("sdxl", vectors=2))
    sdxl = {"model": {"air": SDXL_AIR, "family": "sdxl"}}

    result = client.submit(job_body(jobId="ok", numberResults=2, embeddings=[embedding_entry(url, sha, family="sdxl")], **sdxl)).last
    assert result["event"] == "result"
    assert all(uuid.UUID(image["imageUUID"]).version == 4 for image in result["images"])

    wrong_sha = hashlib.sha256(b"not it").hexdigest()
    failed = client.submit(job_body(jobId="bad", embeddings=[embedding_entry(url, wrong_sha, family="sdxl")], **sdxl)).last
    assert failed["error"]["code"] == "embeddingChecksumMismatch"

    with client.open(job_body(jobId="long", steps=100, **sdxl)) as (status, events):
        assert status == 200
        assert next(events)["event"] == "accepted" and next(events)["event"] == "progress"
        assert client.cancel("long") == 204
        assert list(events)[-1]["error"]["code"] == "cancelled"

    for kind in ("event:accepted", "event:progress", "event:result", "event:error", "error:embeddingChecksumMismatch", "error:cancelled"):
        assert client.seen[kind] >= 1, f"no {kind} was validated"
