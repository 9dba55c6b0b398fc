"""Where a prompt names an embedding: its trigger words or its marker, replaced by a placeholder in place.

The gateway sends, per embedding, the ``mentions`` it found in the prompt of the embedding's side: trigger
words (the registry's ``trainedWords``) and the marker ``<embedding:AIR>``. Each occurrence — case-insensitive,
and whole: no letter, digit or ``_`` right before or after a word that starts or ends with one — becomes a
placeholder that the tokenizer turns into the embedding's slot tokens, so the vectors stand where the user put
them and are not appended again. The rule is the gateway's too (src/tasks/image-inference/embedding-mentions.ts).

Placeholders carry a nonce drawn per job, so no prompt text can spell one; their characters are ones that
neither A1111's nor compel's syntax gives a meaning.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Placeholders:
    """The placeholder of each embedding of one job, by its index in the job's embeddings."""

    nonce: str

    @staticmethod
    def fresh() -> Placeholders:
        return Placeholders(secrets.token_hex(4))

    def of(self, index: int) -> str:
        return f"<clipgate_{self.nonce}_{index}>"

    def pattern(self) -> re.Pattern[str]:
        """Finds this job's placeholders in text; group 1 is the embedding's index."""
        return re.compile(rf"<clipgate_{self.nonce}_(\d+)>")


def place_mentions(text: str, mentions: Sequence[tuple[int, Sequence[str]]], placeholders: Placeholders) -> tuple[str, set[int]]:
    """Replaces each mention of each embedding by its placeholder; returns the text and which were placed.

    Where two mentions overlap the earlier one wins, then the longer; the embedding listed first wins a tie."""
    found: list[tuple[int, int, int]] = []  # (start, -length, embedding index)
    for index, words in mentions:
        for word in words:
            word = word.strip()
            if word:
                found.extend((match.start(), -len(match.group(0)), index) for match in _whole(word).finditer(text))
    if not found:
        return text, set()
    found.sort()
    pieces: list[str] = []
    placed: set[int] = set()
    cursor = 0
    for start, negative_length, index in found:
        if start < cursor:
            continue
        pieces.append(text[cursor:start])
        # No spaces added: compel's ``word++`` must still reach the placeholder.
        pieces.append(placeholders.of(index))
        cursor = start - negative_length
        placed.add(index)
    pieces.append(text[cursor:])
    return "".join(pieces), placed


def _whole(word: str) -> re.Pattern[str]:
    before = r"(?<!\w)" if _is_word_character(word[0]) else ""
    after = r"(?!\w)" if _is_word_character(word[-1]) else ""
    return re.compile(before + re.escape(word) + after, re.IGNORECASE)


def _is_word_character(character: str) -> bool:
    return character.isalnum() or character == "_"
