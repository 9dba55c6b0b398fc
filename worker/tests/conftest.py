"""Shared fixtures: the protocol's schemas, a file server on loopback, tiny real models, app builders."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
from worker_support import (
    TINY_SOURCES,
    FileServer,
    ProtocolSchemas,
    StandInGenerator,
    StandInModels,
    StartWorker,
    WorkerClient,
    serve,
)

from clipgate_worker.embedding_store import LORA_FILES, EmbeddingStore
from clipgate_worker.job_queue import JobQueue
from clipgate_worker.models import ModelRegistry
from clipgate_worker.server import create_app
from clipgate_worker.settings import Settings, load_settings
from clipgate_worker.tiny_pipelines import build_tiny_pipeline


@pytest.fixture(scope="session")
def schemas() -> ProtocolSchemas:
    return ProtocolSchemas()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddingStore]:
    store = EmbeddingStore(tmp_path / "embeddings", budget_bytes=64 * 1024 * 1024, timeout_s=5.0)
    yield store
    store.close()


@pytest.fixture
def lora_store(tmp_path: Path) -> Iterator[EmbeddingStore]:
    store = EmbeddingStore(tmp_path / "loras", budget_bytes=256 * 1024 * 1024, timeout_s=5.0, kind=LORA_FILES)
    yield store
    store.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {"WORKER_TINY": "1", "WORKER_QUEUE_MAX": "2", "WORKER_EMBEDDING_CACHE_DIR": str(tmp_path / "embeddings"), "WORKER_DEVICE": "cpu"}
    )


@pytest.fixture(scope="session")
def sd1():
    """A tiny SD 1.5 pipeline; tests that change its text side work on a copy."""
    return build_tiny_pipeline("sd1")


@pytest.fixture(scope="session")
def sdxl():
    return build_tiny_pipeline("sdxl")


@pytest.fixture(scope="session")
def tiny_models() -> ModelRegistry:
    """Tiny real pipelines with the real Generator, shared by the session like a long-running worker's."""
    return ModelRegistry(
        TINY_SOURCES, torch.device("cpu"), lambda source: build_tiny_pipeline(source.family), max_loaded=2
    )


@pytest.fixture
def stand_in_models() -> StandInModels:
    """A registry whose models are StandInGenerators (no torch work); returns it and the generators by family."""

    def make(step_s: float = 0.0, gate: threading.Event | None = None) -> tuple[ModelRegistry, dict[str, StandInGenerator]]:
        generators = {family: StandInGenerator(family, step_s, gate) for family in ("sd1", "sdxl")}
        registry = ModelRegistry(
            TINY_SOURCES,
            torch.device("cpu"),
            load_pipeline=lambda source: torch.nn.Identity(),
            make_generator=lambda _pipeline, family, _device: generators[family],
        )
        return registry, generators

    return make


@pytest.fixture
def start_worker(settings: Settings, store: EmbeddingStore, lora_store: EmbeddingStore, schemas: ProtocolSchemas) -> Iterator[StartWorker]:
    """Starts the real app on a real uvicorn with the given registry; returns a validating client and the queue."""
    stack = ExitStack()

    def start(models: ModelRegistry, queue_max: int = 2, batch_size: int = 1) -> tuple[WorkerClient, JobQueue]:
        queue = JobQueue(queue_max, batch_size=batch_size)
        base = stack.enter_context(serve(create_app(settings, models, store, queue, lora_store=lora_store)))
        client = WorkerClient(base, schemas)
        stack.callback(client.close)
        return client, queue

    with stack:
        yield start
