"""``python -m clipgate_worker`` as an operator runs it: a real process, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from worker_support import SD1_AIR, SDXL_AIR, ProtocolSchemas, WorkerClient, free_port, job_body, wait_until

WORKER_ROOT = Path(__file__).resolve().parents[1]


def worker_process(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "clipgate_worker"],
        cwd=WORKER_ROOT,
        env={**os.environ, "PYTHONPATH": str(WORKER_ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def tiny_worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = worker_process(
        {"WORKER_TINY": "1", "WORKER_PORT": str(port), "WORKER_DEVICE": "cpu", "WORKER_EMBEDDING_CACHE_DIR": str(tmp_path)}
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            return httpx.get(f"{base}/v1/health", timeout=1).json()["status"] == "ready"
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout_s=60, what="the worker to answer health")
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_sigterm_drains_finishes_the_running_job_and_exits_cleanly(tiny_worker: tuple[subprocess.Popen[str], str], schemas: ProtocolSchemas) -> None:
    process, base = tiny_worker
    client = WorkerClient(base, schemas)
    try:
        with client.open(job_body(jobId="last", steps=60)) as (status, events):
            assert status == 200
            assert next(events)["event"] == "accepted" and next(events)["event"] == "progress"
            process.send_signal(signal.SIGTERM)
            wait_until(lambda: client.health()["status"] == "draining", what="health to say draining")
            refused = client.submit(job_body(jobId="too-late"))
            assert (refused.status, refused.error["code"], refused.error["retryable"]) == (503, "notReady", True)
            assert list(events)[-1]["event"] == "result"
    finally:
        client.close()
    assert process.wait(30) == 0
    log = process.stdout.read() if process.stdout else ""
    assert f"serving {SD1_AIR} (sd1), {SDXL_AIR} (sdxl) as tiny random pipelines" in log
    assert "SIGTERM: draining (1 running, 0 queued)" in log


def test_bad_settings_stop_start_up_with_one_line_per_variable() -> None:
    process = worker_process({"WORKER_TINY": "maybe", "WORKER_PORT": "0", "WORKER_MODELS": json.dumps([{"air": "a"}])})
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "WORKER_PORT: expected an integer from 1 to 65535; found 0" in output
    assert "WORKER_TINY: expected 1 (tiny pipelines) or 0; found 'maybe'" in output
    assert "WORKER_MODELS: [0].family: expected one of sd1, sdxl; found None" in output
