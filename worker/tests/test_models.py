from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import StableDiffusionPipeline
from worker_support import SD1_AIR, SDXL_AIR, TINY_SOURCES, StandInGenerator

from clipgate_worker.errors import UnknownModel
from clipgate_worker.models import ModelRegistry, load_pipeline
from clipgate_worker.settings import ModelSource, load_settings
from clipgate_worker.tiny_pipelines import build_tiny_pipeline


def counting_registry(max_loaded: int) -> tuple[ModelRegistry, list[str]]:
    loads: list[str] = []

    def load(source: ModelSource) -> Any:
        loads.append(source.air)
        return torch.nn.Identity()

    registry = ModelRegistry(
        TINY_SOURCES, torch.device("cpu"), load, lambda _pipeline, family, _device: StandInGenerator(family), max_loaded
    )
    return registry, loads


def loaded(registry: ModelRegistry) -> dict[str, bool]:
    return {model.air: model.loaded for model in registry.served()}


def test_models_load_on_first_use_and_stay_loaded() -> None:
    registry, loads = counting_registry(max_loaded=2)
    assert loaded(registry) == {SD1_AIR: False, SDXL_AIR: False}
    assert registry.families() == ["sd1", "sdxl"]
    assert (registry.family_of(SD1_AIR), registry.family_of("other:1@1")) == ("sd1", None)
    first = registry.generator_for(SD1_AIR)
    assert registry.generator_for(SD1_AIR) is first
    registry.generator_for(SDXL_AIR)
    assert loads == [SD1_AIR, SDXL_AIR]
    assert loaded(registry) == {SD1_AIR: True, SDXL_AIR: True}


def test_the_least_recently_used_model_is_unloaded_beyond_the_limit() -> None:
    registry, loads = counting_registry(max_loaded=1)
    registry.generator_for(SD1_AIR)
    registry.generator_for(SDXL_AIR)
    assert loaded(registry) == {SD1_AIR: False, SDXL_AIR: True}
    registry.generator_for(SD1_AIR)
    assert loads == [SD1_AIR, SDXL_AIR, SD1_AIR]


def test_an_unknown_model_names_the_served_ones() -> None:
    registry, _ = counting_registry(max_loaded=1)
    with pytest.raises(UnknownModel, match=f"does not serve model 'x:1@1'; it serves {SD1_AIR}, {SDXL_AIR}"):
        registry.generator_for("x:1@1")


def test_tiny_settings_build_tiny_pipelines(tmp_path: Path) -> None:
    settings = load_settings({"WORKER_TINY": "1", "WORKER_DEVICE": "cpu", "WORKER_EMBEDDING_CACHE_DIR": str(tmp_path)})
    built: list[Any] = []

    def keep(pipeline: Any, family: str, device: torch.device) -> StandInGenerator:
        built.append((pipeline, family, device))
        return StandInGenerator(family)

    ModelRegistry.from_settings(settings, make_generator=keep).generator_for(SDXL_AIR)
    pipeline, family, device = built[0]
    assert (type(pipeline).__name__, family, device) == ("StableDiffusionXLPipeline", "sdxl", torch.device("cpu"))


def test_a_diffusers_folder_loads_from_local_files_only(tmp_path: Path) -> None:
    build_tiny_pipeline("sd1").save_pretrained(tmp_path / "sd15")
    pipeline = load_pipeline(ModelSource("a:1@1", "sd1", tmp_path / "sd15"), tiny=False, dtype=torch.float32)
    assert isinstance(pipeline, StableDiffusionPipeline)
    assert pipeline.safety_checker is None
    assert pipeline.text_encoder.config.hidden_size == 768
