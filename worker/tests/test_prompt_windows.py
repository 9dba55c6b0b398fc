"""Filling 75-token windows the way A1111 does: embeddings whole, BREAK, no empty windows by accident."""

from __future__ import annotations

import re

from clipgate_worker.prompt_weighting import WINDOW_BREAK, WeightedText
from clipgate_worker.prompt_windows import CHUNK_TOKENS, WindowBuilder, ids_with_slots, side_windows

PLACEHOLDER = re.compile(r"<p(\d+)>")


def tokenize(text: str) -> list[int]:
    """One token per word, its length as the id: enough to count and to tell words apart."""
    return [len(word) for word in text.split()]


def test_text_fills_a_window_to_75_before_the_next_starts():
    builder = WindowBuilder()
    builder.add_tokens(list(range(CHUNK_TOKENS + 1)), 1.0)
    windows = builder.finish()
    assert [len(window.ids) for window in windows] == [CHUNK_TOKENS, 1]


def test_an_embedding_that_does_not_fit_starts_the_next_window_whole():
    builder = WindowBuilder()
    builder.add_tokens([1] * 70, 1.0)
    builder.add_embedding([900 + index for index in range(8)], 1.3)
    windows = builder.finish()
    assert [len(window.ids) for window in windows] == [70, 8]
    assert windows[1].weights == (1.3,) * 8


def test_break_at_a_full_window_adds_no_empty_one_and_a_trailing_break_none_either():
    pieces = [WeightedText(" ".join(["w"] * CHUNK_TOKENS), 1.0), WINDOW_BREAK, WeightedText("next", 1.0), WINDOW_BREAK]
    windows = side_windows(pieces, tokenize, PLACEHOLDER, {}, {}, [])
    assert [len(window.ids) for window in windows] == [CHUNK_TOKENS, 1]


def test_a_leading_break_and_an_empty_prompt_each_give_an_empty_window():
    assert [len(w.ids) for w in side_windows([WINDOW_BREAK, WeightedText("a b", 1.0)], tokenize, PLACEHOLDER, {}, {}, [])] == [0, 2]
    assert [len(w.ids) for w in side_windows([WeightedText("", 1.0)], tokenize, PLACEHOLDER, {}, {}, [])] == [0]


def test_an_embedding_in_place_takes_its_pieces_weight_times_its_own_and_others_follow():
    rows = {0: [901, 902], 1: [903]}
    windows = side_windows([WeightedText("a <p0> b", 1.2)], tokenize, PLACEHOLDER, rows, {0: 1.5, 1: 0.5}, [1])
    assert windows[0].ids == (1, 901, 902, 1, 903)
    assert windows[0].weights == (1.2, 1.2 * 1.5, 1.2 * 1.5, 1.2, 0.5)


def test_ids_with_slots_reads_placeholders_anywhere_in_the_text():
    assert ids_with_slots("ab<p0>cde", tokenize, PLACEHOLDER, {0: [7, 8]}) == [2, 7, 8, 3]
