from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch

from clipgate_worker.settings import TINY_DEFAULT_MODELS, SettingsError, load_settings


def no_cuda() -> bool:
    return False


def test_tiny_mode_defaults() -> None:
    settings = load_settings({"WORKER_TINY": "1"}, cuda_available=no_cuda)
    assert (settings.host, settings.port, settings.tiny) == ("127.0.0.1", 9000, True)
    assert [(model.air, model.family, model.path) for model in settings.models] == [(air, family, None) for air, family in TINY_DEFAULT_MODELS]
    # A full batch running and the queue behind it: the next batch can wait whole while one runs.
    assert (settings.queue_max, settings.batch_size, settings.max_concurrency) == (4, 4, 8)
    assert settings.max_loaded_models == 2
    assert settings.embedding_cache_bytes == 512 * 1024 * 1024
    assert settings.embedding_cache_dir.parent == Path(tempfile.gettempdir())
    assert (settings.device, settings.dtype) == (torch.device("cpu"), torch.float32)


def test_auto_device_prefers_cuda_in_half_precision() -> None:
    settings = load_settings({"WORKER_TINY": "1"}, cuda_available=lambda: True)
    assert (settings.device.type, settings.dtype) == ("cuda", torch.float16)


def test_models_from_json(tmp_path: Path) -> None:
    folder = tmp_path / "sd15"
    folder.mkdir()
    checkpoint = tmp_path / "sdxl.safetensors"
    checkpoint.write_bytes(b"x")
    models = [{"air": "a:1@1", "family": "sd1", "path": str(folder)}, {"air": "b:2@2", "family": "sdxl", "path": str(checkpoint)}]
    settings = load_settings({"WORKER_MODELS": json.dumps(models), "WORKER_PORT": "9100", "WORKER_QUEUE_MAX": "0", "WORKER_BATCH_SIZE": "1"}, cuda_available=no_cuda)
    assert [(model.air, model.family, model.path) for model in settings.models] == [("a:1@1", "sd1", folder), ("b:2@2", "sdxl", checkpoint)]
    assert settings.tiny is False and settings.port == 9100 and settings.max_concurrency == 1


@pytest.mark.parametrize(("raw", "found"), [("65", "found 65"), ("four", "found 'four'"), ("-2", "found -2")])
def test_batch_size_is_an_integer_from_1_to_64(raw: str, found: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"WORKER_TINY": "1", "WORKER_BATCH_SIZE": raw}, cuda_available=no_cuda)
    assert caught.value.problems == [f"WORKER_BATCH_SIZE: expected an integer from 1 to 64; {found}"]


def test_batch_size_sets_the_batch_and_widens_max_concurrency() -> None:
    for raw, expected in (("1", (1, 5)), ("8", (8, 12)), ("64", (64, 68))):
        settings = load_settings({"WORKER_TINY": "1", "WORKER_BATCH_SIZE": raw}, cuda_available=no_cuda)
        assert (settings.batch_size, settings.max_concurrency) == expected


def test_tiny_mode_serves_the_listed_models_without_paths() -> None:
    settings = load_settings({"WORKER_TINY": "1", "WORKER_MODELS": '[{"air": "x:1@1", "family": "sdxl"}]'}, cuda_available=no_cuda)
    assert [(model.air, model.family, model.path) for model in settings.models] == [("x:1@1", "sdxl", None)]


def test_every_bad_variable_is_reported_with_expected_and_found() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                "WORKER_PORT": "http",
                "WORKER_TINY": "yes",
                "WORKER_QUEUE_MAX": "-1",
                "WORKER_BATCH_SIZE": "0",
                "WORKER_EMBEDDING_CACHE_BYTES": "lots",
                "WORKER_DEVICE": "cuda",
                "WORKER_LOG_LEVEL": "loud",
            },
            cuda_available=no_cuda,
        )
    problems = caught.value.problems
    assert [problem.split(":")[0] for problem in problems] == [
        "WORKER_PORT",
        "WORKER_TINY",
        "WORKER_MODELS",
        "WORKER_QUEUE_MAX",
        "WORKER_BATCH_SIZE",
        "WORKER_EMBEDDING_CACHE_BYTES",
        "WORKER_DEVICE",
        "WORKER_LOG_LEVEL",
    ]
    assert "expected an integer from 1 to 65535; found 'http'" in problems[0]
    assert "found 'yes'" in problems[1]
    assert "found -1" in problems[3]
    assert "expected an integer from 1 to 64; found 0" in problems[4]
    assert "no CUDA device" in problems[6]
    assert str(caught.value).count("\n") == len(problems)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ("not json", "found invalid JSON"),
        ("{}", "expected a non-empty JSON list"),
        ('[{"air": "a:1@1", "family": "flux", "path": "/x"}]', "[0].family: expected one of sd1, sdxl; found 'flux'"),
        ('[{"air": "", "family": "sd1", "path": "/x"}]', "[0].air: expected a non-empty string"),
        ('[{"air": "a:1@1", "family": "sd1"}]', "[0].path: expected a diffusers folder or a .safetensors checkpoint; found none"),
        ('[{"air": "a:1@1", "family": "sd1", "path": "/does/not/exist"}]', "/does/not/exist does not exist"),
        ('[{"air": "a:1@1", "family": "sd1", "path": "/x", "dtype": "fp8"}]', "found also dtype"),
    ],
)
def test_bad_models(models: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"WORKER_MODELS": models}, cuda_available=no_cuda)
    assert caught.value.problems[0].startswith("WORKER_MODELS: ")
    assert message in caught.value.problems[0]


def test_duplicate_airs_and_pickle_checkpoints_are_refused(tmp_path: Path) -> None:
    legacy = tmp_path / "model.ckpt"
    legacy.write_bytes(b"x")
    with pytest.raises(SettingsError, match="found model.ckpt"):
        load_settings({"WORKER_MODELS": json.dumps([{"air": "a:1@1", "family": "sd1", "path": str(legacy)}])}, cuda_available=no_cuda)
    twice = [{"air": "a:1@1", "family": "sd1"}, {"air": "a:1@1", "family": "sdxl"}]
    with pytest.raises(SettingsError, match="found a:1@1 more than once"):
        load_settings({"WORKER_TINY": "1", "WORKER_MODELS": json.dumps(twice)}, cuda_available=no_cuda)


def test_cache_dir_must_not_be_a_file(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(SettingsError, match="WORKER_EMBEDDING_CACHE_DIR: expected a directory; found a file"):
        load_settings({"WORKER_TINY": "1", "WORKER_EMBEDDING_CACHE_DIR": str(file)}, cuda_available=no_cuda)
