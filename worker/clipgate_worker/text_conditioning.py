"""Prompt encoding with injected embeddings, in the conventions users know from A1111 and ComfyUI.

- Each embedding's vectors occupy slots in the token-embedding table of every text encoder it has a tensor
  for (SDXL: ``clip_l`` → encoder 1, ``clip_g`` → encoder 2). Where the prompt of its side names it (a trigger
  word or its ``<embedding:AIR>`` marker, embedding_mentions.py) its tokens stand there; otherwise they follow
  the prompt's text.
- The prompt is text (Runware's default), A1111's syntax (``sdEmbeds``, prompt_weighting.py) or compel's
  (``compel``, compel_conditioning.py). An embedding's weight multiplies the weight the prompt gives it.
- Emphasis (literal and sdEmbeds): the encoder's output at each position is multiplied by its weight, then the
  whole window is rescaled so its mean is what it was before (A1111's).
- Prompts longer than one 75-token window are encoded window by window and concatenated, never truncated
  (prompt_windows.py); the shorter side is repeated to the other's length, which leaves its prediction as it is.
- Pooling (SDXL's pooled text embedding) is taken at the end token, not at the highest token id: slot ids
  are higher than the end token's, and CLIP's legacy argmax pooling would land on an embedding.
- Nothing non-finite leaves here: values that overflow the device's dtype end the job with their own error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .conditioning_types import Conditioning, Family, LoadedEmbedding, PlacedEmbedding
from .embedding_mentions import Placeholders, place_mentions
from .errors import ConditioningNotFinite, EmbeddingFileInvalid, EmbeddingShapeMismatch
from .prompt_weighting import PromptWeighting, literal_pieces, parse_sd_embeds
from .prompt_windows import CHUNK_TOKENS, Window, side_windows
from .token_slots import SlotTable

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

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, truncation=False).input_ids) if text else []  # type: ignore[operator]


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
                    if not torch.isfinite(rows).all():
                        # The file passed its float32 check; in float16 a value past 65504 becomes infinite.
                        largest = float(embedding.vectors[encoder.tensor].abs().max())
                        raise EmbeddingFileInvalid(
                            f"embedding {embedding.sha256[:12]}: its {encoder.tensor} values reach {largest:g}, beyond "
                            f"{torch.finfo(encoder.table.weight.dtype).max:g}, the largest {encoder.table.weight.dtype} this device runs in"
                        )
                    index = torch.tensor([encoder.vocabulary_rows + slot for slot in slots], device=encoder.table.weight.device)
                    encoder.table.weight.index_copy_(0, index, rows)
        except Exception:
            self.slots.release(slots)
            raise
        self.slots.commit(embedding.sha256, slots)
        return slots

    @torch.no_grad()
    def encode(
        self,
        positive: str,
        negative: str,
        embeddings: list[PlacedEmbedding],
        clip_skip: int = 0,
        weighting: PromptWeighting | None = None,
    ) -> Conditioning:
        pinned = {placed.embedding.sha256 for placed in embeddings}
        slot_ids = {placed.embedding.sha256: self.token_ids(placed.embedding, pinned) for placed in embeddings}
        placeholders = Placeholders.fresh()
        texts = {"positive": positive, "negative": negative}
        sides = {side: self._side(texts[side], side, embeddings, placeholders) for side in ("positive", "negative")}
        outputs: dict[str, list[torch.Tensor]] = {"positive": [], "negative": []}
        pooled: dict[str, torch.Tensor | None] = {"positive": None, "negative": None}
        for encoder in self.encoders:
            rows = {index: [encoder.vocabulary_rows + slot for slot in slot_ids[placed.embedding.sha256]] for index, placed in enumerate(embeddings)}
            for side, prompt in sides.items():
                if weighting == "compel":
                    hidden, side_pooled = self._compel(encoder, prompt, placeholders, rows, clip_skip)
                else:
                    windows = side_windows(
                        parse_sd_embeds(prompt.text) if weighting == "sdEmbeds" else literal_pieces(prompt.text),
                        encoder.tokenize,
                        placeholders.pattern(),
                        rows,
                        prompt.weights,
                        prompt.appended,
                    )
                    hidden, side_pooled = self._encode_windows(encoder, windows, clip_skip)
                outputs[side].append(hidden)
                if side_pooled is not None:
                    pooled[side] = side_pooled

        prompt_embeds, negative_embeds = same_length(_concatenated(outputs["positive"]), _concatenated(outputs["negative"]))
        result = self._conditioning(prompt_embeds, negative_embeds, pooled, negative, sides["negative"])
        for name, tensor in vars(result).items():
            if tensor is not None and not torch.isfinite(tensor).all():
                raise ConditioningNotFinite(
                    f"the encoded prompt ({name}) holds NaN or infinite values in {tensor.dtype}: an embedding's values or weight "
                    "overflow this device's precision"
                )
        return result

    def _conditioning(
        self,
        prompt_embeds: torch.Tensor,
        negative_embeds: torch.Tensor,
        pooled: dict[str, torch.Tensor | None],
        negative: str,
        negative_side: SidePrompt,
    ) -> Conditioning:
        if self.family != "sdxl":
            return Conditioning(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds)
        negative_pooled = pooled["negative"]
        if self.zero_empty_negative and negative.strip() == "" and not negative_side.weights:
            negative_embeds = torch.zeros_like(negative_embeds)
            negative_pooled = torch.zeros_like(negative_pooled) if negative_pooled is not None else None
        return Conditioning(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds,
            pooled_prompt_embeds=pooled["positive"],
            negative_pooled_prompt_embeds=negative_pooled,
        )

    def _side(self, text: str, side: str, embeddings: list[PlacedEmbedding], placeholders: Placeholders) -> SidePrompt:
        """The side's text with its embeddings' mentions replaced by placeholders, and which are appended instead."""
        own = [(index, placed) for index, placed in enumerate(embeddings) if placed.placement == side]
        placed_text, placed = place_mentions(text, [(index, entry.mentions) for index, entry in own], placeholders)
        return SidePrompt(
            text=placed_text,
            weights={index: float(entry.weight) for index, entry in own},
            appended=[index for index, _ in own if index not in placed],
        )

    def _encode_windows(self, encoder: _Encoder, windows: list[Window], clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = encoder.table.weight.device
        hidden_windows = []
        pooled = None
        for index, window in enumerate(windows):
            padding = CHUNK_TOKENS - len(window.ids)
            ids = torch.tensor([[encoder.bos, *window.ids, encoder.eos, *([encoder.pad] * padding)]], device=device)
            multipliers = torch.tensor([1.0, *window.weights, 1.0, *([1.0] * padding)], device=device)
            output = encoder.model(ids, output_hidden_states=True)
            hidden = self._select_layer(encoder, output, clip_skip)
            hidden_windows.append(apply_emphasis(hidden, multipliers))
            if index == 0 and hasattr(output, "text_embeds"):
                # SDXL's pooled embedding comes from the second encoder's first window, as in A1111.
                pooled = output.text_embeds
        return torch.cat(hidden_windows, dim=1), pooled

    def _compel(self, encoder: _Encoder, prompt: SidePrompt, placeholders: Placeholders, rows: dict[int, list[int]], clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Imported here: compel imports diffusers' pipelines, which only compel jobs should pay for.
        from .compel_conditioning import compel_embeddings, returned_embeddings

        appended = [_compel_weighted(placeholders.of(index), prompt.weights[index]) for index in prompt.appended]
        return compel_embeddings(
            encoder.tokenizer,
            encoder.tokenize,
            encoder.model,
            encoder.final_layer_norm,
            _compel_weighted_mentions(prompt, placeholders),
            appended,
            " ".join([prompt.text, *(placeholders.of(index) for index in prompt.appended)]).strip(),
            placeholders.pattern(),
            rows,
            returned_embeddings(self.family, clip_skip),
            pooled=encoder.tensor == "clip_g",
        )

    def _select_layer(self, encoder: _Encoder, output: object, clip_skip: int) -> torch.Tensor:
        """SD 1.x: the last layer, or with clip skip 2 the penultimate, final-normalised (A1111, ComfyUI, diffusers).
        SDXL: always the penultimate, not normalised — what A1111 (which ignores clip skip on SDXL) and ComfyUI
        (whose "clip skip 2" is SDXL's default) give; diffusers' clip_skip would go one layer further."""
        hidden_states = output.hidden_states  # type: ignore[attr-defined]
        if self.family == "sdxl":
            return hidden_states[-2]
        if clip_skip <= 1:
            return output.last_hidden_state  # type: ignore[attr-defined]
        return encoder.final_layer_norm(hidden_states[-clip_skip])


@dataclass(frozen=True)
class SidePrompt:
    """One side of a job: its text with placeholders, its embeddings' weights, and those it does not name."""

    text: str
    weights: dict[int, float]
    appended: list[int]


def _compel_weighted(placeholder: str, weight: float) -> str:
    # Fixed-point, never "1e-05": compel's grammar reads plain decimals only.
    return placeholder if weight == 1 else f"({placeholder}){format(weight, '.10f').rstrip('0').rstrip('.')}"


def _compel_weighted_mentions(prompt: SidePrompt, placeholders: Placeholders) -> str:
    """In compel's syntax a named embedding's own weight wraps its placeholder, so the prompt's weight multiplies it."""
    return placeholders.pattern().sub(lambda match: _compel_weighted(match.group(0), prompt.weights[int(match.group(1))]), prompt.text)


def _concatenated(parts: list[torch.Tensor]) -> torch.Tensor:
    """SDXL's two encoders side by side; both read the same tokens, so their lengths match (checked)."""
    lengths = {part.shape[1] for part in parts}
    if len(lengths) != 1:
        raise ValueError(f"the text encoders gave sequences of different lengths: {sorted(lengths)}")
    return torch.cat(parts, dim=-1)


def same_length(positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides repeated to the least common multiple of their lengths, as ComfyUI does: attention over a
    sequence repeated k times is attention over the sequence, so neither side's prediction changes (padding with
    encoded empty windows would change it)."""
    p, n = positive.shape[1], negative.shape[1]
    if p == n:
        return positive, negative
    length = math.lcm(p, n)
    return positive.repeat(1, length // p, 1), negative.repeat(1, length // n, 1)


def apply_emphasis(hidden: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
    """Scales each position by its weight, then restores the window's mean (A1111's emphasis)."""
    original_mean = hidden.mean()
    weighted = hidden * multipliers.to(hidden.dtype).reshape(1, -1, 1)
    return weighted * (original_mean / weighted.mean())
