"""LoRAs on the tiny pipelines: applied, weighted, both namings, nothing left for the next job, evicted by bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_loras import write_lora
from worker_support import generator_job

from clipgate_worker.errors import LoraFileInvalid
from clipgate_worker.generate import Generator
from clipgate_worker.lora_adapters import LoraAdapters, PlacedLora
from clipgate_worker.tiny_pipelines import build_tiny_pipeline


job = generator_job


def fresh(family: str) -> Generator:
    return Generator(build_tiny_pipeline(family), family, torch.device("cpu"))  # type: ignore[arg-type]


def image(generator: Generator, loras: list[PlacedLora] = (), **overrides) -> bytes:  # type: ignore[assignment]
    return generator.run(job(**overrides), [], lambda _step, _steps: None, loras)[0].data


def placed(path: Path, sha256: str, weight: float = 1.0) -> PlacedLora:
    return PlacedLora(sha256=sha256, path=path, size_bytes=path.stat().st_size, weight=weight)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("loras")
    sd1, sdxl = build_tiny_pipeline("sd1"), build_tiny_pipeline("sdxl")
    return {
        "sd1-peft": write_lora(directory, sd1, "sd1", 1, "peft"),
        "sd1-kohya": write_lora(directory, sd1, "sd1", 1, "kohya"),
        "sd1-other": write_lora(directory, sd1, "sd1", 2, "peft"),
        "sdxl-kohya": write_lora(directory, sdxl, "sdxl", 3, "kohya"),
        "sdxl-peft": write_lora(directory, sdxl, "sdxl", 3, "peft"),
    }


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_a_lora_changes_the_image_and_at_weight_0_leaves_it_as_without(family, files):
    generator = fresh(family)
    lora = files[f"{family}-peft"]
    without = image(generator)
    assert image(generator, [placed(*lora)]) != without
    assert image(generator, [placed(*lora, weight=0.0)]) == without
    assert image(generator, [placed(*lora, weight=-1.5)]) not in (without, image(generator, [placed(*lora)]))


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_kohya_and_peft_namings_of_one_lora_give_the_same_image(family, files):
    peft = image(fresh(family), [placed(*files[f"{family}-{'peft'}"])])
    kohya = image(fresh(family), [placed(*files[f"{family}-kohya"])])
    assert peft == kohya


def test_nothing_of_one_jobs_lora_reaches_the_next_job(files):
    generator = fresh("sd1")
    image(generator, [placed(*files["sd1-peft"])])
    second = image(generator, [placed(*files["sd1-other"])])
    assert second == image(fresh("sd1"), [placed(*files["sd1-other"])])
    # And a job without LoRAs after them is what a pipeline that never saw one makes.
    assert image(generator) == image(fresh("sd1"))
    assert len(generator.loras.resident()) == 2


def test_adapters_are_evicted_by_bytes_least_recently_used_first_and_reload_the_same(files):
    generator = fresh("sd1")
    first, other = files["sd1-peft"], files["sd1-other"]
    generator.loras.budget_bytes = first[0].stat().st_size + 1
    before = image(generator, [placed(*first)])
    image(generator, [placed(*other)])
    assert generator.loras.resident() == ["lora_" + other[1][:16]]
    assert image(generator, [placed(*first)]) == before


def test_a_lora_of_another_family_is_refused_and_leaves_the_pipeline_clean(files):
    generator = fresh("sdxl")
    clean = image(generator)
    with pytest.raises(LoraFileInvalid) as refused:
        image(generator, [placed(*files["sd1-peft"])])
    assert refused.value.retryable is False
    assert generator.loras.resident() == []
    assert image(generator) == clean


def test_two_loras_at_once_each_at_its_weight(files):
    pipeline = build_tiny_pipeline("sd1")
    adapters = LoraAdapters(pipeline)
    adapters.activate([placed(*files["sd1-peft"], weight=0.7), placed(*files["sd1-other"], weight=-0.3)])
    assert sorted(pipeline.get_active_adapters()) == sorted(adapters.resident())
