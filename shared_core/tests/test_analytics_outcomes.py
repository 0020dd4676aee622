"""Outcomes: recorded as zero-cost spans under the trace root, counted per group."""

from __future__ import annotations

from decimal import Decimal

import pytest

from faremeter import SpanKind, Usage, analytics
from faremeter.analytics import record_outcome
from faremeter.testing import make_test_meter, recorded_spans


def test_outcome_is_a_zero_cost_child_of_the_root_with_the_trace_attribution() -> None:
    meter = make_test_meter()
    with meter.trace("support", workflow="support", team="ops") as t, meter.span("answer"):
        meter.record_llm("gpt-4o", Usage(input_tokens=1_000, output_tokens=100))
        span = record_outcome(meter, "ticket_resolved")  # current trace
    assert span is not None
    spans = recorded_spans(meter)
    root = next(s for s in spans if s.parent_span_id is None)
    (mark,) = [s for s in spans if s.name == "outcome:ticket_resolved"]
    assert mark.parent_span_id == root.span_id and mark.trace_id == t.trace_id
    assert mark.kind is SpanKind.CHAIN and mark.cost.total == 0
    assert mark.attributes["outcome"] == "ticket_resolved"
    assert mark.attributes["outcome_value"] == 1
    assert mark.attributes["workflow"] == "support" and mark.attributes["team"] == "ops"
    tree = meter.ledger.trace_tree(t.trace_id)
    assert len(tree.roots) == 1 and tree.total_cost == t.cost  # one tree, cost unchanged


def test_outcome_by_handle_after_the_trace_and_by_trace_id() -> None:
    meter = make_test_meter()
    with meter.trace("a", workflow="sales") as t:
        meter.record_llm("gpt-4o", Usage(input_tokens=2_000, output_tokens=0))
    record_outcome(meter, "deal_closed", value=Decimal("2.5"), trace=t)
    record_outcome(meter, "deal_closed", trace=t.trace_id, workflow="sales")
    marks = [s for s in recorded_spans(meter) if s.name.startswith("outcome:")]
    assert [m.attributes["outcome_value"] for m in marks] == [2.5, 1]
    assert marks[0].parent_span_id == t.span_id and marks[1].parent_span_id is None
    (row,) = analytics.cost_per_outcome(meter.ledger, "deal_closed")
    assert row.outcomes == Decimal("3.5") and row.cost == t.cost
    assert row.cost_per_outcome == t.cost / Decimal("3.5")


def test_cost_per_outcome_per_team_over_a_window() -> None:
    meter = make_test_meter()
    costs: dict[str, Decimal] = {"a": Decimal(0), "b": Decimal(0)}
    for i in range(6):
        team = "a" if i % 2 else "b"
        with meter.trace("t", team=team, workflow="support") as t:
            meter.record_llm("gpt-4o-mini", Usage(input_tokens=1_000 * (i + 1), output_tokens=50))
            if i != 4:
                record_outcome(meter, "ticket_resolved")
        costs[team] += t.cost
    rows = {r.key: r for r in analytics.cost_per_outcome(meter.ledger, by="team")}
    assert rows["a"].outcomes == 3 and rows["a"].cost == costs["a"]
    assert rows["b"].outcomes == 2 and rows["b"].cost_per_outcome == costs["b"] / 2


def test_bad_outcomes_are_rejected_clearly() -> None:
    meter = make_test_meter()
    with pytest.raises(ValueError, match="attribute name"):
        record_outcome(meter, "not valid!", trace="0" * 32)
    with pytest.raises(ValueError, match="finite"):
        record_outcome(meter, "ok", value=float("inf"), trace="0" * 32)
    with pytest.raises(ValueError, match="trace="):
        record_outcome(meter, "ok")  # outside any trace
