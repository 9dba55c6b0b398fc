"""A small CLIP tokenizer generated in process, for tiny pipelines that must never download anything.

It has CLIP's exact layout, so code written against the real tokenizer (special ids, ``</w>`` word ends,
byte-level fallback) behaves the same: the 256 byte tokens in CLIP's byte-to-unicode mapping, the same 256
with ``</w>``, one token per BPE merge, then ``<|startoftext|>`` and ``<|endoftext|>`` as the last two ids.
The merges are learned here, deterministically, from a short built-in English text, so ordinary prompts
split into a handful of multi-letter tokens instead of one token per letter.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from functools import cache
from pathlib import Path

from transformers import CLIPTokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
WORD_END = "</w>"
MODEL_MAX_LENGTH = 77
MERGES = 320

#: What the merges are learned from: everyday English and the words prompts are made of.
_CORPUS = """
a photo of the cat and a dog on the table in the house with the people of this world that is there
portrait painting of an old man with a hat by the sea at night under the stars in the style of an artist
landscape with mountains rivers trees and flowers in the morning light beautiful detailed high quality
masterpiece best quality sharp focus studio lighting cinematic realistic illustration digital art
concept art oil on canvas watercolor drawing sketch anime character woman girl boy face eyes hair
blue red green yellow black white golden silver bright dark colorful soft warm cold light shadow
city street building castle forest garden beach ocean sky cloud sun moon rain snow fire water stone
low worst blurry ugly deformed bad anatomy extra fingers watermark text signature cropped noise
standing sitting walking running looking wearing holding smiling close up full body wide angle view
""".split()


@cache
def byte_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from bytes to printable characters, so BPE never sees whitespace
    or control bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, characters)}


def learn_merges(words: list[str], count: int) -> list[tuple[str, str]]:
    """Classic BPE training: merge the most frequent adjacent pair, ``count`` times or until none is left.

    Ties go to the alphabetically first pair, so the result never depends on dict ordering."""
    mapping = byte_to_unicode()
    frequencies = Counter(words)
    spellings: dict[tuple[str, ...], int] = {}
    for word, frequency in frequencies.items():
        symbols = [mapping[byte] for byte in word.encode("utf-8")]
        symbols[-1] += WORD_END
        spellings[tuple(symbols)] = spellings.get(tuple(symbols), 0) + frequency
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, frequency in spellings.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += frequency
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        spellings = {_merge(symbols, best): frequency for symbols, frequency in spellings.items()}
    return merges


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged: list[str] = []
    index = 0
    while index < len(symbols):
        if index + 1 < len(symbols) and (symbols[index], symbols[index + 1]) == pair:
            merged.append(symbols[index] + symbols[index + 1])
            index += 2
        else:
            merged.append(symbols[index])
            index += 1
    return tuple(merged)


def write_tokenizer_files(directory: Path, merges: int = MERGES) -> int:
    """Writes vocab.json and merges.txt in CLIP's format; returns the vocabulary size."""
    learned = learn_merges(_CORPUS, merges)
    byte_tokens = list(byte_to_unicode().values())
    tokens = [*byte_tokens, *(token + WORD_END for token in byte_tokens)]
    tokens += ["".join(pair) for pair in learned]
    tokens += [BOS, EOS]
    vocabulary = {token: index for index, token in enumerate(tokens)}
    if len(vocabulary) != len(tokens):
        raise RuntimeError(f"tiny CLIP vocabulary has duplicate tokens: {len(tokens)} tokens, {len(vocabulary)} distinct")
    (directory / "vocab.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{left} {right}" for left, right in learned)]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(vocabulary)


def build_tiny_tokenizer(pad_token: str = EOS) -> CLIPTokenizer:
    """A CLIPTokenizer over the generated files. SD 1.x pads with ``<|endoftext|>``; SDXL's second
    tokenizer pads with ``!``, as the real one does."""
    with tempfile.TemporaryDirectory(prefix="clipgate-tiny-tokenizer-") as directory:
        write_tokenizer_files(Path(directory))
        return CLIPTokenizer.from_pretrained(
            directory, local_files_only=True, model_max_length=MODEL_MAX_LENGTH, pad_token=pad_token
        )
