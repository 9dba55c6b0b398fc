"""LoRA files: the worker's own store (caps, errors of their own), its registry token, and jobs that carry LoRAs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from worker_support import FileServer, job_body

from clipgate_worker.__main__ import registry_headers
from clipgate_worker.embedding_store import LORA_FILES, EmbeddingStore
from clipgate_worker.errors import InvalidJob, LoraChecksumMismatch, LoraFileInvalid, LoraUnavailable
from clipgate_worker.job_spec import parse_job
from clipgate_worker.settings import load_settings


def lora_store(directory: Path, **options) -> EmbeddingStore:
    return EmbeddingStore(directory, budget_bytes=1 << 20, kind=LORA_FILES, **options)


def test_a_lora_store_fails_with_lora_errors_not_embedding_ones(tmp_path: Path, file_server: FileServer) -> None:
    store = lora_store(tmp_path, max_file_bytes=100)
    url, sha256 = file_server.add(b"x" * 50)
    assert store.get(url, sha256).read_bytes() == b"x" * 50
    with pytest.raises(LoraChecksumMismatch, match="LoRA from"):
        store.get(url, "0" * 64)
    big_url, big_sha = file_server.add(b"y" * 200)
    with pytest.raises(LoraFileInvalid, match="at most 100 bytes") as too_large:
        store.get(big_url, big_sha)
    assert too_large.value.retryable is False
    with pytest.raises(LoraUnavailable, match="answered 404"):
        store.get(f"{file_server.base}/files/missing", "1" * 64)


def test_the_workers_registry_token_goes_to_the_registry_hosts_only(tmp_path: Path, file_server: FileServer) -> None:
    host = file_server.base.removeprefix("http://")
    settings = load_settings({"WORKER_TINY": "1", "WORKER_REGISTRY_TOKEN": "secret-token", "WORKER_REGISTRY_HOSTS": f"civitai.com, {host}"})
    headers_for = registry_headers(settings)
    assert headers_for(f"http://{host}/api/download/models/1") == {"authorization": "Bearer secret-token"}
    assert headers_for("https://civitai.com/api/download/models/1") == {"authorization": "Bearer secret-token"}
    assert headers_for("https://storage.example/signed?x=1") == {}
    assert registry_headers(load_settings({"WORKER_TINY": "1"}))(f"http://{host}/x") == {}

    store = lora_store(tmp_path, headers_for=headers_for)
    url, sha256 = file_server.add(b"lora bytes", name="style.safetensors")
    store.get(url, sha256)
    assert file_server.authorization["style.safetensors"] == "Bearer secret-token"


def test_settings_for_loras_have_defaults_and_refuse_nonsense() -> None:
    settings = load_settings({"WORKER_TINY": "1"})
    assert settings.lora_max_bytes == 1024 * 1024 * 1024 and settings.registry_hosts == ("civitai.com",) and settings.registry_token is None
    with pytest.raises(Exception, match="WORKER_REGISTRY_HOSTS"):
        load_settings({"WORKER_TINY": "1", "WORKER_REGISTRY_HOSTS": "https://civitai.com/api"})


def test_a_job_carries_loras_checked_as_the_schema_says() -> None:
    lora = {"air": "civitai:1@2", "sha256": "a" * 64, "url": "https://civitai.com/api/download/models/2", "sizeBytes": 1000, "weight": -1.5, "family": "sd1"}
    spec = parse_job(json.dumps(job_body(loras=[lora])))
    assert spec.loras[0].weight == -1.5 and spec.loras[0].size_bytes == 1000
    assert parse_job(json.dumps(job_body())).loras == ()
    for bad in ({"weight": 4.5}, {"sha256": "nothex"}, {"url": "file:///etc/passwd"}, {"sizeBytes": 0}, {"token": "x"}):
        with pytest.raises(InvalidJob):
            parse_job(json.dumps(job_body(loras=[{**lora, **bad}])))
