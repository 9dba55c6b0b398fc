"""The worker over real HTTP on loopback, with tiny real pipelines (and stand-ins where a test must hold a job)."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from typing import Any

import httpx
import pytest
import torch
from PIL import Image
from tiny_loras import write_lora
from worker_support import (
    SD1_AIR,
    SDXL_AIR,
    TINY_SOURCES,
    FileServer,
    StandInModels,
    StartWorker,
    canonical_embedding,
    embedding_entry,
    job_body,
    wait_until,
)

from clipgate_worker import server
from clipgate_worker.errors import Cancelled
from clipgate_worker.models import ModelRegistry
from clipgate_worker.settings import ModelSource

MAX_SEED = (1 << 64) - 1


def test_health_reports_models_families_capacity_and_what_is_loaded(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    models, _ = stand_in_models()
    client, _ = start_worker(models, queue_max=2)
    health = client.health()
    assert health == {
        "protocol": "clipgate-worker/1",
        "status": "ready",
        "families": ["sd1", "sdxl"],
        "models": [{"air": SD1_AIR, "family": "sd1", "loaded": False}, {"air": SDXL_AIR, "family": "sdxl", "loaded": False}],
        "maxConcurrency": 3,
        "load": {"running": 0, "queued": 0},
        "capabilities": ["outputQuality", "promptWeighting", "embeddingMentions", "loras"],
        "batchSize": 1,
        "maxLoadedModels": 2,
    }
    assert client.submit(job_body()).last["event"] == "result"
    assert [model["loaded"] for model in client.health()["models"]] == [True, False]


def test_an_sd1_job_with_embeddings_on_a_tiny_pipeline(start_worker: StartWorker, tiny_models: ModelRegistry, file_server: FileServer) -> None:
    client, _ = start_worker(tiny_models)
    style_url, style_sha = file_server.add(canonical_embedding("sd1", vectors=3, seed=1))
    bad_url, bad_sha = file_server.add(canonical_embedding("sd1", vectors=1, seed=2))
    body = job_body(
        steps=3,
        embeddings=[
            embedding_entry(style_url, style_sha, vectors=3, weight=1.2),
            embedding_entry(bad_url, bad_sha, vectors=1, weight=0.8, placement="negative"),
        ],
    )
    answer = client.submit(body)
    assert answer.status == 200
    assert [event["event"] for event in answer.events] == ["accepted", "progress", "progress", "progress", "result"]
    assert [(event["step"], event["steps"]) for event in answer.events[1:-1]] == [(1, 3), (2, 3), (3, 3)]
    (image,) = answer.last["images"]
    assert (image["seed"], image["format"]) == ("42", "PNG")
    decoded = Image.open(io.BytesIO(base64.b64decode(image["data"])))
    assert (decoded.format, decoded.size) == ("PNG", (128, 128))
    timings = answer.last["timings"]
    assert timings["embeddingMs"] > 0 and timings["inferenceMs"] > 0
    assert timings["totalMs"] >= timings["queueMs"] + timings["embeddingMs"] + timings["inferenceMs"] - 1
    assert "warnings" not in answer.last
    # The same job again: both files are cached, so nothing is downloaded twice.
    assert client.submit({**body, "jobId": "job-2"}).last["event"] == "result"
    assert file_server.hits[f"{style_sha}.safetensors"] == 1 and file_server.hits[f"{bad_sha}.safetensors"] == 1


def test_a_job_with_a_lora_downloads_it_once_and_applies_it_to_that_job_only(
    start_worker: StartWorker, tiny_models: ModelRegistry, file_server: FileServer, sd1, tmp_path
) -> None:
    client, _ = start_worker(tiny_models)
    path, sha = write_lora(tmp_path, sd1, "sd1", 7, "kohya")
    url, _ = file_server.add(path.read_bytes(), name="style.safetensors")
    lora = {"air": "civitai:9@9", "sha256": sha, "url": url, "sizeBytes": path.stat().st_size, "weight": 0.8, "family": "sd1"}
    plain = client.submit(job_body(jobId="plain-1")).last["images"][0]["data"]
    with_lora = client.submit(job_body(jobId="lora-1", loras=[lora])).last["images"][0]["data"]
    assert with_lora != plain
    assert client.submit(job_body(jobId="lora-2", loras=[lora])).last["images"][0]["data"] == with_lora
    assert client.submit(job_body(jobId="plain-2")).last["images"][0]["data"] == plain
    assert file_server.hits["style.safetensors"] == 1
    refused = client.submit(job_body(jobId="lora-3", loras=[{**lora, "sha256": "b" * 64}]))
    assert refused.last["event"] == "error" and refused.last["error"]["code"] == "loraChecksumMismatch"


def test_an_sdxl_job_gives_numbered_seeds_that_wrap_at_2_64(start_worker: StartWorker, tiny_models: ModelRegistry, file_server: FileServer) -> None:
    client, _ = start_worker(tiny_models)
    url, sha = file_server.add(canonical_embedding("sdxl", vectors=2))
    body = job_body(
        model={"air": SDXL_AIR, "family": "sdxl"},
        seed=str(MAX_SEED),
        numberResults=2,
        outputFormat="JPG",
        negativePrompt="",
        embeddings=[embedding_entry(url, sha, family="sdxl")],
    )
    result = client.submit(body).last
    assert result["event"] == "result"
    assert [image["seed"] for image in result["images"]] == [str(MAX_SEED), "0"]
    assert len({image["imageUUID"] for image in result["images"]}) == 2
    for image in result["images"]:
        assert image["format"] == "JPG"
        assert Image.open(io.BytesIO(base64.b64decode(image["data"]))).format == "JPEG"


def test_webp_output_and_the_negative_embedding_warning(start_worker: StartWorker, tiny_models: ModelRegistry, file_server: FileServer) -> None:
    client, _ = start_worker(tiny_models)
    url, sha = file_server.add(canonical_embedding("sd1", vectors=1))
    result = client.submit(job_body(outputFormat="WEBP", cfgScale=1, embeddings=[embedding_entry(url, sha, vectors=1, placement="negative")])).last
    assert Image.open(io.BytesIO(base64.b64decode(result["images"][0]["data"]))).format == "WEBP"
    assert len(result["warnings"]) == 1 and "negative embeddings have no effect" in result["warnings"][0]


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (b"{not json", 400, "invalidJob", "Not a JobRequest"),
        (job_body(width=100), 400, "invalidJob", "width"),
        (job_body(seed=str(MAX_SEED + 1)), 400, "invalidJob", "at most 18446744073709551615"),
        (job_body(steps="2"), 400, "invalidJob", "steps"),
        (job_body(extra=True), 400, "invalidJob", "extra"),
        (job_body(model={"air": "civitai:1@1", "family": "sd1"}), 422, "unknownModel", "does not serve model 'civitai:1@1'"),
        (job_body(model={"air": SD1_AIR, "family": "sdxl"}), 422, "unknownModel", "as family sd1; the job says sdxl"),
        (
            job_body(embeddings=[embedding_entry("http://127.0.0.1:9/e", "a" * 64, family="sdxl")]),
            422,
            "embeddingShapeMismatch",
            "embeddings[0] (civitai:1@1) is a sdxl embedding; model 'civitai:4384@128713' is sd1",
        ),
        (b"{" + b" " * (1024 * 1024) + b"}", 413, "payloadTooLarge", "at most 1048576 bytes"),
    ],
)
def test_refusals_before_the_stream(start_worker: StartWorker, stand_in_models: StandInModels, body: bytes | dict[str, Any], status: int, code: str, message: str) -> None:
    models, generators = stand_in_models()
    client, _ = start_worker(models)
    answer = client.submit(body)
    assert (answer.status, answer.error["code"]) == (status, code)
    assert message in answer.error["message"]
    assert answer.error["retryable"] is False
    assert generators["sd1"].runs == []


def test_embedding_failures_end_the_stream_before_any_inference(start_worker: StartWorker, stand_in_models: StandInModels, file_server: FileServer) -> None:
    models, generators = stand_in_models()
    client, _ = start_worker(models)
    url, sha = file_server.add(canonical_embedding("sd1"))
    not_safetensors_url, not_safetensors_sha = file_server.add(b"\x80\x02pickle, not safetensors")
    cases = [
        (embedding_entry(url, hashlib.sha256(b"other").hexdigest()), "embeddingChecksumMismatch", True),
        (embedding_entry(f"{file_server.base}/files/gone", sha), "embeddingUnavailable", True),
        (embedding_entry(not_safetensors_url, not_safetensors_sha), "embeddingFileInvalid", False),
        (embedding_entry(url, sha, vectors=5), "embeddingFileInvalid", False),
    ]
    for index, (entry, code, retryable) in enumerate(cases):
        answer = client.submit(job_body(jobId=f"job-{index}", embeddings=[entry]))
        assert [event["event"] for event in answer.events] == ["accepted", "error"], code
        assert (answer.last["error"]["code"], answer.last["error"]["retryable"]) == (code, retryable)
    assert "holds 2" in answer.last["error"]["message"]
    assert generators["sd1"].runs == []


def test_an_embedding_that_does_not_fit_the_model_is_refused_by_its_tensors(start_worker: StartWorker, tiny_models: ModelRegistry, file_server: FileServer) -> None:
    client, _ = start_worker(tiny_models)
    # Labelled sdxl, but the file holds only clip_l: the file wins over the label.
    url, sha = file_server.add(canonical_embedding("sd1"))
    body = job_body(model={"air": SDXL_AIR, "family": "sdxl"}, embeddings=[embedding_entry(url, sha, family="sdxl")])
    error = client.submit(body).last["error"]
    assert (error["code"], error["retryable"]) == ("embeddingShapeMismatch", False)
    assert "sdxl" in error["message"] and "sd1" in error["message"]


def test_an_unexpected_failure_is_internal_and_retryable_without_details(start_worker: StartWorker) -> None:
    def broken_loader(_source: ModelSource) -> None:
        raise RuntimeError("disk on fire at /secret/path")

    client, _ = start_worker(ModelRegistry(TINY_SOURCES, torch.device("cpu"), broken_loader))
    error = client.submit(job_body()).last["error"]
    assert (error["code"], error["retryable"]) == ("internal", True)
    assert "secret" not in error["message"] and "fire" not in error["message"]


def test_busy_and_duplicate_while_a_job_runs(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    gate = threading.Event()
    models, _ = stand_in_models(gate=gate)
    client, queue = start_worker(models, queue_max=1)
    with client.open(job_body(jobId="first")) as (status, first):
        assert status == 200 and next(first)["event"] == "accepted"
        with client.open(job_body(jobId="second")) as (status, second):
            assert status == 200 and next(second)["event"] == "accepted"
            assert client.health()["load"] == {"running": 1, "queued": 1}
            busy = client.submit(job_body(jobId="third"))
            assert (busy.status, busy.error["code"], busy.error["retryable"]) == (429, "busy", True)
            duplicate = client.submit(job_body(jobId="first"))
            assert (duplicate.status, duplicate.error["code"]) == (409, "duplicateJob")
            gate.set()
            assert list(first)[-1]["event"] == "result"
            assert list(second)[-1]["event"] == "result"
    wait_until(lambda: queue.load() == (0, 0), what="an idle queue")


def test_delete_cancels_a_running_job(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    models, generators = stand_in_models(step_s=0.01)
    client, _ = start_worker(models)
    with client.open(job_body(jobId="long", steps=100)) as (status, events):
        assert status == 200
        assert next(events)["event"] == "accepted" and next(events)["event"] == "progress"
        assert client.cancel("long") == 204
        rest = list(events)
    assert rest[-1]["error"]["code"] == "cancelled" and rest[-1]["error"]["retryable"] is False
    assert all(event["event"] == "progress" for event in rest[:-1]) and len(rest) < 99
    wait_until(lambda: client.health()["load"]["running"] == 0, what="the slot to be freed")
    assert isinstance(generators["sd1"].stopped_by[0], Cancelled)
    assert client.cancel("long") == 404


def test_delete_of_an_unknown_job_is_404(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    models, _ = stand_in_models()
    client, _ = start_worker(models)
    response = client.http.delete("/v1/jobs/nobody")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "unknownJob", "message": "No job 'nobody' is running or queued here.", "retryable": False}}


def test_a_client_that_disconnects_cancels_its_job(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    models, generators = stand_in_models(step_s=0.01)
    client, queue = start_worker(models)
    with httpx.Client(base_url=client.base, timeout=10) as http:
        with http.stream("POST", "/v1/jobs", json=job_body(jobId="leaver", steps=100)) as response:
            lines = response.iter_lines()
            assert '"accepted"' in next(lines) and '"progress"' in next(lines)
        # Leaving the block closes the connection mid-stream.
    wait_until(lambda: bool(generators["sd1"].stopped_by), what="the job to be cancelled")
    assert isinstance(generators["sd1"].stopped_by[0], Cancelled)
    assert "disconnected" in str(generators["sd1"].stopped_by[0])
    wait_until(lambda: queue.load() == (0, 0), what="the slot to be freed")


def test_a_draining_worker_refuses_jobs_as_not_ready(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    models, _ = stand_in_models()
    client, queue = start_worker(models)
    queue.drain()
    assert client.health()["status"] == "draining"
    answer = client.submit(job_body())
    assert (answer.status, answer.error["code"], answer.error["retryable"]) == (503, "notReady", True)


def test_unknown_endpoints_answer_in_the_error_shape(start_worker: StartWorker, stand_in_models: StandInModels) -> None:
    models, _ = stand_in_models()
    client, _ = start_worker(models)
    response = client.http.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "notFound"
    response = client.http.put("/v1/jobs")
    assert response.status_code == 405 and response.json()["error"]["code"] == "methodNotAllowed"


def test_a_stream_says_something_while_its_job_waits(start_worker: StartWorker, stand_in_models: StandInModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """A queued job (or one fetching embeddings, or loading its model) has no step to report: the stream sends
    its last progress again as a heartbeat, so the gateway can tell a waiting worker from a hung one."""
    monkeypatch.setattr(server, "HEARTBEAT_SECONDS", 0.2)
    gate = threading.Event()
    models, _ = stand_in_models(gate=gate)
    client, _ = start_worker(models, queue_max=1)
    with client.open(job_body(jobId="running")) as (_, first):
        assert next(first)["event"] == "accepted"
        with client.open(job_body(jobId="waiting", steps=7)) as (_, second):
            assert next(second)["event"] == "accepted"
            heartbeats = [next(second), next(second)]
            assert heartbeats == [{"event": "progress", "jobId": "waiting", "step": 0, "steps": 7}] * 2
            gate.set()
            assert list(second)[-1]["event"] == "result"
        assert list(first)[-1]["event"] == "result"
