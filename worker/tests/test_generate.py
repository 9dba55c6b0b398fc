"""Generation: exact seeds, determinism, cancellation between steps, schedulers, output formats."""

from __future__ import annotations

import hashlib
import io

import pytest
import torch
from PIL import Image

from worker_support import generator_job

from clipgate_worker.conditioning_types import LoadedEmbedding, PlacedEmbedding
from clipgate_worker.errors import Cancelled, InvalidJob
from clipgate_worker.generate import Generator
from clipgate_worker.tiny_pipelines import build_tiny_pipeline


@pytest.fixture(scope="module")
def sd1_generator():
    return Generator(build_tiny_pipeline("sd1"), "sd1", torch.device("cpu"))


job = generator_job


def embedding(seed: int) -> LoadedEmbedding:
    vectors = {"clip_l": torch.randn(2, 768, generator=torch.Generator().manual_seed(seed))}
    return LoadedEmbedding(sha256=hashlib.sha256(str(seed).encode()).hexdigest(), family="sd1", vectors=vectors)


def no_progress(_step: int, _steps: int) -> None:
    return None


def test_image_i_uses_seed_plus_i_wrapping_at_2_64(sd1_generator):
    images = sd1_generator.run(job(seed=2**64 - 1, number_results=2), [], no_progress)
    assert [image.seed for image in images] == [2**64 - 1, 0]
    assert Image.open(io.BytesIO(images[0].data)).size == (128, 128)


def test_a_fixed_seed_gives_the_same_image_and_another_seed_another(sd1_generator):
    placed = [PlacedEmbedding(embedding(1), 0.9, "positive")]
    first = sd1_generator.run(job(seed=7), placed, no_progress)[0].data
    again = sd1_generator.run(job(seed=7), placed, no_progress)[0].data
    other = sd1_generator.run(job(seed=8), placed, no_progress)[0].data
    assert first == again
    assert first != other


def test_an_embedding_changes_the_image(sd1_generator):
    plain = sd1_generator.run(job(seed=3), [], no_progress)[0].data
    with_embedding = sd1_generator.run(job(seed=3), [PlacedEmbedding(embedding(2), 1.0, "positive")], no_progress)[0].data
    assert plain != with_embedding


def test_progress_is_reported_each_step_and_cancellation_stops_the_job(sd1_generator):
    steps = []
    sd1_generator.run(job(steps=3), [], lambda step, total: steps.append((step, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)]

    def cancel_after_first(step: int, _total: int) -> None:
        if step == 1:
            raise Cancelled("cancelled by the gateway")

    with pytest.raises(Cancelled):
        sd1_generator.run(job(steps=5), [], cancel_after_first)
    # The next job runs normally after a cancelled one.
    assert len(sd1_generator.run(job(), [], no_progress)) == 1


@pytest.mark.parametrize("output_format, pil_format", [("PNG", "PNG"), ("JPG", "JPEG"), ("WEBP", "WEBP")])
def test_output_formats_are_real_images(sd1_generator, output_format, pil_format):
    image = sd1_generator.run(job(output_format=output_format), [], no_progress)[0]
    assert image.format == output_format
    assert Image.open(io.BytesIO(image.data)).format == pil_format


def test_schedulers_by_name_and_unknown_ones_refused(sd1_generator):
    for name in ("Euler a", "DPM++ 2M Karras", "UniPCMultistepScheduler", "DDIM"):
        assert len(sd1_generator.run(job(scheduler=name), [], no_progress)) == 1
    with pytest.raises(InvalidJob, match="not supported"):
        sd1_generator.run(job(scheduler="Imaginary"), [], no_progress)


@pytest.mark.parametrize("output_format", ["JPG", "WEBP"])
def test_output_quality_is_applied_to_lossy_formats(sd1_generator, output_format):
    """Capability outputQuality: the same image encoded at 20 is smaller than at 99, and decodes."""
    low, high = (sd1_generator.run(job(output_format=output_format, output_quality=quality, width=256, height=256), [], no_progress)[0] for quality in (20, 99))
    assert len(low.data) < len(high.data)
    assert Image.open(io.BytesIO(low.data)).size == (256, 256)


def test_output_quality_does_not_touch_png(sd1_generator):
    assert sd1_generator.run(job(output_format="PNG", output_quality=20), [], no_progress)[0].data == sd1_generator.run(job(output_format="PNG"), [], no_progress)[0].data


def test_prompt_weighting_reaches_the_image(sd1_generator):
    prompt = "a (lighthouse:1.4) at [dusk]"
    literal = sd1_generator.run(job(positive_prompt=prompt), [], no_progress)[0].data
    weighted = sd1_generator.run(job(positive_prompt=prompt, prompt_weighting="sdEmbeds"), [], no_progress)[0].data
    compel = sd1_generator.run(job(positive_prompt="a (lighthouse)1.4 at dusk-", prompt_weighting="compel"), [], no_progress)[0].data
    assert len({literal, weighted, compel}) == 3
    assert sd1_generator.run(job(positive_prompt=prompt, prompt_weighting="sdEmbeds"), [], no_progress)[0].data == weighted
