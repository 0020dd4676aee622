"""The dashboard's JSON API: every panel's number == the ledger query == the sum of the spans."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard extra (starlette) is not installed")

from starlette.testclient import TestClient

from faremeter import Meter
from faremeter.cost import ZERO
from faremeter.dashboard.app import create_app
from faremeter.dashboard.sample import SampleWorkload, record_sample_workload
from faremeter.ledger import Ledger
from faremeter.spans import SpanRecord
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage

NOW_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, the dashboard's pinned "now"


@dataclass
class Filled:
    meter: Meter
    work: SampleWorkload
    spans: list[SpanRecord]
    client: TestClient


def _pinned() -> int:
    return NOW_NS


@pytest.fixture
def filled() -> Iterator[Filled]:
    meter = make_test_meter()
    work = record_sample_workload(meter, now_ns=NOW_NS)
    spans = recorded_spans(meter)
    with TestClient(create_app(meter, clock=_pinned)) as client:
        yield Filled(meter, work, spans, client)
    meter.close()


def _cost(span: SpanRecord) -> Decimal:
    total = span.cost.total
    assert total is not None
    return total


def _trace_totals(spans: list[SpanRecord]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for s in spans:
        totals[s.trace_id] += _cost(s)
    return dict(totals)


def _nearest_rank(values: list[Decimal], q: float) -> Decimal:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _get(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_ticker_total_equals_cost_split_and_the_sum_of_spans(filled: Filled) -> None:
    body = _get(filled.client, "/api/ticker")
    split = filled.meter.ledger.cost_split()
    by_spans = sum((_cost(s) for s in filled.spans), ZERO)
    assert Decimal(body["total"]) == split.total == by_spans
    tools = sum((_cost(s) for s in filled.spans if s.kind.value == "tool"), ZERO)
    assert Decimal(body["tool"]) == split.tool == tools
    assert body["spans"] == split.spans == len(filled.spans)
    # Six hours of work, one bucket per hour, each equal to the spans that started in it.
    assert body["interval"] == "hour"
    per_hour: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for s in filled.spans:
        hour = s.start_time.replace(minute=0, second=0, microsecond=0)
        per_hour[hour.isoformat()] += _cost(s)
    assert {b["start"]: Decimal(b["cost"]) for b in body["series"]} == per_hour
    assert [Decimal(b["cost"]) for b in body["series"]] == [
        b.cost for b in filled.meter.ledger.time_series("hour")
    ]


def test_task_rows_are_top_traces_with_the_known_outlier_flagged(filled: Filled) -> None:
    body = _get(filled.client, "/api/tasks")
    totals = _trace_totals(filled.spans)
    top = filled.meter.ledger.top_traces(50)
    assert [r["trace_id"] for r in body["rows"]] == [t.trace_id for t in top]
    for row, t in zip(body["rows"], top, strict=True):
        assert Decimal(row["cost"]) == t.cost == totals[row["trace_id"]]
    median = _nearest_rank(list(totals.values()), 0.5)
    assert Decimal(body["median"]) == median
    assert Decimal(body["outlier_threshold"]) == 2 * median
    flagged = [r["trace_id"] for r in body["rows"] if r["outlier"]]
    assert flagged == [filled.work.outlier_trace_id]
    # The same rule as the analytics outlier query.
    outliers = filled.meter.ledger.outliers(by="faremeter.dashboard.all", factor=2)
    assert [o.trace_id for o in outliers] == flagged
    assert body["traces"] == len(totals) == 18


def test_distribution_markers_equal_ledger_percentiles_and_nearest_rank_of_spans(
    filled: Filled,
) -> None:
    body = _get(filled.client, "/api/distribution")
    totals = list(_trace_totals(filled.spans).values())
    (row,) = filled.meter.ledger.percentiles(by="faremeter.dashboard.all")
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert Decimal(body[key]) == row.quantiles[q] == _nearest_rank(totals, q)
    assert Decimal(body["max"]) == max(totals)
    assert Decimal(body["total"]) == sum(totals, ZERO)
    # Every task lands in exactly one bin, the one whose [lo, hi) holds its total.
    assert sum(b["count"] for b in body["bins"]) == len(totals)
    for b in body["bins"]:
        lo, hi = Decimal(b["lo"]), Decimal(b["hi"])
        assert b["count"] == sum(1 for t in totals if lo <= t < hi)
    assert Decimal(body["range"][0]) == 0
    assert Decimal(body["range"][1]) > max(totals)
    p90 = Decimal(body["p90"])
    assert Decimal(body["range"][0]) <= p90 <= Decimal(body["range"][1])


def test_savings_equal_saved_of_cached_spans_and_repriced_route_baselines(filled: Filled) -> None:
    body = _get(filled.client, "/api/savings")
    cached = [s for s in filled.spans if s.status.value == "cached"]
    assert len(cached) == 9
    assert Decimal(body["cache"]["saved"]) == sum((s.saved or ZERO for s in cached), ZERO)
    assert body["cache"]["hits"] == 9
    routed = [s for s in filled.spans if "route.model" in s.attributes]
    assert len(routed) == 6
    baseline = ZERO
    for s in routed:
        assert s.usage is not None
        priced = filled.meter.catalog.cost("gpt-4o", s.usage).total
        assert priced is not None
        baseline += priced
    actual = sum((_cost(s) for s in routed), ZERO)
    (model,) = body["routing"]["by_model"]
    assert (model["model"], Decimal(model["baseline"]), Decimal(model["cost"])) == (
        "gpt-4o-mini",
        baseline,
        actual,
    )
    assert Decimal(body["routing"]["saved"]) == baseline - actual > 0
    assert Decimal(body["baseline"]) == Decimal(body["spend"]) + Decimal(body["saved"])


def test_opportunities_are_the_analytics_suggestions_plus_outliers_and_failures(
    filled: Filled,
) -> None:
    from faremeter.analytics.suggestions import suggest

    body = _get(filled.client, "/api/opportunities")
    items = body["items"]
    expected = suggest(filled.meter.ledger, filled.meter.catalog)
    assert [(i["kind"], Decimal(i["amount"])) for i in items if i["kind"] in {
        "cheaper_model", "tool_cache", "budget_hits", "prompt_cache", "retry_backoff"}] == [
        (s.kind, s.impact) for s in expected
    ]  # fmt: skip
    by_kind = {i["kind"]: i for i in items}
    totals = _trace_totals(filled.spans)
    assert Decimal(by_kind["outlier_tasks"]["amount"]) == totals[filled.work.outlier_trace_id]
    failed = [s for s in filled.spans if s.status.value == "error"]
    assert Decimal(by_kind["failed_calls"]["amount"]) == sum((_cost(s) for s in failed), ZERO)
    assert {"cheaper_model", "tool_cache"} <= by_kind.keys()
    amounts = [Decimal(i["amount"] or 0) for i in items]
    assert amounts == sorted(amounts, reverse=True)


def test_anomaly_is_the_hour_of_the_runaway_task(filled: Filled) -> None:
    (item,) = _get(filled.client, "/api/anomalies")["items"]
    # A window that starts long before the first span finds the same hour.
    assert _get(filled.client, "/api/anomalies?window=7d")["items"] == [item]
    outlier_start = min(
        s.start_ns for s in filled.spans if s.trace_id == filled.work.outlier_trace_id
    )
    hour = datetime.fromtimestamp(outlier_start // 10**9, tz=UTC).replace(minute=0, second=0)
    assert item["at"] == hour.isoformat()
    in_hour = [s for s in filled.spans if hour <= s.start_time < hour + timedelta(hours=1)]
    (bucket,) = [b for b in filled.meter.ledger.time_series("hour") if b.start == hour]
    assert Decimal(item["amount"]) == bucket.cost == sum((_cost(s) for s in in_hour), ZERO)
    # The baseline is the median of the hours before it (nearest rank of an even count: mean).
    before = sorted(b.cost for b in filled.meter.ledger.time_series("hour") if b.start < hour)
    mid = len(before) // 2
    median = before[mid] if len(before) % 2 else (before[mid - 1] + before[mid]) / 2
    assert Decimal(item["baseline"]) == median
    assert Decimal(item["amount"]) >= 3 * median


def test_window_and_attribute_filters_match_the_same_ledger_query(filled: Filled) -> None:
    since = datetime.fromtimestamp(NOW_NS // 10**9, tz=UTC) - timedelta(hours=1)
    body = _get(filled.client, "/api/ticker?window=1h")
    in_window = [s for s in filled.spans if s.start_time >= since]
    assert 0 < len(in_window) < len(filled.spans)
    assert Decimal(body["total"]) == filled.meter.ledger.cost_split(since=since).total
    assert Decimal(body["total"]) == sum((_cost(s) for s in in_window), ZERO)
    assert body["query"]["since"] == since.isoformat()

    body = _get(filled.client, "/api/ticker?attr.user_id=u3&attr.step=write")
    mine = [
        s for s in filled.spans
        if s.attributes.get("user_id") == "u3" and s.attributes.get("step") == "write"
    ]  # fmt: skip
    assert Decimal(body["total"]) == sum((_cost(s) for s in mine), ZERO) > 0
    tasks = _get(filled.client, "/api/tasks?attr.user_id=u3&attr.model=gpt-4o")
    assert tasks["ignored_filters"] == ["model"]
    u3 = {s.trace_id for s in filled.spans if s.attributes.get("user_id") == "u3"}
    assert {r["trace_id"] for r in tasks["rows"]} == u3


def test_trace_endpoint_returns_the_tree_with_rolled_up_costs(filled: Filled) -> None:
    tid = filled.work.outlier_trace_id
    body = _get(filled.client, f"/api/trace/{tid}")
    (root,) = body["roots"]
    assert root["name"] == "research-agent"
    own = [s for s in filled.spans if s.trace_id == tid]
    assert Decimal(body["total"]) == Decimal(root["total"]) == sum((_cost(s) for s in own), ZERO)
    assert Decimal(root["children_cost"]) == sum(Decimal(c["total"]) for c in root["children"])
    assert [c["name"] for c in root["children"]] == ["plan", "web_search", "web_search", "write"]
    assert filled.client.get("/api/trace/" + "0" * 32).status_code == 404


def test_bad_parameters_are_400_naming_the_parameter(filled: Filled) -> None:
    r = filled.client.get("/api/ticker?window=2h")
    assert r.status_code == 400 and "window='2h'" in r.json()["error"]
    r = filled.client.get("/api/tasks?attr.bad%20name=x")
    assert r.status_code == 400 and "bad name" in r.json()["error"]
    r = filled.client.get("/api/ticker?since=yesterday")
    assert r.status_code == 400 and "since" in r.json()["error"]


def test_budgets_without_a_budget_manager_say_none_configured(filled: Filled) -> None:
    body = _get(filled.client, "/api/budgets")
    assert body["configured"] is False and body["budgets"] == [] and body["in_flight"] == "0"


def test_budgets_show_money_in_flight_and_the_burn_down_forecast() -> None:
    from faremeter.budgets import Budget, BudgetManager

    hour = 3_600 * 10**9
    day_start = NOW_NS  # 2026-01-01T00:00Z, the start of a calendar day
    now = [day_start + 6 * hour]
    manager = BudgetManager(
        [
            Budget("daily", limit=Decimal(10), window="day"),
            Budget("per-user", limit=Decimal(2), window="day", per="user_id"),
        ],
        clock=lambda: now[0],
    )
    meter = make_test_meter(budgets=manager)
    done = manager.reserve(attributes={"user_id": "u1"}, amount=Decimal("1.5"))
    done.settle(Decimal("1.2"))
    manager.reserve(attributes={"user_id": "u1"}, amount=Decimal("0.25"))  # still in flight
    with TestClient(create_app(meter)) as client:
        body = _get(client, "/api/budgets")
    meter.close()
    assert body["configured"] is True
    rows = {(b["name"], b["subject"]): b for b in body["budgets"]}
    daily = rows[("daily", None)]
    user = rows[("per-user", "u1")]
    assert (Decimal(daily["spent"]), Decimal(daily["reserved"])) == (
        Decimal("1.2"),
        Decimal("0.25"),
    )
    assert Decimal(body["in_flight"]) == sum(
        (s.reserved for s in manager.status()), ZERO
    ) == Decimal("0.5")  # fmt: skip
    # Burn-down: $1.20 in the first 6 hours of the day projects to $1.2 + $0.25 + $3.60.
    assert Decimal(daily["projected"]) == Decimal("5.05")
    assert daily["over_forecast"] is False
    assert Decimal(user["projected"]) == Decimal("5.05") and user["over_forecast"] is True
    assert Decimal(user["remaining"]) == Decimal("0.55")
    assert daily["elapsed"] == 0.25  # six hours into the day, by the manager's clock
    assert daily["window_start"] == "2026-01-01T00:00:00+00:00"


def test_a_bare_sqlite_ledger_gives_the_same_numbers(tmp_path: Path, filled: Filled) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.from_url(url)
    for s in filled.spans:
        ledger.record(s)
    assert ledger.flush(10)
    with TestClient(create_app(ledger, clock=_pinned)) as client:
        for panel in ("ticker", "tasks", "distribution", "savings", "opportunities"):
            ours = _get(client, f"/api/{panel}")
            theirs = _get(filled.client, f"/api/{panel}")
            assert ours == theirs, panel
    ledger.close()


def test_pages_and_vendored_chart_library_are_served(filled: Filled) -> None:
    page = filled.client.get("/")
    assert page.status_code == 200 and "panel-distribution" in page.text
    lib = filled.client.get("/static/vendor/uPlot.iife.min.js")
    assert lib.status_code == 200 and "uPlot" in lib.text
    assert filled.client.get("/static/app.js").status_code == 200


def test_an_unpriced_model_is_counted_not_summed_as_zero() -> None:
    meter = make_test_meter()
    with meter.trace("job", workflow="w"):
        meter.record_llm("no-such-model-xyz", Usage(input_tokens=10, output_tokens=1))
        meter.record_llm("gpt-4o", Usage(input_tokens=1000, output_tokens=100))
    meter.flush()
    with TestClient(create_app(meter)) as client:
        ticker = _get(client, "/api/ticker")
        opps = _get(client, "/api/opportunities")
    meter.close()
    assert ticker["unpriced"] == 1
    assert Decimal(ticker["total"]) == Decimal("0.0035")
    assert any(i["kind"] == "unpriced" for i in opps["items"])


def test_an_empty_ledger_answers_every_panel() -> None:
    meter = make_test_meter()
    with TestClient(create_app(meter)) as client:
        bodies = {
            p: _get(client, f"/api/{p}")
            for p in (
                "ticker",
                "tasks",
                "distribution",
                "opportunities",
                "budgets",
                "savings",
                "anomalies",
            )
        }
    meter.close()
    assert bodies["ticker"]["total"] == "0" and bodies["ticker"]["series"] == []
    assert bodies["tasks"]["rows"] == [] and bodies["tasks"]["median"] is None
    assert bodies["distribution"]["p90"] is None and bodies["distribution"]["traces"] == 0
    assert bodies["opportunities"]["items"] == [] and bodies["anomalies"]["items"] == []


def test_more_than_two_days_is_drawn_per_day_and_equals_the_daily_series() -> None:
    meter = make_test_meter()
    day = 86_400 * 10**9
    for d in range(4):
        root = meter.start_span("job", kind="agent", new_trace=True, start_ns=NOW_NS + d * day)
        llm = meter.start_span("call", kind="llm", parent=root, model="gpt-4o",
                               start_ns=NOW_NS + d * day + 3_600 * 10**9 * (d + 1))  # fmt: skip
        llm.end(usage=Usage(input_tokens=1_000 * (d + 1), output_tokens=10),
                end_ns=NOW_NS + d * day + 3_600 * 10**9 * (d + 1) + 10**6)  # fmt: skip
        root.end(end_ns=NOW_NS + d * day + 5 * 3_600 * 10**9)
    meter.flush()
    with TestClient(create_app(meter)) as client:
        body = _get(client, "/api/ticker")
    assert body["interval"] == "day"
    daily = meter.ledger.time_series("day")
    meter.close()
    assert [(b["start"], Decimal(b["cost"]), b["spans"]) for b in body["series"]] == [
        (b.start.isoformat(), b.cost, b.spans) for b in daily
    ]
    assert len(daily) == 4


def test_the_page_loads_nothing_from_the_network_and_vendored_files_are_unmodified() -> None:
    import hashlib
    import re

    from faremeter.dashboard.app import STATIC_DIR

    page = (STATIC_DIR / "index.html").read_text()
    assert re.findall(r'(?:src|href)="([^"]+)"', page) == [
        "/static/vendor/uPlot.min.css", "/static/app.css",
        "/static/vendor/uPlot.iife.min.js", "/static/app.js",
    ]  # fmt: skip
    script = (STATIC_DIR / "app.js").read_text()
    # The only URL is the SVG namespace, which is a name, never fetched.
    assert re.findall(r"https?://[^\"' ]+", script) == ["http://www.w3.org/2000/svg"]
    readme = (STATIC_DIR / "vendor" / "README.md").read_text()
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        digest = hashlib.sha256((STATIC_DIR / "vendor" / name).read_bytes()).hexdigest()
        assert f"{digest}  {name}" in readme
    assert (STATIC_DIR / "vendor" / "uPlot.LICENSE").read_text().startswith("The MIT License")


def test_importing_faremeter_does_not_import_the_dashboard_or_starlette() -> None:
    import subprocess
    import sys

    code = (
        "import sys, faremeter, faremeter.dashboard;"
        "mods = ('starlette', 'uvicorn', 'faremeter.dashboard.app');"
        "bad = [m for m in mods if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_explicit_since_until_and_not_set_filters(filled: Filled) -> None:
    hour = 3_600
    start = datetime.fromtimestamp(NOW_NS // 10**9 - 4 * hour, tz=UTC)
    end = start + timedelta(hours=2)
    naive = start.replace(tzinfo=None).isoformat()  # naive means UTC
    r = filled.client.get("/api/ticker", params={"since": naive, "until": end.isoformat()})
    body = r.json()
    inside = [s for s in filled.spans if start <= s.start_time < end]
    assert 0 < len(inside) < len(filled.spans)
    assert Decimal(body["total"]) == sum((_cost(s) for s in inside), ZERO)
    assert body["query"]["since"] == start.isoformat()
    # "(none)": spans without a step are the agent roots, which cost nothing themselves.
    body = _get(filled.client, "/api/ticker?attr.step=(none)")
    roots = [s for s in filled.spans if "step" not in s.attributes]
    assert body["spans"] == len(roots) == 18 and body["total"] == "0"
    r = filled.client.get("/api/ticker", params={"since": end.isoformat(), "until": naive})
    assert r.status_code == 400 and "until must be after since" in r.json()["error"]
