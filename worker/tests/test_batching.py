"""Batching on tiny real pipelines: a job's images in a batch are its images alone, within float rounding;
failures and cancellation stay per job; every job gets its own progress.

TOLERANCE: the same job's decoded pixels (floats in 0..1, the pipeline's "np" output) batched and alone differ
by at most 6.1e-6 on this CPU (torch 2.15, 2 threads: batched convolutions and matmuls round differently from
single-row ones), for SD 1.x and SDXL, with Euler, Euler a and DPM++ 2M SDE; 1e-5 is the bound checked. A job
alone in its sub-batch (a long prompt) is bitwise equal. The encoded PNGs may differ by one level of 255 where
a pixel sits on a rounding edge.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from worker_support import (
    FileServer,
    StartWorker,
    canonical_embedding,
    embedding_entry,
    generator_job,
    job_body,
    random_embedding,
    wait_until,
)

from clipgate_worker.conditioning_types import PlacedEmbedding
from clipgate_worker.errors import Cancelled, EmbeddingShapeMismatch
from clipgate_worker.generate import Generator
from clipgate_worker.models import BatchJob, ModelRegistry
from clipgate_worker.tiny_pipelines import build_tiny_pipeline

#: The largest difference of a decoded pixel (0..1) between a job batched and alone (module docstring).
TOLERANCE = 1e-5
LONG_PROMPT = " ".join(["lighthouse"] * 90)


@pytest.fixture(scope="module")
def generators() -> dict[str, Generator]:
    return {family: Generator(build_tiny_pipeline(family), family, torch.device("cpu")) for family in ("sd1", "sdxl")}


class Recorder:
    """A job's control: records its progress; from step ``cancel_at`` on it raises Cancelled, as a cancelled
    queue entry does."""

    def __init__(self, cancel_at: int | None = None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.cancel_at = cancel_at
        self.cancelled = False

    def on_step(self, step: int, steps: int) -> None:
        if self.cancel_at is not None and step >= self.cancel_at:
            self.cancelled = True
        self.raise_if_cancelled()
        self.steps.append((step, steps))

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled("cancelled by the test")


def batch_of(jobs: list[tuple[Any, list[PlacedEmbedding]]], controls: list[Recorder] | None = None) -> list[BatchJob]:
    controls = controls or [Recorder() for _ in jobs]
    return [BatchJob(job, embeddings, control) for (job, embeddings), control in zip(jobs, controls)]


def mixed_jobs(family: str, scheduler: str) -> list[tuple[Any, list[PlacedEmbedding]]]:
    """Four jobs of one batch key: other prompts, an embedding, other seeds (one at 2^64 - 1), 1 and 2 images."""
    embedding = [PlacedEmbedding(random_embedding(family, 3, seed=11), 0.9, "positive")]
    return [
        (generator_job(seed=1, scheduler=scheduler), []),
        (generator_job(seed=77, positive_prompt="a red fox in the snow", number_results=2, scheduler=scheduler), embedding),
        (generator_job(seed=2**64 - 1, positive_prompt="a castle", negative_prompt="", clip_skip=2, scheduler=scheduler), []),
        (generator_job(seed=5, positive_prompt="a harbour at night", prompt_weighting="sdEmbeds", scheduler=scheduler), embedding),
    ]


@contextlib.contextmanager
def unet_rows(generator: Generator, fail_above: int | None = None) -> Iterator[list[int]]:
    """The batch size of every UNet call (CFG doubles it). With ``fail_above``, a call over that many rows fails
    the way a GPU out of memory does (a CPU has no memory limit to hit)."""
    rows: list[int] = []

    def before_forward(_module: Any, args: tuple[Any, ...]) -> None:
        rows.append(int(args[0].shape[0]))
        if fail_above is not None and rows[-1] > fail_above:
            raise torch.OutOfMemoryError(f"simulated: {rows[-1]} rows do not fit")

    handle = generator.pipeline.unet.register_forward_pre_hook(before_forward)
    try:
        yield rows
    finally:
        handle.remove()


def assert_close(batched: Any, alone: Any) -> None:
    assert isinstance(batched, np.ndarray) and isinstance(alone, np.ndarray)
    assert batched.shape == alone.shape
    assert float(np.abs(batched - alone).max()) <= TOLERANCE


@pytest.mark.parametrize(
    ("family", "scheduler"),
    [("sd1", "Default"), ("sd1", "Euler a"), ("sd1", "DPM++ 2M SDE"), ("sdxl", "Default"), ("sdxl", "Euler a")],
)
def test_a_job_in_a_batch_draws_what_it_draws_alone(generators: dict[str, Generator], family: str, scheduler: str) -> None:
    generator = generators[family]
    jobs = mixed_jobs(family, scheduler)
    with unet_rows(generator) as rows:
        together = generator.draw(batch_of(jobs))
    # One UNet pass per step for all five images, negative and positive rows: the batch really was one.
    assert rows == [2 * 5] * 2
    alone = [generator.draw(batch_of([job]))[0] for job in jobs]
    for batched, single in zip(together, alone):
        assert_close(batched, single)
    assert [len(images) for images in together] == [1, 2, 1, 1]
    assert not np.allclose(together[0], together[2])


def test_encoded_images_keep_their_seeds_formats_and_pixels(generators: dict[str, Generator]) -> None:
    generator = generators["sd1"]
    jobs = [
        (generator_job(seed=2**64 - 1, number_results=2, output_format="PNG"), []),
        (generator_job(seed=9, positive_prompt="a quiet lake", output_format="WEBP", output_quality=80), []),
    ]
    together = generator.run_batch(batch_of(jobs))
    assert [[image.seed for image in images] for images in together] == [[2**64 - 1, 0], [9]]  # type: ignore[union-attr]
    assert [Image.open(io.BytesIO(images[0].data)).format for images in together] == ["PNG", "WEBP"]  # type: ignore[index]
    alone = generator.run(jobs[0][0], [], lambda _step, _steps: None)
    for batched, single in zip(together[0], alone):  # type: ignore[arg-type]
        difference = np.abs(decoded(batched.data) - decoded(single.data)).max()
        assert difference <= 1


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.int16)


def test_conditioning_of_another_length_runs_in_its_own_sub_batch(generators: dict[str, Generator]) -> None:
    generator = generators["sd1"]
    jobs = [
        (generator_job(seed=3), []),
        (generator_job(seed=4, positive_prompt=LONG_PROMPT), []),
        (generator_job(seed=5, positive_prompt="a windmill", number_results=2), []),
    ]
    with unet_rows(generator) as rows:
        together = generator.draw(batch_of(jobs))
    # Two 77-token jobs (three images) in one pass, then the two-window prompt alone.
    assert rows == [6, 6, 2, 2]
    alone = [generator.draw(batch_of([job]))[0] for job in jobs]
    for batched, single in zip(together, alone):
        assert_close(batched, single)
    assert np.array_equal(together[1], alone[1])


def test_each_job_of_a_batch_gets_its_own_progress_at_every_step(generators: dict[str, Generator]) -> None:
    controls = [Recorder(), Recorder(), Recorder()]
    jobs = [(generator_job(seed=seed, steps=3), []) for seed in (1, 2, 3)]
    generators["sd1"].draw(batch_of(jobs, controls))
    assert [control.steps for control in controls] == [[(1, 3), (2, 3), (3, 3)]] * 3


def test_a_cancelled_job_leaves_the_batch_and_the_others_finish(generators: dict[str, Generator]) -> None:
    generator = generators["sdxl"]
    jobs = [(generator_job(seed=seed, steps=3, positive_prompt=f"a boat {seed}"), []) for seed in (1, 2, 3)]
    controls = [Recorder(), Recorder(cancel_at=2), Recorder()]
    together = generator.draw(batch_of(jobs, controls))
    assert isinstance(together[1], Cancelled)
    assert controls[1].steps == [(1, 3)]
    assert controls[0].steps == controls[2].steps == [(1, 3), (2, 3), (3, 3)]
    for index in (0, 2):
        assert_close(together[index], generator.draw(batch_of([jobs[index]]))[0])


def test_a_batch_whose_jobs_are_all_cancelled_stops_at_that_step(generators: dict[str, Generator]) -> None:
    generator = generators["sd1"]
    jobs = [(generator_job(seed=seed, steps=20), []) for seed in (1, 2)]
    controls = [Recorder(cancel_at=2), Recorder(cancel_at=3)]
    with unet_rows(generator) as rows:
        together = generator.draw(batch_of(jobs, controls))
    assert all(isinstance(outcome, Cancelled) for outcome in together)
    # The second job was the last one wanted; its cancel at step 3 ends the loop there, not at step 20.
    assert len(rows) == 3
    with pytest.raises(Cancelled):
        generator.run(jobs[0][0], [], Recorder(cancel_at=1).on_step)


def test_a_job_whose_conditioning_fails_leaves_the_others_intact(generators: dict[str, Generator]) -> None:
    generator = generators["sd1"]
    wrong_family = [PlacedEmbedding(random_embedding("sdxl", 2, seed=3), 1.0, "positive")]
    jobs = [(generator_job(seed=1), []), (generator_job(seed=2), wrong_family), (generator_job(seed=3, number_results=2), [])]
    with unet_rows(generator) as rows:
        together = generator.draw(batch_of(jobs))
    assert isinstance(together[1], EmbeddingShapeMismatch)
    assert rows == [6, 6]
    for index in (0, 2):
        assert_close(together[index], generator.draw(batch_of([jobs[index]]))[0])


def test_a_batch_that_fails_reruns_each_job_alone_so_failures_are_per_job(generators: dict[str, Generator]) -> None:
    generator = generators["sd1"]
    jobs = [
        (generator_job(seed=1, steps=3), []),
        (generator_job(seed=2, steps=3, number_results=3), []),
        (generator_job(seed=3, steps=3, positive_prompt="a tower"), []),
    ]
    controls = [Recorder() for _ in jobs]
    # Ten rows (five images) are too many; a job of one image (two rows) fits, the one of three does not.
    with unet_rows(generator, fail_above=4) as rows:
        together = generator.draw(batch_of(jobs, controls))
    assert rows[0] == 10 and rows.count(10) == 1
    assert isinstance(together[1], torch.OutOfMemoryError)
    for index in (0, 2):
        assert_close(together[index], generator.draw(batch_of([jobs[index]]))[0])
    # The batched attempt failed in its first UNet call, before any step was reported: each stream counts once.
    assert [control.steps for control in controls] == [[(1, 3), (2, 3), (3, 3)], [], [(1, 3), (2, 3), (3, 3)]]


# --------------------------------------------------------------------------- through the queue and the runner


def start_batching_worker(start_worker: StartWorker, models: ModelRegistry) -> Any:
    client, queue = start_worker(models, queue_max=4, batch_size=4)
    return client, queue


def submit_in_background(client: Any, bodies: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], list[threading.Thread]]:
    """Each job on its own thread; its events land in the returned dict once its stream ends."""
    streams: dict[str, list[dict[str, Any]]] = {}

    def submit(body: dict[str, Any]) -> None:
        streams[body["jobId"]] = client.submit(body).events

    threads = [threading.Thread(target=submit, args=(body,), daemon=True) for body in bodies]
    for thread in threads:
        thread.start()
    return streams, threads


@contextlib.contextmanager
def blocker(client: Any, queue: Any) -> Iterator[Callable[[], None]]:
    """A long job of another batch key that runs while the test queues its batch; calling the yielded function
    cancels it, and the job thread takes the queued batch next."""
    streams, threads = submit_in_background(client, [job_body(jobId="blocker", steps=100, width=256, height=256)])
    wait_until(lambda: queue.load()[0] == 1, what="the blocker to run")
    yield lambda: client.cancel("blocker")
    threads[0].join(30)
    assert streams["blocker"][-1]["error"]["code"] == "cancelled"


def images_of(stream: list[dict[str, Any]]) -> list[np.ndarray]:
    import base64

    return [decoded(base64.b64decode(image["data"])) for image in stream[-1]["images"]]


def test_a_queued_batch_on_the_real_runner_keeps_a_bad_embedding_to_its_own_job(
    start_worker: StartWorker, tiny_models: ModelRegistry, file_server: FileServer
) -> None:
    client, queue = start_batching_worker(start_worker, tiny_models)
    url, sha256 = file_server.add(canonical_embedding("sd1", vectors=2, seed=4))
    good = [embedding_entry(url, sha256, vectors=2)]
    miscounted = [embedding_entry(url, sha256, vectors=3)]
    bodies = [
        job_body(jobId="a", seed="10", steps=3, embeddings=good),
        job_body(jobId="b", seed="11", steps=3, embeddings=miscounted),
        job_body(jobId="c", seed="12", steps=3, positivePrompt="a lighthouse", numberResults=2),
    ]
    with blocker(client, queue) as release:
        streams, threads = submit_in_background(client, bodies)
        wait_until(lambda: queue.load() == (1, 3), what="three jobs queued behind the blocker")
        release()
    for thread in threads:
        thread.join(60)
    assert streams["b"][-1]["error"]["code"] == "embeddingFileInvalid"
    a, c = streams["a"], streams["c"]
    assert a[-1]["event"] == c[-1]["event"] == "result"
    # One batch: the two jobs share their inference time, each has its own embedding time.
    assert a[-1]["timings"]["inferenceMs"] == c[-1]["timings"]["inferenceMs"]
    for stream in (a, c):
        assert [event["step"] for event in stream if event["event"] == "progress"] == [1, 2, 3]
    for body, stream in ((bodies[0], a), (bodies[2], c)):
        alone = client.submit({**body, "jobId": f"{body['jobId']}-alone"}).events
        for batched, single in zip(images_of(stream), images_of(alone), strict=True):
            assert np.abs(batched - single).max() <= 1


def test_cancelling_a_job_of_a_running_batch_ends_only_its_stream(start_worker: StartWorker, tiny_models: ModelRegistry) -> None:
    client, queue = start_batching_worker(start_worker, tiny_models)
    bodies = [job_body(jobId=job_id, seed=str(seed), steps=50) for seed, job_id in enumerate(("a", "b", "c"))]
    with blocker(client, queue) as release:
        streams, threads = submit_in_background(client, bodies)
        wait_until(lambda: queue.load() == (1, 3), what="three jobs queued behind the blocker")
        release()
    wait_until(lambda: queue.load() == (3, 0), what="the batch of three to run")
    assert client.cancel("b") == 204
    threads[1].join(10)
    assert streams["b"][-1]["error"]["code"] == "cancelled"
    # b's stream has ended; its rows are still in the running pass, so the slot is not free yet.
    assert "a" not in streams and queue.load()[0] == 3
    for thread in threads:
        thread.join(60)
    for job_id in ("a", "c"):
        assert [event["step"] for event in streams[job_id] if event["event"] == "progress"] == list(range(1, 51))
        assert streams[job_id][-1]["event"] == "result"
    wait_until(lambda: queue.load() == (0, 0), what="the slots to be freed")


def test_cancelling_every_job_of_a_running_batch_stops_it(start_worker: StartWorker, tiny_models: ModelRegistry) -> None:
    client, queue = start_batching_worker(start_worker, tiny_models)
    bodies = [job_body(jobId=job_id, seed=str(seed), steps=100) for seed, job_id in enumerate(("d", "e"))]
    with blocker(client, queue) as release:
        streams, threads = submit_in_background(client, bodies)
        wait_until(lambda: queue.load() == (1, 2), what="two jobs queued behind the blocker")
        release()
    wait_until(lambda: queue.load() == (2, 0), what="the batch of two to run")
    assert client.cancel("d") == 204 and client.cancel("e") == 204
    for thread in threads:
        thread.join(10)
    assert [streams[job_id][-1]["error"]["code"] for job_id in ("d", "e")] == ["cancelled", "cancelled"]
    wait_until(lambda: queue.load() == (0, 0), timeout_s=10, what="the batch to stop")
    assert all(len(streams[job_id]) < 100 for job_id in ("d", "e"))


def test_health_advertises_the_batch_size(start_worker: StartWorker, tiny_models: ModelRegistry) -> None:
    client, _ = start_batching_worker(start_worker, tiny_models)
    health = client.health()
    assert (health["batchSize"], health["maxConcurrency"]) == (4, 8)
