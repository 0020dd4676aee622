"""Combined filters on the in-memory ledger (each check binds its own column)."""

from __future__ import annotations

from datetime import UTC, datetime

from faremeter import SpanKind, Usage
from faremeter.testing import make_test_meter


def test_trace_and_window_and_kind_filters_combine() -> None:
    meter = make_test_meter()
    with meter.trace("run") as t:
        meter.record_llm("gpt-4o", Usage(input_tokens=10, output_tokens=1))
        meter.record_tool("lookup", cost="0.001")
    meter.flush()
    start = datetime.fromtimestamp(0, tz=UTC)
    assert len(meter.ledger.spans(t.trace_id, since=start)) == 3
    [llm] = meter.ledger.spans(since=start, kind=SpanKind.LLM)
    assert llm.model == "gpt-4o"
    [tool] = meter.ledger.spans(t.trace_id, since=start, kind="tool")
    assert tool.name == "lookup"
