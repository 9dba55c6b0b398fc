"""Finding a prompt's mentions of an embedding, by the rule the gateway shares (openapi/embedding-mention-cases.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipgate_worker.embedding_mentions import Placeholders, place_mentions

CASES = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "embedding-mention-cases.json").read_text(encoding="utf-8"))["cases"]
PLACEHOLDERS = Placeholders("00c0ffee")


@pytest.mark.parametrize("case", CASES, ids=[f"{case['word']}|{case['prompt']}" for case in CASES])
def test_the_shared_cases(case):
    text, placed = place_mentions(case["prompt"], [(0, [case["word"]])], PLACEHOLDERS)
    assert (placed == {0}) is case["named"]
    assert (PLACEHOLDERS.of(0) in text) is case["named"]


def test_every_occurrence_is_replaced_and_the_rest_of_the_text_kept():
    text, placed = place_mentions("easynegative, blurry, EasyNegative", [(2, ["easynegative"])], PLACEHOLDERS)
    assert text == f"{PLACEHOLDERS.of(2)}, blurry, {PLACEHOLDERS.of(2)}"
    assert placed == {2}


def test_overlapping_mentions_go_to_the_longer_then_to_the_embedding_listed_first():
    text, placed = place_mentions("bad hands here", [(0, ["bad"]), (1, ["bad hands"])], PLACEHOLDERS)
    assert text == f"{PLACEHOLDERS.of(1)} here" and placed == {1}
    text, placed = place_mentions("ugly", [(3, ["ugly"]), (4, ["ugly"])], PLACEHOLDERS)
    assert text == PLACEHOLDERS.of(3) and placed == {3}


def test_placeholders_cannot_be_typed_into_a_prompt():
    typed = "<clipgate_00c0ffee_0>"
    assert Placeholders.fresh().pattern().search(typed) is None
    assert Placeholders.fresh().nonce != Placeholders.fresh().nonce


def test_nothing_named_leaves_the_text_as_it_is():
    assert place_mentions("a cat", [(0, ["dog"]), (1, [])], PLACEHOLDERS) == ("a cat", set())
