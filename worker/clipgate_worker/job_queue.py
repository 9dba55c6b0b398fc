"""One job at a time on the device, a bounded queue behind it, cancellation, and each job's timings.

A single job thread does all torch work (a GPU runs one diffusion job at a time well; two at once only
share it and double the memory). HTTP handlers live on the asyncio event loop: they submit jobs and read
each job's events from an EventChannel, which the job thread feeds through ``loop.call_soon_threadsafe``.

Cancellation: a queued job is removed at once; a running one has a flag set that the job checks at each
denoising step (and between phases), raising Cancelled. Either way the stream ends with a `cancelled`
error right away, as the protocol's fake worker does, while the slot stays taken until torch has actually
stopped — ``load`` never claims a free GPU that is still busy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from . import events
from .errors import Busy, Cancelled, DuplicateJob, JobError, NotReady
from .events import JobEvent, JobTimings
from .job_spec import JobSpec

if TYPE_CHECKING:
    from .models import EncodedImage

logger = logging.getLogger(__name__)

Status = Literal["starting", "ready", "draining"]


class EventChannel:
    """One job's events, from any thread to the coroutine streaming them.

    It carries at most one final event (`result` or `error`): whatever comes after — a result finished
    just after a cancel, say — is dropped, so a stream never ends twice."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._lock = threading.Lock()
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def put(self, event: JobEvent) -> bool:
        """Thread-safe; False when the event was dropped because the stream has ended."""
        with self._lock:
            if self._finished:
                return False
            self._finished = event["event"] in events.FINAL_EVENTS
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:
            # The loop is closed: the server is gone and nobody reads this stream any more.
            return False
        return True

    async def get(self) -> JobEvent:
        return await self._events.get()


@dataclass(frozen=True)
class JobOutcome:
    """What a job run produced; the queue adds the queue and total times."""

    images: Sequence[EncodedImage]
    embedding_ms: float
    inference_ms: float
    warnings: Sequence[str] = ()


class JobControl(Protocol):
    """What a running job can do with its queue entry."""

    def on_step(self, step: int, steps: int) -> None: ...
    def raise_if_cancelled(self) -> None: ...


JobRun = Callable[[JobSpec, JobControl], JobOutcome]


@dataclass
class _Entry:
    job: JobSpec
    channel: EventChannel
    received_at: float
    cancel_reason: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def on_step(self, step: int, steps: int) -> None:
        self.raise_if_cancelled()
        self.channel.put(events.progress(self.job.job_id, step, steps))

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled(self.cancel_reason or f"Job {self.job.job_id!r} was cancelled.")


class JobQueue:
    def __init__(self, max_queued: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_queued = max_queued
        self._clock = clock
        self._waiting: deque[_Entry] = deque()
        self._running: _Entry | None = None
        self._status: Status = "starting"
        self._stopping = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def max_concurrency(self) -> int:
        return 1 + self.max_queued

    @property
    def status(self) -> Status:
        return self._status

    def load(self) -> tuple[int, int]:
        """(running, queued)."""
        with self._changed:
            return (0 if self._running is None else 1), len(self._waiting)

    def start(self, run: JobRun) -> None:
        """Starts the job thread; jobs are admitted from now on."""
        with self._changed:
            if self._thread is not None:
                raise RuntimeError("the job queue is already started")
            self._thread = threading.Thread(target=self._work, args=(run,), name="clipgate-job", daemon=True)
            self._status = "ready"
        self._thread.start()

    def submit(self, job: JobSpec, channel: EventChannel) -> None:
        """Admits the job (its `accepted` event is the channel's first) or refuses it:
        DuplicateJob (409), NotReady (503: starting or draining), Busy (429)."""
        with self._changed:
            if self._holds(job.job_id):
                raise DuplicateJob(f"Job {job.job_id!r} is already running or queued here.")
            if self._status != "ready":
                raise NotReady(f"The worker is {self._status}.")
            running = 0 if self._running is None else 1
            if running + len(self._waiting) >= self.max_concurrency:
                raise Busy(f"The worker runs {running} and queues {len(self._waiting)} jobs; at most {self.max_concurrency} at once.")
            channel.put(events.accepted(job.job_id))
            self._waiting.append(_Entry(job, channel, self._clock()))
            self._changed.notify_all()

    def cancel(self, job_id: str, reason: str | None = None) -> bool:
        """Ends the job's stream with `cancelled`; False when no such job is running or queued."""
        failure = Cancelled(reason or f"Job {job_id!r} was cancelled by DELETE /v1/jobs/{{jobId}}.")
        with self._changed:
            entry = self._running if self._running is not None and self._running.job.job_id == job_id else None
            if entry is not None:
                if entry.cancelled.is_set():
                    return True
                entry.cancel_reason = failure.message
                entry.cancelled.set()
            else:
                entry = next((waiting for waiting in self._waiting if waiting.job.job_id == job_id), None)
                if entry is None:
                    return False
                self._waiting.remove(entry)
                self._changed.notify_all()
        entry.channel.put(events.error(job_id, failure))
        logger.info("job %s cancelled", entry.job.log_name)
        return True

    def drain(self) -> None:
        """Stops admitting jobs; queued ones end with a retryable `notReady` so the gateway sends them
        elsewhere now. The running job finishes."""
        with self._changed:
            self._status = "draining"
            dropped = list(self._waiting)
            self._waiting.clear()
            self._changed.notify_all()
        for entry in dropped:
            entry.channel.put(events.error(entry.job.job_id, NotReady("The worker is draining; the job was not started.")))

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Waits until no job runs or waits; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._running is None and not self._waiting, timeout_s)

    def stop(self, timeout_s: float | None = None) -> None:
        """Drains, lets the running job finish, and ends the job thread."""
        self.drain()
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("the job thread is still running after %.1f s; leaving it behind", timeout_s or 0)

    def _holds(self, job_id: str) -> bool:
        if self._running is not None and self._running.job.job_id == job_id:
            return True
        return any(entry.job.job_id == job_id for entry in self._waiting)

    def _work(self, run: JobRun) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._stopping)
                if not self._waiting:
                    return
                entry = self._waiting.popleft()
                self._running = entry
            try:
                self._run_one(run, entry)
            finally:
                with self._changed:
                    self._running = None
                    self._changed.notify_all()

    def _run_one(self, run: JobRun, entry: _Entry) -> None:
        job_id = entry.job.job_id
        started = self._clock()
        try:
            entry.raise_if_cancelled()
            outcome = run(entry.job, entry)
            ended = self._clock()
            timings = JobTimings(
                queue_ms=(started - entry.received_at) * 1000,
                embedding_ms=outcome.embedding_ms,
                inference_ms=outcome.inference_ms,
                total_ms=(ended - entry.received_at) * 1000,
            )
            entry.channel.put(events.result(job_id, outcome.images, timings, outcome.warnings))
            logger.info("job %s done: %d image(s) in %.0f ms", entry.job.log_name, len(outcome.images), timings.total_ms)
        except Cancelled as failure:
            entry.channel.put(events.error(job_id, failure))
        except JobError as failure:
            logger.info("job %s failed: %s: %s", entry.job.log_name, failure.code, failure.message)
            entry.channel.put(events.error(job_id, failure))
        except Exception:
            logger.exception("job %s failed unexpectedly", entry.job.log_name)
            entry.channel.put(events.error(job_id, events.internal(job_id)))
