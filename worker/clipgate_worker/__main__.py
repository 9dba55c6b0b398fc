"""Process entry: settings → registry, store, queue → app → uvicorn, with a draining SIGTERM.

SIGTERM does not stop the listener at once: health turns to `draining` (so the gateway stops sending
jobs), new jobs are refused with a retryable 503, queued ones end with a retryable error (the gateway
sends them elsewhere now), the running job finishes and streams its result, and only then does uvicorn
shut down. A second SIGTERM, or SIGINT, shuts down without waiting for the job.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import uvicorn

from .settings import Settings, SettingsError, configure_logging, load_settings

if TYPE_CHECKING:
    from .job_queue import JobQueue

logger = logging.getLogger("clipgate_worker")

#: After the running job is done, how long uvicorn waits for streams to be read to their end.
GRACEFUL_SHUTDOWN_S = 10


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, queue: JobQueue) -> None:
        super().__init__(config)
        self._queue = queue
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._draining:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        # A signal handler interrupts the main thread anywhere, possibly inside the queue's lock: the
        # drain runs on its own thread so it never waits for a lock its own thread holds.
        threading.Thread(target=self._drain_then_exit, name="clipgate-drain", daemon=True).start()

    def _drain_then_exit(self) -> None:
        running, queued = self._queue.load()
        logger.info("SIGTERM: draining (%d running, %d queued)", running, queued)
        self._queue.drain()
        self._queue.wait_idle()
        logger.info("drained; shutting down")
        # Not super().handle_exit: that would re-raise SIGTERM after shutdown, and a drained worker exits 0.
        self.should_exit = True


def registry_headers(settings: Settings) -> Callable[[str], dict[str, str]]:
    """The worker's own registry token, for the registry's hosts only: jobs never carry credentials."""
    hosts = set(settings.registry_hosts)

    def headers_for(url: str) -> dict[str, str]:
        host = (urlsplit(url).netloc or "").lower()
        if settings.registry_token and (host in hosts or host.split(":")[0] in hosts):
            return {"authorization": f"Bearer {settings.registry_token}"}
        return {}

    return headers_for


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        configure_logging("INFO")
        logger.error("%s", error)
        return 2
    configure_logging(settings.log_level)
    # Imported once the settings are known good, so a configuration error is reported without waiting for diffusers.
    from .embedding_store import LORA_FILES, EmbeddingStore
    from .job_queue import JobQueue
    from .models import ModelRegistry
    from .server import create_app

    models = ModelRegistry.from_settings(settings)
    store = EmbeddingStore(settings.embedding_cache_dir, settings.embedding_cache_bytes)
    lora_store = EmbeddingStore(
        settings.lora_cache_dir,
        settings.lora_cache_bytes,
        max_file_bytes=settings.lora_max_bytes,
        # A LoRA is 10-300 MB: minutes are a fair deadline where an embedding gets two.
        deadline_s=900.0,
        kind=LORA_FILES,
        headers_for=registry_headers(settings),
    )
    queue = JobQueue(settings.queue_max, batch_size=settings.batch_size)
    app = create_app(settings, models, store, queue, lora_store=lora_store)
    served = ", ".join(f"{model.air} ({model.family})" for model in models.served())
    logger.info(
        "clipgate-worker on http://%s:%d serving %s%s; device %s, %s, batches of up to %d images, max concurrency %d",
        settings.host,
        settings.port,
        served,
        " as tiny random pipelines" if settings.tiny else "",
        settings.device,
        str(settings.dtype).removeprefix("torch."),
        settings.batch_size,
        settings.max_concurrency,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    try:
        DrainingServer(config, queue).run()
    finally:
        store.close()
        lora_store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
