"""Batches of compatible jobs on the device, a bounded queue behind them, cancellation, and each job's timings.

A single job thread does all torch work (two diffusion jobs side by side only share the GPU and double the
memory; one UNet pass over the rows of several jobs is what makes a GPU draw more images per second). HTTP
handlers live on the asyncio event loop: they submit jobs and read each job's events from an EventChannel,
which the job thread feeds through ``loop.call_soon_threadsafe``.

Batching: when the job thread takes the oldest waiting job, it also takes every waiting job with the same
``batch_key`` (batching.py), in queue order, as long as the batch's images (the sum of numberResults) fit in
``batch_size``; incompatible jobs, and compatible ones too big for the room left, keep their places. A job
skipped that way is never passed over for long: once it is the oldest it heads the next batch. Nothing waits
for more jobs to arrive: batching only groups what is already queued, so an idle worker starts a lone job at
once. ``max_concurrency`` is ``batch_size + max_queued``: the queue can hold a whole next batch while one runs.

Cancellation: a queued job is removed at once; a running one has a flag set that the job checks at each
denoising step (and between phases). Either way the stream ends with a `cancelled` error right away, as the
protocol's fake worker does. Inside a batch only that job's images are dropped; the batch stops (Cancelled)
once every job in it is cancelled. A running job counts in ``load`` until the runner reports it done, i.e.
until torch has stopped working on its rows, so ``load`` never claims a free slot that is still busy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from . import events
from .errors import Busy, Cancelled, DuplicateJob, JobError, NotReady
from .events import JobEvent, JobTimings
from .batching import batch_key
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


class BatchMember(JobControl, Protocol):
    """One job of a running batch, as the runner sees it: its spec, its steps and cancellation, and its end,
    reported exactly once (further reports are ignored) as soon as it is known."""

    @property
    def job(self) -> JobSpec: ...
    def finish(self, outcome: JobOutcome) -> None: ...
    def fail(self, failure: BaseException) -> None: ...


#: Runs one job; a queue started with one runs batches of one.
JobRun = Callable[[JobSpec, JobControl], JobOutcome]


@runtime_checkable
class BatchRun(Protocol):
    """Runs a batch of compatible jobs (equal ``batch_key``), reporting each member's end through it."""

    def run_batch(self, members: Sequence[BatchMember]) -> None: ...


@dataclass(eq=False)
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


class _Member:
    """A queue entry inside the running batch: its one final event, its timings, and its slot's release."""

    def __init__(self, queue: JobQueue, entry: _Entry, started_at: float) -> None:
        self._queue = queue
        self._entry = entry
        self._started_at = started_at
        self.reported = False

    @property
    def job(self) -> JobSpec:
        return self._entry.job

    def on_step(self, step: int, steps: int) -> None:
        self._entry.on_step(step, steps)

    def raise_if_cancelled(self) -> None:
        self._entry.raise_if_cancelled()

    def finish(self, outcome: JobOutcome) -> None:
        if self._claim_report():
            entry = self._entry
            ended = self._queue._clock()
            timings = JobTimings(
                queue_ms=(self._started_at - entry.received_at) * 1000,
                embedding_ms=outcome.embedding_ms,
                inference_ms=outcome.inference_ms,
                total_ms=(ended - entry.received_at) * 1000,
            )
            entry.channel.put(events.result(entry.job.job_id, outcome.images, timings, outcome.warnings))
            logger.info("job %s done: %d image(s) in %.0f ms", entry.job.log_name, len(outcome.images), timings.total_ms)
            self._queue._release(entry)

    def fail(self, failure: BaseException) -> None:
        if self._claim_report():
            entry = self._entry
            job_id = entry.job.job_id
            if isinstance(failure, Cancelled):
                entry.channel.put(events.error(job_id, failure))
            elif isinstance(failure, JobError):
                logger.info("job %s failed: %s: %s", entry.job.log_name, failure.code, failure.message)
                entry.channel.put(events.error(job_id, failure))
            else:
                logger.error("job %s failed unexpectedly", entry.job.log_name, exc_info=failure)
                entry.channel.put(events.error(job_id, events.internal(job_id)))
            self._queue._release(entry)

    def _claim_report(self) -> bool:
        if self.reported:
            return False
        self.reported = True
        return True


