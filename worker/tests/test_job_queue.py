from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest
from worker_support import BlockingRun, RecordingBatchRun, StandInImage, embedding_entry, job_body

from clipgate_worker.batching import batch_key
from clipgate_worker.errors import Busy, DuplicateJob, EmbeddingUnavailable, NotReady
from clipgate_worker.events import FINAL_EVENTS, JobEvent
from clipgate_worker.job_queue import BatchMember, EventChannel, JobControl, JobOutcome, JobQueue
from clipgate_worker.job_spec import JobSpec, parse_job


def spec(job_id: str, **overrides: Any) -> JobSpec:
    return parse_job(json.dumps(job_body(jobId=job_id, **overrides)))


def run_async(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


async def read_stream(channel: EventChannel) -> list[JobEvent]:
    lines = []
    while not lines or lines[-1]["event"] not in FINAL_EVENTS:
        lines.append(await asyncio.wait_for(channel.get(), 10))
    return lines


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def quick_run(order: list[str], gate: threading.Event) -> Callable[[JobSpec, JobControl], JobOutcome]:
    def run(job: JobSpec, control: JobControl) -> JobOutcome:
        gate.wait(10)
        order.append(job.job_id)
        for step in range(1, job.steps + 1):
            control.on_step(step, job.steps)
        return JobOutcome(images=[StandInImage(job.seed, job.output_format, b"x")], embedding_ms=1.5, inference_ms=2.5, warnings=["w"])

    return run


def test_jobs_run_one_at_a_time_in_arrival_order() -> None:
    async def scenario() -> None:
        order: list[str] = []
        gate = threading.Event()
        queue = JobQueue(max_queued=4)
        queue.start(quick_run(order, gate))
        loop = asyncio.get_running_loop()
        channels = {job_id: EventChannel(loop) for job_id in ("a", "b", "c")}
        for job_id, channel in channels.items():
            queue.submit(spec(job_id, steps=3), channel)
        await eventually(lambda: queue.load() == (1, 2), "a to run while b and c wait")
        gate.set()
        streams = {job_id: await read_stream(channel) for job_id, channel in channels.items()}
        assert order == ["a", "b", "c"]
        for job_id, lines in streams.items():
            assert [line["event"] for line in lines] == ["accepted", "progress", "progress", "progress", "result"]
            assert [line["step"] for line in lines if line["event"] == "progress"] == [1, 2, 3]
            assert all(line["jobId"] == job_id for line in lines)
            timings = lines[-1]["timings"]
            assert timings["embeddingMs"] == 1.5 and timings["inferenceMs"] == 2.5
            assert timings["totalMs"] >= timings["queueMs"] >= 0
            assert lines[-1]["warnings"] == ["w"]
        await asyncio.to_thread(queue.stop, 5)
        assert queue.load() == (0, 0)

    run_async(scenario)


def test_a_full_queue_answers_busy_and_a_known_job_id_duplicate() -> None:
    async def scenario() -> None:
        run = BlockingRun()
        queue = JobQueue(max_queued=1)
        queue.start(run)
        loop = asyncio.get_running_loop()
        running, queued = EventChannel(loop), EventChannel(loop)
        queue.submit(spec("running"), running)
        await eventually(lambda: run.started == ["running"], "the first job to start")
        queue.submit(spec("queued"), queued)
        assert queue.load() == (1, 1) and queue.max_concurrency == 2
        with pytest.raises(Busy, match="runs 1 and queues 1 jobs; at most 2 at once"):
            queue.submit(spec("third"), EventChannel(loop))
        for job_id in ("running", "queued"):
            with pytest.raises(DuplicateJob, match=job_id):
                queue.submit(spec(job_id), EventChannel(loop))
        run.release.set()
        assert (await read_stream(running))[-1]["event"] == "result"
        assert (await read_stream(queued))[-1]["event"] == "result"
        # Once a job has ended its id may come again (the gateway retries on another worker or here).
        again = EventChannel(loop)
        queue.submit(spec("running"), again)
        assert (await read_stream(again))[-1]["event"] == "result"
        await asyncio.to_thread(queue.stop, 5)

    run_async(scenario)


def test_cancelling_a_queued_job_removes_it() -> None:
    async def scenario() -> None:
        run = BlockingRun()
        queue = JobQueue(max_queued=2)
        queue.start(run)
        loop = asyncio.get_running_loop()
        first, second = EventChannel(loop), EventChannel(loop)
        queue.submit(spec("first"), first)
        queue.submit(spec("second"), second)
        await eventually(lambda: run.started == ["first"], "the first job to start")
        assert queue.cancel("second")
        lines = await read_stream(second)
        assert [line["event"] for line in lines] == ["accepted", "error"]
        assert lines[-1]["error"] == {"code": "cancelled", "message": lines[-1]["error"]["message"], "retryable": False}
        assert queue.load() == (1, 0)
        assert not queue.cancel("second")
        run.release.set()
        assert (await read_stream(first))[-1]["event"] == "result"
        await asyncio.to_thread(queue.stop, 5)
        assert run.started == ["first"]

    run_async(scenario)


def test_cancelling_the_running_job_ends_its_stream_and_stops_it_at_the_next_step() -> None:
    async def scenario() -> None:
        run = BlockingRun()
        queue = JobQueue(max_queued=1)
        queue.start(run)
        loop = asyncio.get_running_loop()
        channel = EventChannel(loop)
        queue.submit(spec("job", steps=50), channel)
        assert (await channel.get())["event"] == "accepted"
        assert (await channel.get())["event"] == "progress"
        assert queue.cancel("job", reason="stop it")
        lines = await read_stream(channel)
        assert lines[-1] == {"event": "error", "jobId": "job", "error": {"code": "cancelled", "message": "stop it", "retryable": False}}
        await eventually(lambda: run.cancelled == ["job"], "the running job to observe the cancel")
        await eventually(lambda: queue.load() == (0, 0), "the slot to be freed")
        assert channel.finished and not queue.cancel("job")

    run_async(scenario)


def test_job_errors_keep_their_code_and_unexpected_ones_become_internal_without_details() -> None:
    def failing(job: JobSpec, _control: JobControl) -> JobOutcome:
        if job.job_id == "offline":
            raise EmbeddingUnavailable("gateway unreachable")
        raise RuntimeError("secret stack detail")

    async def scenario() -> None:
        queue = JobQueue(max_queued=2)
        queue.start(failing)
        loop = asyncio.get_running_loop()
        offline, broken = EventChannel(loop), EventChannel(loop)
        queue.submit(spec("offline"), offline)
        queue.submit(spec("broken"), broken)
        assert (await read_stream(offline))[-1]["error"] == {"code": "embeddingUnavailable", "message": "gateway unreachable", "retryable": True}
        error = (await read_stream(broken))[-1]["error"]
        assert (error["code"], error["retryable"]) == ("internal", True)
        assert "secret" not in error["message"] and "broken" in error["message"]
        await asyncio.to_thread(queue.stop, 5)

    run_async(scenario)


def test_drain_refuses_new_jobs_ends_queued_ones_and_finishes_the_running_one() -> None:
    async def scenario() -> None:
        run = BlockingRun()
        queue = JobQueue(max_queued=2)
        loop = asyncio.get_running_loop()
        with pytest.raises(NotReady, match="starting"):
            queue.submit(spec("early"), EventChannel(loop))
        queue.start(run)
        assert queue.status == "ready"
        running, waiting = EventChannel(loop), EventChannel(loop)
        queue.submit(spec("running"), running)
        queue.submit(spec("waiting"), waiting)
        await eventually(lambda: run.started == ["running"], "the first job to start")
        queue.drain()
        assert queue.status == "draining"
        assert (await read_stream(waiting))[-1]["error"]["code"] == "notReady"
        with pytest.raises(NotReady, match="draining"):
            queue.submit(spec("late"), EventChannel(loop))
        assert not await asyncio.to_thread(queue.wait_idle, 0.05)
        run.release.set()
        assert await asyncio.to_thread(queue.wait_idle, 5)
        assert (await read_stream(running))[-1]["event"] == "result"
        await asyncio.to_thread(queue.stop, 5)

    run_async(scenario)


def test_a_channel_carries_one_final_event() -> None:
    async def scenario() -> None:
        channel = EventChannel(asyncio.get_running_loop())
        assert channel.put({"event": "accepted", "jobId": "j"})
        assert channel.put({"event": "error", "jobId": "j", "error": {"code": "cancelled", "message": "m", "retryable": False}})
        assert not channel.put({"event": "result", "jobId": "j", "images": [], "timings": {}})
        assert [line["event"] for line in await read_stream(channel)] == ["accepted", "error"]
        assert channel._events.empty()

    run_async(scenario)


# --------------------------------------------------------------------------- batches


def start_batching(run: RecordingBatchRun, batch_size: int = 4, max_queued: int = 8) -> JobQueue:
    queue = JobQueue(max_queued=max_queued, batch_size=batch_size)
    queue.start(run)
    return queue


async def hold_the_thread(queue: JobQueue, run: RecordingBatchRun, loop: asyncio.AbstractEventLoop, job_id: str = "blocker") -> EventChannel:
    """A job of its own batch key runs first, so that the test's jobs are all queued when the next batch is taken."""
    channel = EventChannel(loop)
    queue.submit(spec(job_id, width=256), channel)
    await eventually(lambda: run.batches[-1:] == [[job_id]], f"{job_id} to run")
    return channel


def test_the_job_thread_batches_compatible_queued_jobs_in_order_within_the_size_cap() -> None:
    async def scenario() -> None:
        run = RecordingBatchRun()
        queue = start_batching(run)
        loop = asyncio.get_running_loop()
        channels = {"blocker": await hold_the_thread(queue, run, loop)}
        jobs = [
            ("a", {}),
            ("other-steps", {"steps": 3}),  # incompatible: keeps its place
            ("b", {"numberResults": 2, "positivePrompt": "another prompt", "seed": "7"}),
            ("c", {"numberResults": 2}),  # compatible, but 1 + 2 + 2 images is over 4: waits
            ("d", {"clipSkip": 2, "negativePrompt": ""}),  # fits the last image
            ("e", {}),
            ("huge", {"numberResults": 5}),  # more images than a batch holds: alone
            ("other-model", {"model": {"air": "civitai:101055@128078", "family": "sdxl"}}),
        ]
        for job_id, overrides in jobs:
            channels[job_id] = EventChannel(loop)
            queue.submit(spec(job_id, **overrides), channels[job_id])
        assert queue.load() == (1, 8) and queue.max_concurrency == 12
        run.allow(10)
        for channel in channels.values():
            assert (await read_stream(channel))[-1]["event"] == "result"
        assert run.batches == [["blocker"], ["a", "b", "d"], ["other-steps"], ["c", "e"], ["huge"], ["other-model"]]
        await asyncio.to_thread(queue.stop, 5)

    run_async(scenario)


def test_jobs_differing_in_any_part_of_the_batch_key_are_not_batched() -> None:
    lora = {"air": "civitai:9@9", "sha256": "ab" * 32, "url": "http://127.0.0.1:1/lora", "sizeBytes": 10, "weight": 0.5, "family": "sd1"}
    differences = [
        {"width": 192},
        {"height": 192},
        {"steps": 3},
        {"scheduler": "Euler a"},
        {"cfgScale": 6.5},
        {"loras": [lora]},
        {"loras": [{**lora, "weight": 0.6}]},
    ]

    async def scenario() -> None:
        run = RecordingBatchRun()
        queue = start_batching(run, batch_size=64, max_queued=16)
        loop = asyncio.get_running_loop()
        channels = [await hold_the_thread(queue, run, loop)]
        for index, overrides in enumerate([{}, *differences]):
            channels.append(EventChannel(loop))
            queue.submit(spec(f"job-{index}", **overrides), channels[-1])
        run.allow(len(channels))
        for channel in channels:
            await read_stream(channel)
        assert run.batches[1:] == [[f"job-{index}"] for index in range(len(differences) + 1)]
        await asyncio.to_thread(queue.stop, 5)

    run_async(scenario)


def test_cancelling_a_job_of_a_running_batch_ends_its_stream_at_once_and_its_slot_when_the_batch_ends() -> None:
    async def scenario() -> None:
        run = RecordingBatchRun()
        queue = start_batching(run, max_queued=1)
        loop = asyncio.get_running_loop()
        blocker = await hold_the_thread(queue, run, loop)
        channels = {job_id: EventChannel(loop) for job_id in ("a", "b", "c", "d")}
        for job_id, channel in channels.items():
            queue.submit(spec(job_id), channel)
        run.allow()
        assert (await read_stream(blocker))[-1]["event"] == "result"
        await eventually(lambda: run.batches[-1] == ["a", "b", "c", "d"] and queue.load() == (4, 0), "the batch to run")
        assert queue.cancel("b")
        lines = await read_stream(channels["b"])
        assert lines[-1]["error"]["code"] == "cancelled"
        # b still holds its slot: its rows are in the running pass until the batch ends.
        assert queue.load() == (4, 0)
        channels["late"] = EventChannel(loop)
        queue.submit(spec("late"), channels["late"])
        with pytest.raises(Busy, match="runs 4 and queues 1 jobs; at most 5 at once"):
            queue.submit(spec("later"), EventChannel(loop))
        run.allow(2)
        for job_id in ("a", "c", "d", "late"):
            assert (await read_stream(channels[job_id]))[-1]["event"] == "result"
        await eventually(lambda: queue.load() == (0, 0), "the slots to be freed")
        await asyncio.to_thread(queue.stop, 5)

    run_async(scenario)


def test_cancelling_every_job_of_a_running_batch_ends_it() -> None:
    async def scenario() -> None:
        run = RecordingBatchRun()
        queue = start_batching(run)
        loop = asyncio.get_running_loop()
        blocker = await hold_the_thread(queue, run, loop)
        channels = {job_id: EventChannel(loop) for job_id in ("f", "g")}
        for job_id, channel in channels.items():
            queue.submit(spec(job_id), channel)
        run.allow()
        await read_stream(blocker)
        await eventually(lambda: queue.load() == (2, 0), "f and g to run")
        for job_id in ("f", "g"):
            assert queue.cancel(job_id)
        # Nothing allows the batch to end: its run stops because no job of it is wanted any more.
        await eventually(lambda: queue.load() == (0, 0), "the cancelled batch to end")
        assert [(await read_stream(channels[job_id]))[-1]["error"]["code"] for job_id in ("f", "g")] == ["cancelled", "cancelled"]
        assert run.batches[-1] == ["f", "g"]
        await asyncio.to_thread(queue.stop, 5)

    run_async(scenario)


def test_a_batch_run_that_raises_ends_each_job_it_did_not_report() -> None:
    class HalfDone:
        def run_batch(self, members: Sequence[BatchMember]) -> None:
            members[0].finish(JobOutcome(images=[], embedding_ms=0.0, inference_ms=1.0))
            members[1].fail(EmbeddingUnavailable("gateway unreachable"))
            raise RuntimeError("secret device detail")

    async def scenario() -> None:
        gate = threading.Event()
        queue = JobQueue(max_queued=4, batch_size=4)
        loop = asyncio.get_running_loop()

        class Gated(HalfDone):
            def run_batch(self, members: Sequence[BatchMember]) -> None:
                if members[0].job.job_id == "blocker":
                    gate.wait(10)
                    members[0].finish(JobOutcome(images=[], embedding_ms=0.0, inference_ms=1.0))
                    return
                super().run_batch(members)

        queue.start(Gated())
        first = EventChannel(loop)
        queue.submit(spec("blocker", width=256), first)
        await eventually(lambda: queue.load() == (1, 0), "the blocker to run")
        channels = [EventChannel(loop) for _ in range(3)]
        for index, channel in enumerate(channels):
            queue.submit(spec(f"job-{index}"), channel)
        gate.set()
        ends = [(await read_stream(channel))[-1] for channel in channels]
        assert ends[0]["event"] == "result"
        assert ends[1]["error"]["code"] == "embeddingUnavailable"
        assert ends[2]["error"]["code"] == "internal" and "secret" not in ends[2]["error"]["message"]
        await eventually(lambda: queue.load() == (0, 0), "the slots to be freed")
        await asyncio.to_thread(queue.stop, 5)

    run_async(scenario)


def test_a_queue_started_with_a_one_job_run_takes_one_job_at_a_time() -> None:
    queue = JobQueue(max_queued=3, batch_size=8)
    assert (queue.batch_size, queue.max_concurrency) == (8, 11)
    queue.start(quick_run([], threading.Event()))
    assert (queue.batch_size, queue.max_concurrency) == (1, 4)
    queue.stop(5)


def test_the_batch_key_ignores_what_is_per_image_and_keeps_the_lora_order() -> None:
    lora = {"air": "civitai:9@9", "sha256": "ab" * 32, "url": "http://127.0.0.1:1/lora", "sizeBytes": 10, "weight": 0.5, "family": "sd1"}
    other = {**lora, "sha256": "cd" * 32}
    per_image = {
        "positivePrompt": "something else",
        "negativePrompt": "",
        "seed": "18446744073709551615",
        "clipSkip": 2,
        "promptWeighting": "compel",
        "numberResults": 3,
        "outputFormat": "WEBP",
        "outputQuality": 50,
        "embeddings": [embedding_entry("http://127.0.0.1:1/e", "ef" * 32)],
    }
    assert batch_key(spec("a", loras=[lora, other])) == batch_key(spec("b", loras=[lora, other], **per_image))
    assert batch_key(spec("a", loras=[lora, other])) != batch_key(spec("b", loras=[other, lora]))
    assert batch_key(spec("a")) != batch_key(spec("b", loras=[lora]))
