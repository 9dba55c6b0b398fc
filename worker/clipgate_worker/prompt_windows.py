"""A prompt's tokens in CLIP windows of 75, the way A1111 fills them.

Text tokens fill a window until it holds 75; an embedding's slot tokens never straddle two windows (a window
that cannot take them all is closed early and they start the next); ``BREAK`` closes the window it is in. A
window is encoded as ``[start, tokens…, end, pad…]``: after the first end token come pad tokens only — the
end token for CLIP ViT-L, id 0 for SDXL's OpenCLIP bigG, as A1111 and ComfyUI do.

Not taken from A1111: its comma backtrack (a full window moved back to the last comma within 20 tokens),
which ComfyUI does not do either; windows here break at 75 tokens exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .prompt_weighting import Piece, WeightedText

CHUNK_TOKENS = 75


@dataclass(frozen=True)
class Window:
    """Up to 75 token ids, each with its emphasis."""

    ids: tuple[int, ...]
    weights: tuple[float, ...]


@dataclass
class WindowBuilder:
    windows: list[Window] = field(default_factory=list)
    _ids: list[int] = field(default_factory=list)
    _weights: list[float] = field(default_factory=list)

    def add_tokens(self, ids: Sequence[int], weight: float) -> None:
        for token in ids:
            if len(self._ids) == CHUNK_TOKENS:
                self.close()
            self._ids.append(token)
            self._weights.append(weight)

    def add_embedding(self, rows: Sequence[int], weight: float) -> None:
        if len(self._ids) + len(rows) > CHUNK_TOKENS:
            self.close()
        self._ids.extend(rows)
        self._weights.extend([weight] * len(rows))

    def close(self) -> None:
        self.windows.append(Window(tuple(self._ids), tuple(self._weights)))
        self._ids, self._weights = [], []

    def finish(self) -> list[Window]:
        # A trailing BREAK adds no empty window; an empty prompt is one empty window.
        if self._ids or not self.windows:
            self.close()
        return self.windows


Tokenize = Callable[[str], list[int]]


def side_windows(
    pieces: Sequence[Piece],
    tokenize: Tokenize,
    placeholder: re.Pattern[str],
    rows: dict[int, list[int]],
    weights: dict[int, float],
    appended: Sequence[int],
) -> list[Window]:
    """The windows of one side's prompt: its pieces, embeddings where placeholders stand, then ``appended``.

    An embedding in place takes its piece's weight times its own (``(easynegative:1.2)`` at weight 1.5 is 1.8)."""
    builder = WindowBuilder()
    for piece in pieces:
        if not isinstance(piece, WeightedText):
            builder.close()
            continue
        cursor = 0
        for match in placeholder.finditer(piece.text):
            builder.add_tokens(tokenize(piece.text[cursor : match.start()]), piece.weight)
            index = int(match.group(1))
            builder.add_embedding(rows[index], piece.weight * weights[index])
            cursor = match.end()
        builder.add_tokens(tokenize(piece.text[cursor:]), piece.weight)
    for index in appended:
        builder.add_embedding(rows[index], weights[index])
    return builder.finish()


def ids_with_slots(text: str, tokenize: Tokenize, placeholder: re.Pattern[str], rows: dict[int, list[int]]) -> list[int]:
    """Token ids of text in which placeholders stand for embeddings' slot rows (no start or end token)."""
    ids: list[int] = []
    cursor = 0
    for match in placeholder.finditer(text):
        ids.extend(tokenize(text[cursor : match.start()]))
        ids.extend(rows[int(match.group(1))])
        cursor = match.end()
    ids.extend(tokenize(text[cursor:]))
    return ids