class JobQueue:
    def __init__(self, max_queued: int, clock: Callable[[], float] = time.monotonic, batch_size: int = 1) -> None:
        self.max_queued = max_queued
        self._batch_size = batch_size
        self._clock = clock
        self._waiting: deque[_Entry] = deque()
        #: The running batch's jobs that have not been reported done yet.
        self._running: list[_Entry] = []
        self._status: Status = "starting"
        self._stopping = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def batch_size(self) -> int:
        """The most images one batch draws (1 once started with a JobRun, which takes one job at a time)."""
        return self._batch_size

    @property
    def max_concurrency(self) -> int:
        """Jobs run or queued at once: a full batch and ``max_queued`` behind it."""
        return self._batch_size + self.max_queued

    @property
    def status(self) -> Status:
        return self._status

    def load(self) -> tuple[int, int]:
        """(running: the jobs of the running batch not done yet, cancelled ones included until torch has let
        go of them; queued)."""
        with self._changed:
            return len(self._running), len(self._waiting)

    def start(self, run: JobRun | BatchRun) -> None:
        """Starts the job thread; jobs are admitted from now on. A BatchRun gets batches; a JobRun one job at a time."""
        with self._changed:
            if self._thread is not None:
                raise RuntimeError("the job queue is already started")
            if isinstance(run, BatchRun):
                run_batch = run.run_batch
            else:
                run_batch = _one_at_a_time(run)
                self._batch_size = 1
            self._thread = threading.Thread(target=self._work, args=(run_batch,), name="clipgate-job", daemon=True)
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
            running = len(self._running)
            if running + len(self._waiting) >= self.max_concurrency:
                raise Busy(f"The worker runs {running} and queues {len(self._waiting)} jobs; at most {self.max_concurrency} at once.")
            channel.put(events.accepted(job.job_id))
            self._waiting.append(_Entry(job, channel, self._clock()))
            self._changed.notify_all()

    def cancel(self, job_id: str, reason: str | None = None) -> bool:
        """Ends the job's stream with `cancelled`; False when no such job is running or queued."""
        failure = Cancelled(reason or f"Job {job_id!r} was cancelled by DELETE /v1/jobs/{{jobId}}.")
        with self._changed:
            entry = next((running for running in self._running if running.job.job_id == job_id), None)
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
        elsewhere now. The running batch finishes."""
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
            return self._changed.wait_for(lambda: not self._running and not self._waiting, timeout_s)

    def stop(self, timeout_s: float | None = None) -> None:
        """Drains, lets the running batch finish, and ends the job thread."""
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
        return any(entry.job.job_id == job_id for entry in (*self._running, *self._waiting))

    def _take_batch(self) -> list[_Entry]:
        """The oldest waiting job and the compatible ones behind it whose images still fit (module docstring)."""
        first = self._waiting.popleft()
        batch = [first]
        room = self._batch_size - first.job.number_results
        key = batch_key(first.job) if room > 0 else None
        for entry in list(self._waiting):
            if room <= 0:
                break
            if entry.job.number_results <= room and batch_key(entry.job) == key:
                self._waiting.remove(entry)
                batch.append(entry)
                room -= entry.job.number_results
        return batch

    def _release(self, entry: _Entry) -> None:
        with self._changed:
            if entry in self._running:
                self._running.remove(entry)
            self._changed.notify_all()

    def _work(self, run_batch: Callable[[Sequence[BatchMember]], None]) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._stopping)
                if not self._waiting:
                    return
                batch = self._take_batch()
                self._running = list(batch)
            started = self._clock()
            members = [_Member(self, entry, started) for entry in batch]
            if len(members) > 1:
                logger.info("batch of %d jobs: %s", len(members), ", ".join(member.job.log_name for member in members))
            failure: BaseException | None = None
            try:
                run_batch(members)
            except Exception as error:  # the whole batch failed: each job not reported yet ends with it
                failure = error
            for member in members:
                member.fail(failure or RuntimeError(f"the batch ended without a result for job {member.job.job_id!r}"))
            with self._changed:
                self._running = []
                self._changed.notify_all()


def _one_at_a_time(run: JobRun) -> Callable[[Sequence[BatchMember]], None]:
    """A JobRun as a batch run (its batches are of one job)."""

    def run_batch(members: Sequence[BatchMember]) -> None:
        for member in members:
            try:
                member.raise_if_cancelled()
                member.finish(run(member.job, member))
            except Exception as failure:
                member.fail(failure)

    return run_batch
