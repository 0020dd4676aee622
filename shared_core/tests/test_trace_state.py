"""A trace's running totals: lock-free recording, totals folded in when read."""

from __future__ import annotations

import threading
from decimal import Decimal

from faremeter import Usage
from faremeter.calls import CallTracker
from faremeter.open_span import TraceState
from faremeter.spans import SpanKind
from faremeter.testing import make_test_meter

USAGE = Usage(input_tokens=1000, output_tokens=100)


def test_cost_and_unpriced_fold_records_added_since_the_last_read() -> None:
    meter = make_test_meter()
    with meter.trace("run") as t:
        first = meter.record_llm("gpt-4o-mini", USAGE)
        assert first is not None and first.cost.total is not None
        assert t.cost == first.cost.total  # read once: folded
        meter.record_llm("no-such-model-xyz", USAGE)  # unpriced
        second = meter.record_llm("gpt-4o-mini", USAGE)
        assert second is not None and second.cost.total is not None
        assert t.cost == first.cost.total + second.cost.total
        assert t.unpriced == 1


def test_pending_counts_started_minus_finished() -> None:
    meter = make_test_meter()
    calls = CallTracker(meter)
    root = calls.start("root", name="agent", kind=SpanKind.AGENT)
    calls.start("llm", name="m", kind=SpanKind.LLM, parent_key="root", model="gpt-4o-mini")
    trace = root.trace
    assert trace.pending == 2
    calls.end("llm", usage=USAGE)
    assert trace.pending == 1
    calls.end("root")
    assert trace.pending == 0
    assert len(trace.records) == 2


def test_a_new_trace_counts_its_first_span() -> None:
    assert TraceState("t" * 32, 1).pending == 1
    assert TraceState("t" * 32).pending == 0


def test_spans_finished_on_many_threads_are_all_counted() -> None:
    meter = make_test_meter(deterministic=False)
    threads_n, per_thread = 8, 200
    with meter.trace("run") as t:
        parent = t.span
        start = threading.Barrier(threads_n)

        def work() -> None:
            start.wait()
            for _ in range(per_thread):
                span = meter.start_span("m", kind=SpanKind.LLM, parent=parent, model="gpt-4o-mini")
                span.end(usage=USAGE)

        threads = [threading.Thread(target=work) for _ in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        one = meter.price("gpt-4o-mini", USAGE).total
        assert one is not None
        assert t.cost == one * Decimal(threads_n * per_thread)
        assert parent is not None
        assert parent.trace.pending == 1  # only the trace's own root is still open
