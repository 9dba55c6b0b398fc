"""The batching rule against the cases the gateway shares (openapi/batch-key-cases.json): the gateway places
a job where compatible ones wait by the same rule, so the two must agree case by case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipgate_worker.batching import batch_key
from clipgate_worker.job_spec import parse_job

FIXTURE = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "batch-key-cases.json").read_text(encoding="utf-8"))


def key_of(job: dict) -> object:
    return batch_key(parse_job(json.dumps(job)))


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda case: case["name"])
def test_a_change_batches_as_the_gateway_says(case: dict) -> None:
    base = FIXTURE["base"]
    assert (key_of({**base, **case["change"]}) == key_of(base)) is case["sameBatch"]


@pytest.mark.parametrize("case", FIXTURE["loraCases"]["cases"], ids=lambda case: case["name"])
def test_a_lora_set_batches_as_the_gateway_says(case: dict) -> None:
    base = {**FIXTURE["base"], **FIXTURE["loraCases"]["base"]}
    assert (key_of({**base, "loras": case["loras"]}) == key_of(base)) is case["sameBatch"]
