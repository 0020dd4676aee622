"""Analytics on a known workload: every number equals the ledger query and the sum of the spans.

Runs on memory and SQLite; integration_tests/test_analytics_postgres.py holds
PostgreSQL to the same answers.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from faremeter import analytics
from faremeter.analytics.sample import SAMPLE_START, sample_workload
from faremeter.ledger import Ledger
from faremeter.ledger.core import collapse_runs
from faremeter.pricing import PriceCatalog
from faremeter.spans import SpanKind, SpanRecord, SpanStatus

CATALOG = PriceCatalog.default()
SPANS: list[SpanRecord] = list(sample_workload(CATALOG, traces=240))
ZERO = Decimal(0)


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    url = "memory" if request.param == "memory" else f"sqlite:///{tmp_path}/ledger.db"
    led = Ledger.from_url(url)
    for s in SPANS:
        led.record(s)
    assert led.flush(30)
    yield led
    led.close()


def cost(s: SpanRecord) -> Decimal:
    return s.cost.total or ZERO


def trace_totals() -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for s in SPANS:
        out[s.trace_id] += cost(s)
    return out


def roots() -> dict[str, SpanRecord]:
    return {s.trace_id: s for s in SPANS if s.parent_span_id is None}


def nearest(values: list[Decimal], q: float) -> Decimal:
    values = sorted(values)
    return values[max(1, math.ceil(q * len(values))) - 1]


def test_the_workload_has_what_the_analyses_look_for() -> None:
    statuses = Counter(s.status for s in SPANS)
    assert (
        statuses[SpanStatus.DENIED] and statuses[SpanStatus.ERROR] and statuses[SpanStatus.CACHED]
    )
    assert any(s.name == "outcome:ticket_resolved" for s in SPANS)
    assert len(roots()) == 240


def test_group_by_equals_the_sum_of_the_spans(ledger: Ledger) -> None:
    expect: dict[tuple[str | None, str | None], list[Decimal | int]] = {}
    for s in SPANS:
        if s.kind is not SpanKind.LLM:
            continue
        a = expect.setdefault((s.attributes.get("step"), s.model), [ZERO, 0, 0])  # type: ignore[arg-type]
        a[0] += cost(s)
        a[1] += 1
        a[2] += s.usage.input_tokens if s.usage else 0
    rows = ledger.group_by("step", "model", where={"kind": "llm"})
    got = {r.keys: [r.cost, r.spans, r.input_tokens] for r in rows}
    assert got == {k: list(v) for k, v in expect.items()}
    assert [r.cost for r in rows] == sorted((r.cost for r in rows), reverse=True)
    # one key reduces to cost_by
    by_one = {r.keys[0]: r.cost for r in ledger.group_by("team")}
    assert by_one == {r.key: r.cost for r in ledger.cost_by("team")}


def test_group_by_tool_keeps_tool_spans_only(ledger: Ledger) -> None:
    rows = ledger.group_by("tool", "status")
    expect = Counter((s.name, s.status.value) for s in SPANS if s.kind is SpanKind.TOOL)
    assert {r.keys: r.spans for r in rows} == dict(expect)
    with pytest.raises(ValueError, match="at least one"):
        ledger.group_by()


def test_part_percentiles_per_step(ledger: Ledger) -> None:
    per: dict[str | None, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    unpriced: dict[str | None, set[str]] = defaultdict(set)
    for s in SPANS:
        step = s.attributes.get("step")
        key = None if step is None else str(step)
        per[key][s.trace_id] += cost(s)
        if s.cost.total is None:
            unpriced[key].add(s.trace_id)
    assert unpriced["classify"], "the workload has unpriced spans"
    rows = {r.key: r for r in ledger.part_percentiles(by="step")}
    assert set(rows) == set(per)
    for key, traces in per.items():
        values = list(traces.values())
        r = rows[key]
        assert r.traces == len(values)
        assert r.total == sum(values, ZERO)
        assert r.max == max(values)
        assert r.unpriced_traces == len(unpriced[key])
        for q in (0.5, 0.9, 0.99):
            assert r.quantiles[q] == nearest(values, q), (key, q)


@pytest.mark.parametrize("factor", ["2", "1.5", "4"])
def test_outliers_follow_the_configured_rule(ledger: Ledger, factor: str) -> None:
    totals, root = trace_totals(), roots()
    groups: dict[str, list[str]] = defaultdict(list)
    for tid, r in root.items():
        groups[str(r.attributes["workflow"])].append(tid)
    expect: set[str] = set()
    for tids in groups.values():
        median = nearest([totals[t] for t in tids], 0.5)
        expect |= {t for t in tids if totals[t] > Decimal(factor) * median}
    found = ledger.outliers(by="workflow", factor=factor, limit=1000)
    assert {o.trace_id for o in found} == expect
    assert expect, "the workload has outliers"
    for o in found:
        assert o.cost == totals[o.trace_id]
        assert o.ratio == o.cost / o.median
    assert [o.cost for o in found] == sorted((o.cost for o in found), reverse=True)
    assert len(ledger.outliers(by="workflow", factor=factor, limit=2)) == min(2, len(expect))


def test_outlier_factor_is_validated(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="factor"):
        ledger.outliers(factor=0)


def test_distribution_rows_are_the_ledger_percentiles(ledger: Ledger) -> None:
    rows = analytics.distribution(ledger, by="workflow")
    pct = {p.key: p for p in ledger.percentiles(by="workflow")}
    outliers = ledger.outliers(by="workflow")
    for r in rows:
        p = pct[r.key]
        assert (r.p50, r.p90, r.p99, r.max, r.total) == (p.p50, p.p90, p.p99, p.max, p.total)
        assert r.outlier_threshold == 2 * r.p50
        assert [o.trace_id for o in r.outliers] == [o.trace_id for o in outliers if o.key == r.key]
        assert all(o.cost > r.outlier_threshold for o in r.outliers)
    assert sum((r.total for r in rows), ZERO) == sum(trace_totals().values(), ZERO)
    steps = analytics.distribution(ledger, by="step", per="part")
    assert {r.key: r.p50 for r in steps} == {
        p.key: p.p50 for p in ledger.part_percentiles(by="step")
    }


def test_trace_paths_in_start_order_with_runs_collapsed(ledger: Ledger) -> None:
    totals = trace_totals()
    seqs: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for s in SPANS:
        element = s.name if s.kind is SpanKind.TOOL else s.attributes.get("step")
        if element is not None:
            seqs[s.trace_id].append((s.start_ns, s.span_id, str(element)))
    paths = ledger.trace_paths()
    assert {p.trace_id: p.elements for p in paths} == {
        t: collapse_runs([e for _, _, e in sorted(v)]) for t, v in seqs.items()
    }
    assert all(p.cost == totals[p.trace_id] for p in paths)
    report = analytics.path_analysis(ledger, top=5)
    assert report.traces == len(seqs)
    assert report.total == sum((totals[t] for t in seqs), ZERO)
    assert sum(p.traces for p in report.most_frequent) == report.traces  # 3 paths in all
    assert report.most_frequent[0].label == "plan > web_search > summarize > write_report"
    assert report.most_expensive[0].total == max(p.total for p in report.most_expensive)


def test_collapse_runs() -> None:
    assert collapse_runs(["a", "a", "b", "a", "a"]) == ("a", "b", "a")
    assert collapse_runs([]) == ()


@pytest.mark.parametrize(
    "interval",
    ["minute", "hour", "day", "week", timedelta(minutes=15), timedelta(seconds=7)],
)
def test_time_series_at_any_granularity(ledger: Ledger, interval: str | timedelta) -> None:
    width = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}.get(
        interval if isinstance(interval, str) else "", 0
    ) or int(interval.total_seconds())  # type: ignore[union-attr]
    expect: dict[int, Decimal] = defaultdict(Decimal)
    for s in SPANS:
        expect[(s.start_ns // (width * 10**9)) * width] += cost(s)
    got = ledger.time_series(interval)  # type: ignore[arg-type]
    assert {int(b.start.timestamp()): b.cost for b in got} == dict(expect)


def test_time_series_rejects_bad_intervals(ledger: Ledger) -> None:
    for bad in ("fortnight", timedelta(milliseconds=10), timedelta(seconds=1.5)):
        with pytest.raises(ValueError, match="interval"):
            ledger.time_series(bad)  # type: ignore[arg-type]


def test_spend_series_fills_empty_buckets(ledger: Ledger) -> None:
    start = SAMPLE_START - timedelta(hours=2)
    series = analytics.spend_series(ledger, "hour", since=start, until=start + timedelta(hours=12))
    assert len(series) == 12
    assert [b.start for b in series] == [start + timedelta(hours=i) for i in range(12)]
    assert series[0].cost == 0 and series[0].spans == 0
    assert sum((b.cost for b in series), ZERO) == sum((cost(s) for s in SPANS), ZERO)
    sparse = analytics.spend_series(ledger, "minute", fill=False)
    assert all(b.spans for b in sparse)


def test_segments_share_and_cost_per_trace(ledger: Ledger) -> None:
    rows = analytics.segments(ledger, "feature")
    expect: dict[str | None, Decimal] = defaultdict(Decimal)
    traces: dict[str | None, set[str]] = defaultdict(set)
    for s in SPANS:
        key = s.attributes.get("feature")
        expect[None if key is None else str(key)] += cost(s)
        traces[None if key is None else str(key)].add(s.trace_id)
    assert {r.key: r.cost for r in rows} == dict(expect)
    assert {r.key: r.cost for r in rows} == {r.key: r.cost for r in ledger.cost_by("feature")}
    total = sum(expect.values(), ZERO)
    for r in rows:
        assert r.share == r.cost / total
        assert r.cost_per_trace == r.cost / len(traces[r.key])
    assert abs(sum((r.share for r in rows), ZERO) - 1) < Decimal("1e-20")


def test_segments_by_custom_attribute_and_window(ledger: Ledger) -> None:
    until = SAMPLE_START + timedelta(hours=1)
    rows = analytics.segments(ledger, "prompt_prefix_hash", until=until)
    expect = sum(
        (cost(s) for s in SPANS if "prompt_prefix_hash" in s.attributes and s.start_time < until),
        ZERO,
    )
    assert {r.key: r.cost for r in rows}["research-system-v1"] == expect


def test_cost_per_outcome_equals_spend_over_outcomes(ledger: Ledger) -> None:
    rows = analytics.cost_per_outcome(ledger, "ticket_resolved", by="workflow")
    resolved = [s for s in SPANS if s.name == "outcome:ticket_resolved"]
    spend = sum((cost(s) for s in SPANS if s.attributes.get("workflow") == "support"), ZERO)
    assert [(r.key, r.outcomes, r.cost) for r in rows] == [
        ("support", Decimal(len(resolved)), spend)
    ]
    assert rows[0].cost_per_outcome == spend / len(resolved)
    assert rows[0].traces == len({s.trace_id for s in resolved})
    assert analytics.cost_per_outcome(ledger, "refund_issued") == []
    assert analytics.cost_per_outcome(ledger) == rows  # every outcome


def test_top_traces_agree_with_the_span_sums(ledger: Ledger) -> None:
    totals = trace_totals()
    top = ledger.top_traces(5)
    assert [t.cost for t in top] == sorted(totals.values(), reverse=True)[:5]


def test_window_bounds_apply(ledger: Ledger) -> None:
    since = SAMPLE_START + timedelta(hours=2)
    until = since + timedelta(hours=1)
    inside = [s for s in SPANS if since <= s.start_time < until]
    rows = ledger.group_by("workflow", since=since, until=until)
    assert sum((r.cost for r in rows), ZERO) == sum((cost(s) for s in inside), ZERO)
    assert datetime(2026, 1, 5, 2, tzinfo=UTC) == since


def test_usage_groups_cover_every_llm_span_once(ledger: Ledger) -> None:
    groups = ledger.usage_groups()
    llm = [s for s in SPANS if s.kind is SpanKind.LLM]
    assert sum(g.spans for g in groups) == len(llm)
    assert sum((g.cost for g in groups), ZERO) == sum((cost(s) for s in llm), ZERO)
    assert sum(g.unpriced for g in groups) == sum(1 for s in llm if s.cost.total is None)
    expect = Counter((s.model, s.usage, s.status.value) for s in llm)
    assert {(g.model, g.usage, g.status): g.spans for g in groups} == dict(expect)


def test_usage_totals_sum_every_count_and_never_mix_priced_and_unpriced(ledger: Ledger) -> None:
    totals = ledger.usage_totals(by="step")
    llm = [s for s in SPANS if s.kind is SpanKind.LLM]
    assert sum(t.spans for t in totals) == len(llm)
    for t in totals:
        members = [
            s for s in llm
            if s.attributes.get("step") == t.key and s.model == t.model
            and s.status.value == t.status and (s.cost.total is not None) == t.priced
        ]  # fmt: skip
        assert sum(s.cost.total or ZERO for s in members) == t.cost
        with_usage = [s.usage for s in members if s.usage is not None]
        if t.tokens is not None:
            assert t.tokens["input_tokens"] == sum(u.input_tokens for u in with_usage)
            assert t.tokens["output_tokens"] == sum(u.output_tokens for u in with_usage)
            assert t.tokens["cache_read_tokens"] == sum(u.cache_read_tokens for u in with_usage)
    assert any(not t.priced for t in totals)


def test_what_if_over_sums_equals_pricing_every_call(ledger: Ledger) -> None:
    from faremeter.analytics.whatif import what_if_spans

    fast = analytics.what_if(ledger, CATALOG, model="gpt-4o-mini")
    slow = what_if_spans(ledger.spans(kind=SpanKind.LLM), CATALOG, model="gpt-4o-mini")
    assert (fast.calls, fast.recorded, fast.what_if, fast.skipped) == (
        slow.calls, slow.recorded, slow.what_if, slow.skipped,
    )  # fmt: skip
    assert fast.rows == slow.rows


@pytest.mark.parametrize("factor", ["2", "1.2"])
def test_part_outliers_per_step(ledger: Ledger, factor: str) -> None:
    parts: dict[str | None, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for s in SPANS:
        step = s.attributes.get("step")
        parts[None if step is None else str(step)][s.trace_id] += cost(s)
    expect: set[tuple[str, str | None]] = set()
    for key, by_trace in parts.items():
        median = nearest(list(by_trace.values()), 0.5)
        expect |= {(t, key) for t, c in by_trace.items() if c > Decimal(factor) * median}
    found = ledger.part_outliers(by="step", factor=factor, limit=10_000)
    assert {(o.trace_id, o.key) for o in found} == expect
    assert expect, "the summarize loops are outliers of their step"
    totals, root = trace_totals(), roots()
    for o in found:
        assert o.cost == parts[o.key][o.trace_id]
        assert o.root_name == root[o.trace_id].name
        assert o.spans == sum(1 for s in SPANS if s.trace_id == o.trace_id)
        assert totals[o.trace_id] >= o.cost
    assert [o.cost for o in found] == sorted((o.cost for o in found), reverse=True)
    rows = analytics.distribution(
        ledger, by="step", per="part", factor=factor, outlier_limit=10_000
    )
    assert {(o.trace_id, o.key) for r in rows for o in r.outliers} == expect
    assert ledger.part_outliers(by="step", factor=factor, limit=0) == []
