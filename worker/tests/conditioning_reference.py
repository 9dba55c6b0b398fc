"""References for the worker's conditioning, computed without any of its code.

- Embeddings go in through diffusers' own ``load_textual_inversion`` (named tokens added to a copied tokenizer
  and encoder, ``maybe_convert_prompt`` expanding a name into its vectors' tokens), never through slots.
- ``a1111_parse`` is A1111's ``parse_prompt_attention`` as A1111 writes it: one regular expression over the
  prompt, a stack per bracket kind (the worker's reader is a character scanner).
- ``a1111_encode`` follows A1111's ``tokenize_line`` and ``process_tokens``: 75-token chunks, an embedding moved
  whole to the next chunk, ``BREAK``, everything after the first end token made the pad id, then emphasis with
  the chunk mean restored.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch

from clipgate_worker.conditioning_types import LoadedEmbedding

CHUNK = 75

_RE_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
_RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def a1111_parse(text: str) -> list[list]:
    res: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, multiplier: float) -> None:
        for p in range(start, len(res)):
            res[p][1] *= multiplier

    for m in _RE_ATTENTION.finditer(text):
        token = m.group(0)
        weight = m.group(1)
        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token == "(":
            round_brackets.append(len(res))
        elif token == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif token == ")" and round_brackets:
            multiply_range(round_brackets.pop(), 1.1)
        elif token == "]" and square_brackets:
            multiply_range(square_brackets.pop(), 1 / 1.1)
        else:
            parts = re.split(_RE_BREAK, token)
            for i, part in enumerate(parts):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_brackets:
        multiply_range(pos, 1.1)
    for pos in square_brackets:
        multiply_range(pos, 1 / 1.1)
    if len(res) == 0:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


@dataclass
class ReferenceEncoders:
    """A copied pipeline's text side with embeddings loaded the diffusers way, under names."""

    pipeline: object
    family: str
    #: Token-embedding rows before any embedding was loaded: ids at or above belong to embeddings.
    vocabulary: int


def with_textual_inversions(pipeline, family: str, named: dict[str, LoadedEmbedding]) -> ReferenceEncoders:
    copied = copy.copy(pipeline)
    copied.tokenizer = copy.deepcopy(pipeline.tokenizer)
    copied.text_encoder = copy.deepcopy(pipeline.text_encoder)
    if family == "sdxl":
        copied.tokenizer_2 = copy.deepcopy(pipeline.tokenizer_2)
        copied.text_encoder_2 = copy.deepcopy(pipeline.text_encoder_2)
    vocabulary = len(copied.tokenizer)
    for name, embedding in named.items():
        copied.load_textual_inversion(embedding.vectors["clip_l"].clone(), token=name, text_encoder=copied.text_encoder, tokenizer=copied.tokenizer)
        if family == "sdxl":
            copied.load_textual_inversion(embedding.vectors["clip_g"].clone(), token=name, text_encoder=copied.text_encoder_2, tokenizer=copied.tokenizer_2)
    return ReferenceEncoders(copied, family, vocabulary)


def final_layer_norm(model):
    """transformers 5's CLIPTextModel holds it at the top; CLIPTextModelWithProjection under text_model."""
    return next(module for name, module in model.named_modules() if name.endswith("final_layer_norm"))


def a1111_encode(reference: ReferenceEncoders, prompt: str, clip_skip: int = 0, pad_after_end: int | None = None, second: bool = False):
    """One side's hidden states [1, chunks*77, width] for one encoder (``second``: SDXL's bigG), and its pooled
    output from the first chunk (``second`` only). ``pad_after_end``: the id after the first end token."""
    pipeline = reference.pipeline
    tokenizer = pipeline.tokenizer_2 if second else pipeline.tokenizer
    model = pipeline.text_encoder_2 if second else pipeline.text_encoder
    converted = pipeline.maybe_convert_prompt

    chunks: list[tuple[list[int], list[float]]] = []
    tokens: list[int] = []
    multipliers: list[float] = []

    def next_chunk() -> None:
        nonlocal tokens, multipliers
        to_add = CHUNK - len(tokens)
        chunks.append(([*tokens, *([tokenizer.eos_token_id] * to_add)], [*multipliers, *([1.0] * to_add)]))
        tokens, multipliers = [], []

    for text, weight in a1111_parse(prompt):
        if text == "BREAK" and weight == -1:
            next_chunk()
            continue
        ids = tokenizer(converted(text, tokenizer), add_special_tokens=False, truncation=False).input_ids if text else []
        position = 0
        while position < len(ids):
            if len(tokens) == CHUNK:
                next_chunk()
            token = ids[position]
            if token < reference.vocabulary:
                tokens.append(token)
                multipliers.append(weight)
                position += 1
                continue
            # An embedding: all its tokens (name, name_1, name_2, …) together, never split across chunks.
            name = tokenizer.convert_ids_to_tokens(token)
            run = 1
            while position + run < len(ids) and ids[position + run] >= reference.vocabulary and tokenizer.convert_ids_to_tokens(ids[position + run]).startswith(f"{name}_"):
                run += 1
            if len(tokens) + run > CHUNK:
                next_chunk()
            tokens.extend(ids[position : position + run])
            multipliers.extend([weight] * run)
            position += run
    if tokens or not chunks:
        next_chunk()

    hidden_chunks = []
    pooled = None
    pad = tokenizer.eos_token_id if pad_after_end is None else pad_after_end
    for index, (chunk_tokens, chunk_multipliers) in enumerate(chunks):
        window = [tokenizer.bos_token_id, *chunk_tokens, tokenizer.eos_token_id]
        first_end = window.index(tokenizer.eos_token_id)
        window = [*window[: first_end + 1], *([pad] * (len(window) - first_end - 1))]
        weights = torch.tensor([1.0, *chunk_multipliers, 1.0])
        with torch.no_grad():
            output = model(torch.tensor([window]), output_hidden_states=True)
        if reference.family == "sdxl":
            z = output.hidden_states[-2]
        elif clip_skip >= 2:
            z = final_layer_norm(model)(output.hidden_states[-clip_skip])
        else:
            z = output.last_hidden_state
        original_mean = z.mean()
        z = z * weights.reshape(1, -1, 1)
        z = z * (original_mean / z.mean())
        hidden_chunks.append(z)
        if index == 0 and second:
            pooled = output.text_embeds
    return torch.cat(hidden_chunks, dim=1), pooled
