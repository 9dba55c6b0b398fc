"""Smoke test of the worker's HTTP server on a GPU: the real process, tiny pipelines moved to CUDA in fp16.

Starts ``python -m clipgate_worker`` (WORKER_TINY=1, WORKER_DEVICE=cuda), serves two canonical embedding
files from a local HTTP server, sends one job per family with one positive and one negative embedding, and
checks the NDJSON stream: ``accepted``, ``progress``, one ``result`` whose images decode at the asked size,
seeds exact. Prints one line per job and exits non-zero on any failure.

    python -m bench.gpu_smoke            # from worker/, on a machine with CUDA
    python -m bench.gpu_smoke cpu        # the same on a CPU, to check the script
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import torch
from PIL import Image
from safetensors.torch import save_file

AIRS = {"sd1": "civitai:4384@128713", "sdxl": "civitai:101055@128078"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def embedding_file(directory: Path, family: str, seed: int) -> tuple[str, str]:
    generator = torch.Generator().manual_seed(seed)
    tensors = {"clip_l": torch.randn(3, 768, generator=generator)}
    if family == "sdxl":
        tensors["clip_g"] = torch.randn(3, 1280, generator=generator)
    path = directory / f"{family}-{seed}.safetensors"
    save_file(tensors, str(path), metadata={"format": "clipgate-embedding", "version": "1", "family": family, "vectors": "3"})
    return path.name, hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
    directory = Path(tempfile.mkdtemp(prefix="clipgate-smoke-"))
    files_port, worker_port = free_port(), free_port()
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(directory))  # noqa: E731
    files = http.server.ThreadingHTTPServer(("127.0.0.1", files_port), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()

    env = {**os.environ, "WORKER_TINY": "1", "WORKER_DEVICE": device, "WORKER_PORT": str(worker_port), "WORKER_EMBEDDING_CACHE_DIR": str(directory / "cache")}
    worker = subprocess.Popen([sys.executable, "-m", "clipgate_worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{worker_port}"
    failures = 0
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{base}/v1/health", timeout=2).json()
                if health.get("status") == "ready":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker did not become ready")
            time.sleep(0.5)
        print("health:", json.dumps(health))

        for family, air in AIRS.items():
            embeddings = []
            for index, placement in enumerate(("positive", "negative")):
                name, sha = embedding_file(directory, family, 10 + index)
                embeddings.append({"air": f"civitai:{index}@{index}", "sha256": sha, "url": f"http://127.0.0.1:{files_port}/{name}", "weight": 1.2 if index else 0.8, "placement": placement, "vectors": 3, "family": family})
            size = 512 if family == "sd1" else 1024
            job = {
                "jobId": str(uuid.uuid4()), "model": {"air": air, "family": family}, "positivePrompt": "a lighthouse at dusk",
                "negativePrompt": "blurry", "width": size, "height": size, "steps": 20, "cfgScale": 7, "seed": str(2**64 - 1),
                "scheduler": "Default", "clipSkip": 0, "numberResults": 2, "outputFormat": "PNG", "embeddings": embeddings,
            }
            started = time.monotonic()
            events = []
            with httpx.stream("POST", f"{base}/v1/jobs", json=job, timeout=300) as response:
                status = response.status_code
                for line in response.iter_lines():
                    if line.strip():
                        events.append(json.loads(line))
            seconds = time.monotonic() - started
            kinds = [event["event"] for event in events]
            result = events[-1] if events else {}
            problems = []
            if status != 200 or kinds[:1] != ["accepted"] or result.get("event") != "result":
                problems.append(f"status {status}, events {kinds[:3]}…{kinds[-1:]} {result.get('error')}")
            else:
                seeds = [image["seed"] for image in result["images"]]
                sizes = [Image.open(io.BytesIO(base64.b64decode(image["data"]))).size for image in result["images"]]
                if seeds != [str(2**64 - 1), "0"] or sizes != [(size, size)] * 2:
                    problems.append(f"seeds {seeds}, sizes {sizes}")
                progress = kinds.count("progress")
                print(f"{family}: {size}², 20 steps, 2 images with 2 embeddings on {device} in {seconds:.2f} s; {progress} progress events; timings {result['timings']}")
            if problems:
                failures += 1
                print(f"{family}: FAILED: {'; '.join(problems)}")
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        files.shutdown()
        if failures:
            print(output[-4000:])
    print("smoke:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
