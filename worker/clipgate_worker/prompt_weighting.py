"""Prompt text as weighted pieces: taken literally, or read in A1111's syntax (``promptWeighting: sdEmbeds``).

A1111's rules (its ``parse_prompt_attention``): ``(text)`` multiplies the weight of ``text`` by 1.1, ``[text]``
divides it by 1.1, ``(text:1.3)`` sets the multiplier, nesting multiplies; ``\\(``, ``\\)``, ``\\[``, ``\\]`` and
``\\\\`` are literal characters; ``BREAK`` (uppercase, a whole word) closes the current 75-token window; a
bracket left open applies to the end of the prompt; neighbours of equal weight are merged. The gateway refuses
unbalanced brackets and out-of-range weights before a job is sent, so this reader is as lenient as A1111.

One deliberate difference: A1111 multiplies a ``BREAK`` inside brackets into a weight and then encodes it as
the word "BREAK"; here it still breaks the window, which is what its author meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

ROUND_BRACKET = 1.1
SQUARE_BRACKET = 1 / 1.1

PromptWeighting = Literal["sdEmbeds", "compel"]


@dataclass(frozen=True)
class WeightedText:
    text: str
    weight: float


class WindowBreak:
    """``BREAK``: the current window ends here and the text after it starts a new one."""

    def __repr__(self) -> str:
        return "BREAK"


WINDOW_BREAK: Final = WindowBreak()
Piece = WeightedText | WindowBreak

_EXPLICIT_WEIGHT = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_ESCAPABLE = "()[]\\"


def literal_pieces(prompt: str) -> list[Piece]:
    """Without promptWeighting a prompt is text, brackets and all (Runware's default)."""
    return [WeightedText(prompt, 1.0)]


def parse_sd_embeds(prompt: str) -> list[Piece]:
    pieces: list[list[object]] = []  # [text, weight] while brackets are still being closed
    round_open: list[int] = []
    square_open: list[int] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            pieces.append(["".join(text), 1.0])
            text.clear()

    def multiply(start: int, multiplier: float) -> None:
        flush()
        for piece in pieces[start:]:
            piece[1] = float(piece[1]) * multiplier  # type: ignore[arg-type]

    index = 0
    while index < len(prompt):
        character = prompt[index]
        if character == "\\" and index + 1 < len(prompt) and prompt[index + 1] in _ESCAPABLE:
            text.append(prompt[index + 1])
            index += 2
            continue
        if character in "([":
            flush()
            (round_open if character == "(" else square_open).append(len(pieces))
        elif character == ":" and round_open and (match := _EXPLICIT_WEIGHT.match(prompt, index)) and _is_number(match.group(1)):
            multiply(round_open.pop(), float(match.group(1)))
            index = match.end()
            continue
        elif character == ")" and round_open:
            multiply(round_open.pop(), ROUND_BRACKET)
        elif character == "]" and square_open:
            multiply(square_open.pop(), SQUARE_BRACKET)
        else:
            text.append(character)
        index += 1
    flush()
    for start in round_open:
        multiply(start, ROUND_BRACKET)
    for start in square_open:
        multiply(start, SQUARE_BRACKET)
    return _merge(_split_breaks([WeightedText(str(text_), float(weight)) for text_, weight in pieces]))  # type: ignore[arg-type]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_breaks(pieces: list[WeightedText]) -> list[Piece]:
    result: list[Piece] = []
    for piece in pieces:
        parts = _BREAK.split(piece.text)
        for position, part in enumerate(parts):
            if position > 0:
                result.append(WINDOW_BREAK)
            result.append(WeightedText(part, piece.weight))
    return result


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Neighbours of equal weight become one piece, tokenized together, as A1111 does."""
    merged: list[Piece] = []
    for piece in pieces:
        previous = merged[-1] if merged else None
        if isinstance(piece, WeightedText) and isinstance(previous, WeightedText) and previous.weight == piece.weight:
            merged[-1] = WeightedText(previous.text + piece.text, piece.weight)
        else:
            merged.append(piece)
    return merged or [WeightedText("", 1.0)]
