"""The gateway's W3C ``traceparent`` on a job request: read, checked, and its trace id in the job's log lines."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from worker_support import StandInModels, StartWorker, job_body

from clipgate_worker.trace_context import TraceContext, parse_traceparent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def test_a_valid_traceparent_gives_its_ids_and_whether_it_is_sampled() -> None:
    assert parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-01") == TraceContext(TRACE_ID, SPAN_ID, sampled=True)
    assert parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-00") == TraceContext(TRACE_ID, SPAN_ID, sampled=False)
    # Optional whitespace around a header value, and a header given as its list of values.
    assert parse_traceparent([f" 00-{TRACE_ID}-{SPAN_ID}-01 "]) == TraceContext(TRACE_ID, SPAN_ID, sampled=True)
    # A later version is read by its first four fields; whatever it adds after them is skipped.
    assert parse_traceparent(f"cc-{TRACE_ID}-{SPAN_ID}-09-what-comes-next") == TraceContext(TRACE_ID, SPAN_ID, sampled=True)


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        "",
        "garbage",
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",  # hex is lowercase
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",  # short trace id
        f"00-{TRACE_ID}-{SPAN_ID}0-01",  # long parent id
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # forbidden version
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 has four fields
        f"cc-{TRACE_ID}-{SPAN_ID}-01extra",  # a later version's fields are dash-separated too
        f"00_{TRACE_ID}_{SPAN_ID}_01",
        [f"00-{TRACE_ID}-{SPAN_ID}-01", f"00-{TRACE_ID}-{SPAN_ID}-01"],  # sent twice
        f"cc-{TRACE_ID}-{SPAN_ID}-01-" + "x" * 600,  # beyond any real header
    ],
)
def test_anything_else_is_ignored(value: str | list[str] | None) -> None:
    assert parse_traceparent(value) is None


def submit(base: str, job_id: str, headers: dict[str, str]) -> list[dict[str, object]]:
    with httpx.Client(base_url=base, timeout=30) as http:
        response = http.post("/v1/jobs", content=json.dumps(job_body(jobId=job_id)), headers={"content-type": "application/json", **headers})
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def lines_of(caplog: pytest.LogCaptureFixture, job_id: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith(f"job {job_id} ")]


def test_the_trace_id_is_in_the_log_lines_of_its_job_and_a_bad_header_changes_nothing(
    start_worker: StartWorker, stand_in_models: StandInModels, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="clipgate_worker")
    models, _ = stand_in_models()
    client, _ = start_worker(models)

    traced = submit(client.base, "traced.1", {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "tracestate": "vendor=opaque"})
    assert traced[-1]["event"] == "result"
    untraced = submit(client.base, "untraced.1", {})
    malformed = submit(client.base, "malformed.1", {"traceparent": "00-not-a-trace-01"})
    assert untraced[-1]["event"] == "result" and malformed[-1]["event"] == "result"

    traced_lines = lines_of(caplog, f"traced.1 [trace {TRACE_ID}]")
    assert [line.split("]", 1)[1].split(":")[0].strip() for line in traced_lines] == ["accepted", "done"]
    for job_id in ("untraced.1", "malformed.1"):
        lines = lines_of(caplog, job_id)
        assert len(lines) == 2 and not any("[trace" in line for line in lines), lines
