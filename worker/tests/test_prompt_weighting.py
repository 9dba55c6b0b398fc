"""A1111's prompt syntax (promptWeighting sdEmbeds), read as A1111 reads it; without promptWeighting, text."""

from __future__ import annotations

import pytest

from clipgate_worker.prompt_weighting import WINDOW_BREAK, WeightedText, literal_pieces, parse_sd_embeds
from conditioning_reference import a1111_parse

PROMPTS = [
    "a photo of a cat",
    "",
    "a (red) barn",
    "a ((red)) barn",
    "a [foggy] [[morning]]",
    "a (red:1.3) barn, (blue: 0.8 ) sky",
    "((nested:1.5) and outer:1.2)",
    "(a [b] c)",
    "[a (b:1.4) c]",
    "escaped \\(not weighted\\) and \\[not either\\] and \\\\ slash",
    "a: plain colon, time 10:30",
    "(ratio 16:9)",
    "first BREAK second BREAK third",
    "BREAK leading",
    "trailing BREAK",
    "unclosed (round and [square",
    "stray ) and ] closers",
    "(<embedding:civitai:7808@9208>:1.2) marker",
    "BREAKING news, not a BREAK word",
]


def as_lists(pieces):
    return [["BREAK", -1] if piece is WINDOW_BREAK else [piece.text, piece.weight] for piece in pieces]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_reads_every_prompt_as_a1111_does(prompt):
    expected = a1111_parse(prompt)
    found = as_lists(parse_sd_embeds(prompt))
    assert len(found) == len(expected), (found, expected)
    for (text, weight), (expected_text, expected_weight) in zip(found, expected):
        assert text == expected_text
        assert weight == pytest.approx(expected_weight, rel=1e-12)


def test_break_inside_brackets_still_breaks_where_a1111_would_encode_the_word():
    assert parse_sd_embeds("(a BREAK b)") == [WeightedText("a", 1.1), WINDOW_BREAK, WeightedText("b", 1.1)]
    # A1111 multiplies its BREAK marker into a weight, and then no longer knows it for one.
    assert ["BREAK", -1.1] in a1111_parse("(a BREAK b)")


def test_without_prompt_weighting_brackets_are_text():
    assert literal_pieces("a (red:1.3) [barn] BREAK") == [WeightedText("a (red:1.3) [barn] BREAK", 1.0)]
