"""Shapes passed between the embedding store, the text conditioner and the generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Family = Literal["sd1", "sdxl"]
Placement = Literal["positive", "negative"]


@dataclass(frozen=True)
class LoadedEmbedding:
    """A canonical embedding file, read: one [n, width] float32 tensor per text encoder."""

    sha256: str
    family: Family
    #: "clip_l" (768 wide) for sd1 and sdxl; "clip_g" (1280 wide) for sdxl.
    vectors: dict[str, torch.Tensor]

    @property
    def count(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0])

    @property
    def token_names(self) -> list[str]:
        """Content-named tokens, one per vector: <emb-1a2b3c4d>, <emb-1a2b3c4d_1>, …"""
        stem = f"emb-{self.sha256[:8]}"
        return [f"<{stem}>" if index == 0 else f"<{stem}_{index}>" for index in range(self.count)]


@dataclass(frozen=True)
class PlacedEmbedding:
    """An embedding as a job uses it: which prompt it goes into, with what emphasis (always >= 0), and the
    words of that prompt that stand for it (its vectors go there; without any they follow the prompt)."""

    embedding: LoadedEmbedding
    weight: float
    placement: Placement
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conditioning:
    """What the diffusion pipeline is called with instead of prompt strings."""

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor
    #: SDXL only: the pooled output of the second text encoder.
    pooled_prompt_embeds: torch.Tensor | None = None
    negative_pooled_prompt_embeds: torch.Tensor | None = None
