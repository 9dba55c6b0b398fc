"""``promptWeighting: compel``: the compel library parses and weights the prompt; embeddings ride in its tokens.

compel (PyPI) is used as it is — its grammar (``word++``, ``(words)1.3``, ``.blend()``, ``.and()``), its
weighting (up-weights scale the distance from the empty prompt, down-weights blend towards the prompt without
the words) and its long-prompt splitting. It only ever sees text: a tokenizer in front of the real one turns
each embedding's placeholder into the embedding's slot ids, so compel weights, splits and encodes them like
any token, and the tokenizer itself is never changed. What clipgate does after compel is the same as for the
other modes: both sides padded to one length by repeating their own windows, not compel's empty-prompt padding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
from compel import Compel, ReturnedEmbeddingsType
from compel.prompt_parser import Blend, Conjunction, FlattenedPrompt, Fragment

from .conditioning_types import Family
from .prompt_windows import Tokenize, ids_with_slots


def returned_embeddings(family: Family, clip_skip: int) -> ReturnedEmbeddingsType:
    """The layers the other modes take (text_conditioning._select_layer), in compel's names."""
    if family == "sdxl":
        return ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
    return ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NORMALIZED if clip_skip >= 2 else ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED


class SlotAwareTokenizer:
    """The parts of a CLIP tokenizer compel calls, with placeholders read as slot ids."""

    def __init__(self, tokenizer: Any, tokenize: Tokenize, placeholder: re.Pattern[str], rows: dict[int, list[int]]) -> None:
        self._tokenizer = tokenizer
        self._tokenize = tokenize
        self._placeholder = placeholder
        self._rows = rows
        # A slot reads as a word's inside, its embedding's last one as a word's end: compel's long-prompt
        # splitting, which looks for word ends, then never cuts an embedding in two.
        self._slot_names = {row: ("<slot></w>" if position == len(ids) - 1 else "<slot>") for ids in rows.values() for position, row in enumerate(ids)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def __call__(self, texts: str | Sequence[str], truncation: bool = False, **_options: Any) -> dict[str, list[Any]]:
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        limit = int(self._tokenizer.model_max_length) - 2
        encoded = []
        for text in batch:
            ids = ids_with_slots(str(text), self._tokenize, self._placeholder, self._rows)
            if truncation:
                ids = ids[:limit]
            encoded.append([self._tokenizer.bos_token_id, *ids, self._tokenizer.eos_token_id])
        return {"input_ids": encoded[0] if single else encoded}

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self._slot_names.get(int(token)) or self._tokenizer.convert_ids_to_tokens(int(token)) for token in ids]


class _EncoderForCompel:
    """The text encoder as compel 2.5 reaches into it: ``text_model.final_layer_norm`` for clip skip, which
    transformers 5's CLIPTextModel no longer has (it holds the norm at its top)."""

    def __init__(self, model: torch.nn.Module, final_layer_norm: torch.nn.Module) -> None:
        self._model = model
        self.text_model = SimpleNamespace(final_layer_norm=final_layer_norm)

    def __call__(self, *arguments: Any, **options: Any) -> Any:
        return self._model(*arguments, **options)

    @property
    def device(self) -> torch.device:
        return next(self._model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self._model.parameters()).dtype


def compel_embeddings(
    tokenizer: Any,
    tokenize: Tokenize,
    model: torch.nn.Module,
    final_layer_norm: torch.nn.Module,
    text: str,
    appended: Sequence[str],
    pooled_text: str,
    placeholder: re.Pattern[str],
    rows: dict[int, list[int]],
    returned: ReturnedEmbeddingsType,
    pooled: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One side through one encoder: compel's hidden states, and compel's pooled output when ``pooled``.

    ``appended`` are placeholders (with their compel weight) of embeddings the prompt does not name: each
    becomes the last fragment of every prompt in the conjunction, so a blend or an ``.and()`` carries it in each
    part. ``pooled_text`` is what compel pools (SDXL): the prompt as the user wrote it, syntax and all, unweighted."""
    parameter = next(model.parameters())
    compel = Compel(
        tokenizer=SlotAwareTokenizer(tokenizer, tokenize, placeholder, rows),
        text_encoder=_EncoderForCompel(model, final_layer_norm),
        truncate_long_prompts=False,
        returned_embeddings_type=returned,
        requires_pooled=pooled,
        dtype_for_device_getter=lambda _device: parameter.dtype,
        device=str(parameter.device),
    )
    conjunction = Compel.parse_prompt_string(text)
    for extra in appended:
        _append_everywhere(conjunction, Compel.parse_prompt_string(extra))
    hidden, _options = compel.build_conditioning_tensor_for_conjunction(conjunction)
    if hidden.dim() == 2:
        hidden = hidden.unsqueeze(0)
    if not pooled:
        return hidden, None
    return hidden, compel.conditioning_provider.get_pooled_embeddings([pooled_text], device=str(parameter.device))


def _append_everywhere(conjunction: Conjunction, extra: Conjunction) -> None:
    fragments = [fragment for prompt in extra.prompts if isinstance(prompt, FlattenedPrompt) for fragment in prompt.children if isinstance(fragment, Fragment)]
    for prompt in conjunction.prompts:
        targets = prompt.prompts if isinstance(prompt, Blend) else [prompt]
        for target in targets:
            if isinstance(target, FlattenedPrompt):
                target.children.extend(fragments)
