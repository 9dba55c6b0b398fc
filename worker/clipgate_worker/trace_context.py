"""W3C trace context (https://www.w3.org/TR/trace-context/): the ``traceparent`` header of a job request.

A gateway that traces (OpenTelemetry, off unless configured there) sends each job request with the
trace context of the attempt's span. The worker makes no spans of its own: it names the trace id in the
job's log lines, so that a job's lines are found from its trace and a trace from the lines. A header that
is absent, repeated or malformed is ignored, as the specification says: the job runs all the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: version-traceid-parentid-flags, lowercase hex; a later version may add fields after a dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
#: Far beyond any valid header; a longer one is not even matched.
_MAX_LENGTH = 512


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    #: The span of the gateway's attempt that sent the job.
    parent_id: str
    sampled: bool


def parse_traceparent(values: Sequence[str] | str | None) -> TraceContext | None:
    """The trace context of a ``traceparent`` header (its values, as the request carries them), or None when
    there is none or it is not valid: absent, sent twice, an unknown format, version ff, all-zero ids."""
    if values is None:
        return None
    if not isinstance(values, str):
        if len(values) != 1:
            return None
        values = values[0]
    value = values.strip()
    if len(value) > _MAX_LENGTH:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    # ff is forbidden; version 00 has exactly four fields.
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return TraceContext(trace_id=trace_id, parent_id=parent_id, sampled=bool(int(flags, 16) & 1))
