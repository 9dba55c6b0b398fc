"""LoRAs on one pipeline: loaded once per file with diffusers, kept resident, exactly the job's active.

- Each LoRA file becomes a diffusers/PEFT adapter named by its SHA-256 (``load_lora_weights``: UNet and text
  encoder(s), kohya and PEFT namings alike); a later job with the same file finds it loaded.
- A job's adapters are set with its weights (``set_adapters``, −4..4 as Runware's); every other adapter is
  inactive, so nothing of one job's LoRAs reaches the next. A job without LoRAs runs with LoRA disabled.
- Resident adapters are kept under a byte budget (the files' sizes), least recently used first out
  (``delete_adapters``); the job's own are never evicted while it runs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LoraFileInvalid

logger = logging.getLogger(__name__)

DEFAULT_BUDGET_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class PlacedLora:
    """A LoRA as a job uses it: its verified local file and the job's weight."""

    sha256: str
    path: Path
    size_bytes: int
    weight: float


def adapter_name(sha256: str) -> str:
    return f"lora_{sha256[:16]}"


class LoraAdapters:
    def __init__(self, pipeline: Any, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.pipeline = pipeline
        self.budget_bytes = budget_bytes
        self._resident: OrderedDict[str, int] = OrderedDict()

    def resident(self) -> list[str]:
        return list(self._resident)

    def activate(self, loras: list[PlacedLora]) -> None:
        """Makes exactly ``loras`` active, at their weights; with none, LoRA is off."""
        if not loras:
            if self._resident:
                self.pipeline.disable_lora()
            return
        names = []
        for lora in loras:
            name = adapter_name(lora.sha256)
            if name not in self._resident:
                self._load(lora, name, keep={adapter_name(other.sha256) for other in loras})
            self._resident.move_to_end(name)
            names.append(name)
        self.pipeline.enable_lora()
        self.pipeline.set_adapters(names, adapter_weights=[float(lora.weight) for lora in loras])

    def _load(self, lora: PlacedLora, name: str, keep: set[str]) -> None:
        self._evict(lora.size_bytes, keep)
        try:
            self.pipeline.load_lora_weights(str(lora.path), adapter_name=name)
        except Exception as error:
            # A half-loaded adapter must not linger in some of the pipeline's modules.
            self._forget(name)
            raise LoraFileInvalid(f"LoRA {lora.sha256[:12]} does not load into this model: {type(error).__name__}: {error}") from None
        self._resident[name] = lora.size_bytes
        logger.info("loaded LoRA %s (%d bytes) as adapter %s", lora.sha256[:12], lora.size_bytes, name)

    def _evict(self, incoming: int, keep: set[str]) -> None:
        total = sum(self._resident.values())
        for name in list(self._resident):
            if total + incoming <= self.budget_bytes:
                return
            if name in keep:
                continue
            total -= self._resident.pop(name)
            self._forget(name)
            logger.info("evicted LoRA adapter %s to stay within %d bytes", name, self.budget_bytes)

    def _forget(self, name: str) -> None:
        try:
            self.pipeline.delete_adapters([name])
        except Exception:  # never loaded anywhere: nothing to delete
            logger.debug("adapter %s was not loaded", name)
