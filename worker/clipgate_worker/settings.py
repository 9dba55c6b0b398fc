"""Environment → validated worker settings.

Every variable is checked before anything starts, and all bad ones are reported together, one line each,
saying what was expected and what was found — an operator fixes the whole file in one go.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import torch

from .conditioning_types import Family

#: The gateway's built-in SD 1.5 and SDXL 1.0 AIRs: what a tiny worker serves unless WORKER_MODELS says otherwise.
TINY_DEFAULT_MODELS: tuple[tuple[str, Family], ...] = (
    ("civitai:4384@128713", "sd1"),
    ("civitai:101055@128078", "sdxl"),
)
MIB = 1024 * 1024
FAMILIES: tuple[str, ...] = get_args(Family)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(Exception):
    """One or more variables are invalid; the message has one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid worker configuration:\n" + "\n".join(f"  {problem}" for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class ModelSource:
    """A model the worker serves. ``path`` is a diffusers folder or a single-file checkpoint; None in tiny mode."""

    air: str
    family: Family
    path: Path | None


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    tiny: bool
    models: tuple[ModelSource, ...]
    #: Jobs waiting beyond a full batch; more are refused with 429 busy.
    queue_max: int
    #: The most images one UNet pass draws for compatible queued jobs together (1: no batching).
    batch_size: int
    max_loaded_models: int
    embedding_cache_dir: Path
    embedding_cache_bytes: int
    lora_cache_dir: Path
    lora_cache_bytes: int
    lora_max_bytes: int
    #: The worker's own registry token, sent only to ``registry_hosts`` (never carried in a job).
    registry_token: str | None
    registry_hosts: tuple[str, ...]
    device: torch.device
    dtype: torch.dtype
    log_level: str

    @property
    def max_concurrency(self) -> int:
        """Jobs run or queued at once: a full batch running and ``queue_max`` behind it, so that the queue
        can hold the next batch whole while one runs (the same sum JobQueue admits against)."""
        return self.batch_size + self.queue_max


