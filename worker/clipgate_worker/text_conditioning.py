"""Prompt encoding with injected embeddings, the convention most users know from A1111.

- Each embedding's vectors occupy slots in the token-embedding table of every text encoder it has a tensor
  for (SDXL: ``clip_l`` → encoder 1, ``clip_g`` → encoder 2); its tokens follow the prompt text of the side
  its placement names (positive or negative).
- Emphasis: the encoder's output at an embedding's positions is multiplied by its weight, then the whole
  chunk is rescaled so its mean is what it was before.
- Prompts longer than one 75-token CLIP window are split into chunks, each encoded with its own start and end
  tokens and concatenated, never truncated; positive and negative get the same number of chunks.
- Pooling (SDXL's pooled text embedding) is taken at the end token, not at the highest token id: slot ids
  are higher than the end token's, and CLIP's legacy argmax pooling would land on an embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .conditioning_types import Conditioning, Family, LoadedEmbedding, PlacedEmbedding
from .errors import EmbeddingShapeMismatch
from .token_slots import SlotTable

CHUNK_TOKENS = 75
WINDOW = CHUNK_TOKENS + 2

#: Which tensor of an embedding file each encoder of a family takes.
ENCODER_TENSORS: dict[Family, tuple[str, ...]] = {"sd1": ("clip_l",), "sdxl": ("clip_l", "clip_g")}

#: Extra rows added to each token-embedding table for resident embeddings.
DEFAULT_SLOTS = 1024


@dataclass
class _Encoder:
    tensor: str
    tokenizer: object
    model: nn.Module
    table: nn.Embedding
    vocabulary_rows: int
    final_layer_norm: nn.Module
    bos: int
    eos: int
    pad: int


class TextConditioner:
    def __init__(self, pipeline: object, family: Family, slots: int = DEFAULT_SLOTS) -> None:
        self.family = family
        pairs = [(getattr(pipeline, "tokenizer"), getattr(pipeline, "text_encoder"))]
        if family == "sdxl":
            pairs.append((getattr(pipeline, "tokenizer_2"), getattr(pipeline, "text_encoder_2")))
        #: SDXL encodes an empty negative prompt as zeros, as diffusers does when force_zeros_for_empty_prompt is set.
        self.zero_empty_negative = family == "sdxl" and bool(getattr(getattr(pipeline, "config", None), "force_zeros_for_empty_prompt", True))
        self.slots = SlotTable(slots)
        self.encoders = [self._prepare(tensor, tokenizer, model, slots) for tensor, (tokenizer, model) in zip(ENCODER_TENSORS[family], pairs)]

    @staticmethod
    def _prepare(tensor: str, tokenizer: object, model: nn.Module, slots: int) -> _Encoder:
        table = model.get_input_embeddings()
        vocabulary_rows = table.weight.shape[0]
        # No mean resizing: the new rows are slots, zeroed below and written per embedding.
        model.resize_token_embeddings(vocabulary_rows + slots, mean_resizing=False)
        table = model.get_input_embeddings()
        with torch.no_grad():
            table.weight[vocabulary_rows:] = 0
        eos = int(tokenizer.eos_token_id)  # type: ignore[attr-defined]
        # Pool at the end token, whatever ids follow it (see the module docstring).
        for module in model.modules():
            if hasattr(module, "eos_token_id"):
                module.eos_token_id = eos
        final_layer_norm = next(module for name, module in model.named_modules() if name.endswith("final_layer_norm"))
        return _Encoder(
            tensor=tensor,
            tokenizer=tokenizer,
            model=model,
            table=table,
            vocabulary_rows=vocabulary_rows,
            final_layer_norm=final_layer_norm,
            bos=int(tokenizer.bos_token_id),  # type: ignore[attr-defined]
            eos=eos,
            pad=int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos),  # type: ignore[attr-defined]
        )

    def check_compatible(self, embedding: LoadedEmbedding) -> None:
        """Refuses an embedding whose tensors do not fit this pipeline's encoders, saying both shapes."""
        expected = ENCODER_TENSORS[self.family]
        if embedding.family != self.family or set(embedding.vectors) != set(expected):
            raise EmbeddingShapeMismatch(
                f"embedding {embedding.sha256[:12]} is for {embedding.family} ({sorted(embedding.vectors)}), "
                f"but this model is {self.family} and needs {list(expected)}"
            )
        for encoder in self.encoders:
            width = encoder.table.weight.shape[1]
            found = embedding.vectors[encoder.tensor].shape[1]
            if found != width:
                raise EmbeddingShapeMismatch(f"embedding {embedding.sha256[:12]}: {encoder.tensor} vectors are {found} wide; the text encoder takes {width}")

    def token_ids(self, embedding: LoadedEmbedding, pinned: set[str]) -> list[int]:
        """Slot offsets of an embedding, writing its rows if it is not resident yet."""
        slots = self.slots.lookup(embedding.sha256)
        if slots is not None:
            return slots
        self.check_compatible(embedding)
        slots = self.slots.allocate(embedding.sha256, embedding.count, pinned)
        try:
            with torch.no_grad():
                for encoder in self.encoders:
                    rows = embedding.vectors[encoder.tensor].to(encoder.table.weight.device, encoder.table.weight.dtype)
                    index = torch.tensor([encoder.vocabulary_rows + slot for slot in slots], device=encoder.table.weight.device)
                    encoder.table.weight.index_copy_(0, index, rows)
        except Exception:
            self.slots.release(slots)
            raise
        self.slots.commit(embedding.sha256, slots)
        return slots

    @torch.no_grad()
    def encode(self, positive: str, negative: str, embeddings: list[PlacedEmbedding], clip_skip: int = 0) -> Conditioning:
        pinned = {placed.embedding.sha256 for placed in embeddings}
        slot_ids = {placed.embedding.sha256: self.token_ids(placed.embedding, pinned) for placed in embeddings}
        sides = {
            side: [placed for placed in embeddings if placed.placement == side] for side in ("positive", "negative")
        }
        outputs: dict[str, list[torch.Tensor]] = {"positive": [], "negative": []}
        pooled: dict[str, torch.Tensor | None] = {"positive": None, "negative": None}
        for encoder in self.encoders:
            sequences = {
                "positive": self._sequence(encoder, positive, sides["positive"], slot_ids),
                "negative": self._sequence(encoder, negative, sides["negative"], slot_ids),
            }
            chunks = max(1, *(math.ceil(len(ids) / CHUNK_TOKENS) for ids, _ in sequences.values()))
            for side, (ids, weights) in sequences.items():
                hidden, side_pooled = self._encode_chunks(encoder, ids, weights, chunks, clip_skip)
                outputs[side].append(hidden)
                if side_pooled is not None:
                    pooled[side] = side_pooled

        prompt_embeds = torch.cat(outputs["positive"], dim=-1)
        negative_embeds = torch.cat(outputs["negative"], dim=-1)
        if self.family != "sdxl":
            return Conditioning(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds)
        negative_pooled = pooled["negative"]
        if self.zero_empty_negative and negative.strip() == "" and not sides["negative"]:
            negative_embeds = torch.zeros_like(negative_embeds)
            negative_pooled = torch.zeros_like(negative_pooled) if negative_pooled is not None else None
        return Conditioning(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds,
            pooled_prompt_embeds=pooled["positive"],
            negative_pooled_prompt_embeds=negative_pooled,
        )

    def _sequence(self, encoder: _Encoder, text: str, placed: list[PlacedEmbedding], slot_ids: dict[str, list[int]]) -> tuple[list[int], list[float]]:
        """The prompt's token ids, then each embedding's slot ids, with a weight per token."""
        ids = list(encoder.tokenizer(text, add_special_tokens=False, truncation=False).input_ids) if text else []  # type: ignore[operator]
        weights = [1.0] * len(ids)
        for entry in placed:
            rows = [encoder.vocabulary_rows + slot for slot in slot_ids[entry.embedding.sha256]]
            used = len(ids) % CHUNK_TOKENS
            if used and used + len(rows) > CHUNK_TOKENS:
                # As A1111 does: an embedding never straddles two windows; the current one is closed with end
                # tokens and the embedding starts the next, so its vectors are attended to together.
                ids.extend([encoder.eos] * (CHUNK_TOKENS - used))
                weights.extend([1.0] * (CHUNK_TOKENS - used))
            ids.extend(rows)
            weights.extend([float(entry.weight)] * len(rows))
        return ids, weights

    def _encode_chunks(self, encoder: _Encoder, ids: list[int], weights: list[float], chunks: int, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = encoder.table.weight.device
        hidden_chunks = []
        pooled = None
        for index in range(chunks):
            chunk_ids = ids[index * CHUNK_TOKENS : (index + 1) * CHUNK_TOKENS]
            chunk_weights = weights[index * CHUNK_TOKENS : (index + 1) * CHUNK_TOKENS]
            padding = WINDOW - 2 - len(chunk_ids)
            window = torch.tensor([[encoder.bos, *chunk_ids, encoder.eos, *([encoder.pad] * padding)]], device=device)
            multipliers = torch.tensor([1.0, *chunk_weights, 1.0, *([1.0] * padding)], device=device)
            output = encoder.model(window, output_hidden_states=True)
            hidden = self._select_layer(encoder, output, clip_skip)
            hidden_chunks.append(apply_emphasis(hidden, multipliers))
            if index == 0 and hasattr(output, "text_embeds"):
                # SDXL's pooled embedding comes from the second encoder's first window, as in A1111.
                pooled = output.text_embeds
        return torch.cat(hidden_chunks, dim=1), pooled

    def _select_layer(self, encoder: _Encoder, output: object, clip_skip: int) -> torch.Tensor:
        """SD 1.x: the last layer (or an earlier one, final-normalised); SDXL: the penultimate, diffusers' way."""
        skip = max(0, clip_skip - 1)
        hidden_states = output.hidden_states  # type: ignore[attr-defined]
        if self.family == "sdxl":
            return hidden_states[-(2 + skip)]
        if skip == 0:
            return output.last_hidden_state  # type: ignore[attr-defined]
        return encoder.final_layer_norm(hidden_states[-(1 + skip)])


def apply_emphasis(hidden: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
    """Scales each position by its weight, then restores the window's mean (A1111's emphasis)."""
    original_mean = hidden.mean()
    weighted = hidden * multipliers.to(hidden.dtype).reshape(1, -1, 1)
    return weighted * (original_mean / weighted.mean())