def load_settings(
    environ: Mapping[str, str] | None = None, cuda_available: Callable[[], bool] = torch.cuda.is_available
) -> Settings:
    """Reads WORKER_* variables; raises SettingsError listing every invalid one."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def read(name: str, default: str, parse: Callable[[str], Any]) -> Any:
        raw = env.get(name, "").strip() or default
        try:
            return parse(raw)
        except ValueError as error:
            problems.append(f"{name}: {error}")
            return None

    host = read("WORKER_HOST", "127.0.0.1", _non_empty)
    port = read("WORKER_PORT", "9000", lambda raw: _integer(raw, 1, 65535))
    tiny = read("WORKER_TINY", "0", _flag)
    models = read("WORKER_MODELS", "", lambda raw: _models(raw, bool(tiny)))
    queue_max = read("WORKER_QUEUE_MAX", "4", lambda raw: _integer(raw, 0, 10_000))
    batch_size = read("WORKER_BATCH_SIZE", "4", lambda raw: _integer(raw, 1, 64))
    max_loaded = read("WORKER_MAX_LOADED_MODELS", "2", lambda raw: _integer(raw, 1, 64))
    cache_dir = read(
        "WORKER_EMBEDDING_CACHE_DIR", str(Path(tempfile.gettempdir()) / "clipgate-worker-embeddings"), _directory
    )
    cache_bytes = read("WORKER_EMBEDDING_CACHE_BYTES", str(512 * MIB), lambda raw: _integer(raw, 1, 1 << 50))
    lora_dir = read("WORKER_LORA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "clipgate-worker-loras"), _directory)
    lora_bytes = read("WORKER_LORA_CACHE_BYTES", str(4096 * MIB), lambda raw: _integer(raw, 1, 1 << 50))
    lora_max = read("WORKER_LORA_MAX_BYTES", str(1024 * MIB), lambda raw: _integer(raw, 1, 1 << 40))
    registry_token = env.get("WORKER_REGISTRY_TOKEN", "").strip() or None
    registry_hosts = read("WORKER_REGISTRY_HOSTS", "civitai.com", _hosts)
    device = read("WORKER_DEVICE", "auto", lambda raw: _device(raw, cuda_available))
    log_level = read("WORKER_LOG_LEVEL", "INFO", _log_level)
    if problems:
        raise SettingsError(problems)
    return Settings(
        host=host,
        port=port,
        tiny=tiny,
        models=models,
        queue_max=queue_max,
        batch_size=batch_size,
        max_loaded_models=max_loaded,
        embedding_cache_dir=cache_dir,
        embedding_cache_bytes=cache_bytes,
        lora_cache_dir=lora_dir,
        lora_cache_bytes=lora_bytes,
        lora_max_bytes=lora_max,
        registry_token=registry_token,
        registry_hosts=registry_hosts,
        device=device,
        # Half precision is what GPUs run diffusion in; CPUs have no fast fp16 kernels.
        dtype=torch.float16 if device.type == "cuda" else torch.float32,
        log_level=log_level,
    )


def _hosts(raw: str) -> tuple[str, ...]:
    """Comma-separated host names (``host`` or ``host:port``), lower-cased."""
    hosts = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not hosts or any("/" in host or " " in host for host in hosts):
        raise ValueError(f"expected comma-separated host names such as civitai.com or 127.0.0.1:8080; found {raw!r}")
    return hosts


def _non_empty(raw: str) -> str:
    if not raw:
        raise ValueError("expected a non-empty value; found an empty one")
    return raw


def _integer(raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"expected an integer from {low} to {high}; found {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"expected an integer from {low} to {high}; found {value}")
    return value


def _flag(raw: str) -> bool:
    if raw not in ("0", "1"):
        raise ValueError(f"expected 1 (tiny pipelines) or 0; found {raw!r}")
    return raw == "1"


def _directory(raw: str) -> Path:
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"expected a directory; found a file at {path}")
    return path


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}; found {raw!r}")
    return level


def _device(raw: str, cuda_available: Callable[[], bool]) -> torch.device:
    if raw == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    try:
        device = torch.device(raw)
    except RuntimeError:
        raise ValueError(f"expected auto, cpu, cuda or cuda:N; found {raw!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"expected auto, cpu, cuda or cuda:N; found {raw!r}")
    if device.type == "cuda" and not cuda_available():
        raise ValueError(f"{raw!r} asks for CUDA, but torch finds no CUDA device here")
    return device


def _models(raw: str, tiny: bool) -> tuple[ModelSource, ...]:
    """WORKER_MODELS: a JSON list of {air, family, path}; path is optional only in tiny mode."""
    if not raw:
        if tiny:
            return tuple(ModelSource(air=air, family=family, path=None) for air, family in TINY_DEFAULT_MODELS)
        raise ValueError('expected a JSON list of {"air", "family", "path"} objects (or WORKER_TINY=1); found nothing')
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"expected JSON; found invalid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"expected a non-empty JSON list; found {type(entries).__name__} {raw[:80]!r}")
    sources: list[ModelSource] = []
    for index, entry in enumerate(entries):
        sources.append(_model(entry, f"[{index}]", tiny))
    airs = [source.air for source in sources]
    duplicates = sorted({air for air in airs if airs.count(air) > 1})
    if duplicates:
        raise ValueError(f"expected each air once; found {', '.join(duplicates)} more than once")
    return tuple(sources)


def _model(entry: object, where: str, tiny: bool) -> ModelSource:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object {{air, family, path}}; found {type(entry).__name__}")
    unknown = sorted(set(entry) - {"air", "family", "path"})
    if unknown:
        raise ValueError(f"{where}: expected only air, family and path; found also {', '.join(unknown)}")
    air, family, path = entry.get("air"), entry.get("family"), entry.get("path")
    if not isinstance(air, str) or not air:
        raise ValueError(f"{where}.air: expected a non-empty string; found {air!r}")
    if family not in FAMILIES:
        raise ValueError(f"{where}.family: expected one of {', '.join(FAMILIES)}; found {family!r}")
    if path is None:
        if not tiny:
            raise ValueError(f"{where}.path: expected a diffusers folder or a .safetensors checkpoint; found none")
        return ModelSource(air=air, family=family, path=None)
    if not isinstance(path, str) or not path:
        raise ValueError(f"{where}.path: expected a non-empty string; found {path!r}")
    location = Path(path).expanduser()
    if not tiny:
        if not location.exists():
            raise ValueError(f"{where}.path: expected a diffusers folder or a .safetensors checkpoint; {location} does not exist")
        if location.is_file() and location.suffix != ".safetensors":
            raise ValueError(f"{where}.path: expected a .safetensors single-file checkpoint; found {location.name}")
    return ModelSource(air=air, family=family, path=location)


def configure_logging(level: str) -> None:
    """One format for the worker's and uvicorn's lines (uvicorn is told to leave logging alone)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
