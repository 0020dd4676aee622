"""The hourly and tool-arguments rollups: same answers as the spans, on every backend.

A known workload (the analytics sample plus routed, stamped, cached and
unpriced calls) is queried over aligned, unaligned and sub-hour windows, with
filters the rollup keys on and filters it does not; memory (which always reads
its spans), SQLite and PostgreSQL must agree, and the sums must equal the
spans'. The rollups are maintained on write and backfilled when an older
ledger is opened; both must produce the same rows.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from faremeter.analytics.sample import SAMPLE_START, sample_workload
from faremeter.cost import Cost
from faremeter.ledger import Ledger, SQLiteStore
from faremeter.ledger.codec import to_pico
from faremeter.ledger.url import store_from_url
from faremeter.pricing import PriceCatalog
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.usage import Usage

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
CATALOG = PriceCatalog.default()
ZERO = Decimal(0)
H = timedelta(hours=1)
T0 = SAMPLE_START


def _extra() -> list[SpanRecord]:
    """Calls the sample lacks: routed (stamped or not), cache hits of every kind, odd usage."""
    at = int(T0.timestamp()) * 10**9 + 5_400 * 10**9  # 01:30
    u = Usage(input_tokens=900, output_tokens=120, cache_read_tokens=300, reasoning_tokens=40)
    out: list[SpanRecord] = []

    def add(i: int, **kw: Any) -> None:
        start = at + i * 900 * 10**9  # every 15 minutes from 01:30: crosses several hours
        base: dict[str, Any] = {
            "trace_id": f"{0xE000 + i // 3:032x}",
            "span_id": f"{0xE000 + i:016x}",
            "parent_span_id": None,
            "name": "call",
            "kind": SpanKind.LLM,
            "start_ns": start,
            "end_ns": start + 10**9,
        }
        out.append(SpanRecord(**{**base, **kw}))

    mini = CATALOG.cost("gpt-4o-mini", u)
    route = {"route.model": "gpt-4o-mini", "route.baseline_model": "gpt-4o", "team": "core"}
    for i in range(6):  # routed, repriced at the baseline model from usage
        add(i, model="gpt-4o-mini", usage=u, cost=mini, attributes={**route, "step": "summarize"})
    add(6, model="gpt-4o-mini", usage=u, cost=mini,
        attributes={**route, "route.baseline_cost": "0.02"})  # fmt: skip
    add(7, model="gpt-4o-mini", usage=u, cost=mini,
        attributes={**route, "route.baseline_cost": "not a number"})  # fmt: skip
    add(8, model="gpt-4o-mini", usage=u, cost=mini, attributes={"route.model": "gpt-4o-mini"})
    add(9, model="gpt-4o-mini", usage=None, cost=Cost(), attributes=route)
    add(10, model="gpt-4o", usage=u, status=SpanStatus.CACHED, cost=Cost(),
        saved=Decimal("0.0123"), attributes={"step": "answer"})  # fmt: skip
    add(11, name="lookup-chain", kind=SpanKind.CHAIN, status=SpanStatus.CACHED, cost=Cost(),
        saved=Decimal("0.000000000007"), attributes={"step": 3})  # fmt: skip
    for j in range(12, 15):  # an unpriced tool repeating one argument set
        add(j, name="geo", kind=SpanKind.TOOL, model=None, cost=Cost.unpriced("no price"),
            attributes={"tool_args_hash": "g1"})  # fmt: skip
    return out


SPANS: list[SpanRecord] = [*sample_workload(CATALOG, traces=160), *_extra()]


def _pg_schema_url() -> tuple[str, str] | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=2):
            pass
    except Exception:
        return None
    schema = f"fm_roll_{uuid.uuid4().hex[:12]}"
    return f"{PG_URL}?schema={schema}", schema


def _pg(sql: str, *, autocommit: bool = False) -> list[Any]:
    """Run one statement on the test database (rows, when it returns any)."""
    import psycopg

    with psycopg.connect(PG_URL, autocommit=autocommit) as conn:
        execute: Any = conn.execute
        cur: Any = execute(sql)
        rows: list[Any] = list(cur.fetchall()) if cur.description else []
        return rows


def _drop_schema(schema: str) -> None:
    _pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', autocommit=True)


def _fill(url: str, max_batch: int = 2_000) -> Ledger:
    led = Ledger(store_from_url(url), max_batch=max_batch)
    for s in SPANS:
        led.record(s)
    assert led.flush(60)
    return led


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ledger]]:
    tmp = tmp_path_factory.mktemp("rollups")
    leds = {"memory": _fill("memory"), "sqlite": _fill(f"sqlite:///{tmp}/l.db")}
    pg = _pg_schema_url()
    if pg is not None:
        leds["postgresql"] = _fill(pg[0])
    yield leds
    for led in leds.values():
        led.close()
    if pg is not None:
        _drop_schema(pg[1])


M = timedelta(minutes=1)
S = timedelta(seconds=1)
UNALIGNED: dict[str, Any] = {"since": T0 + H + 17 * M + 3 * S, "until": T0 + 4 * H + 2 * M}
ALIGNED: dict[str, Any] = {"since": T0 + H, "until": T0 + 3 * H}
INSIDE_AN_HOUR: dict[str, Any] = {"since": T0 + 2 * H + 10 * M, "until": T0 + 2 * H + 40 * M}
OPEN_END: dict[str, Any] = {"since": T0 + 2 * H + S}
WINDOWS: dict[str, dict[str, Any]] = {
    "all": {}, "unaligned": UNALIGNED, "aligned": ALIGNED, "inside": INSIDE_AN_HOUR,
    "open_end": OPEN_END, "until_only": {"until": T0 + 3 * H + 7 * S},
    "empty": {"since": T0 - 9 * H, "until": T0 - 2 * H},
}  # fmt: skip

QUERIES: dict[str, Callable[[Ledger, dict[str, Any]], Any]] = {
    "series_hour_kind": lambda led, w: led.time_series("hour", by="kind", **w),
    "series_day": lambda led, w: led.time_series("day", **w),
    "series_15m": lambda led, w: led.time_series(timedelta(minutes=15), by="step", **w),
    "series_team": lambda led, w: led.time_series("hour", by="team", **w),
    "series_step_filter": lambda led, w: led.time_series("hour", where={"step": "plan"}, **w),
    "split": lambda led, w: led.cost_split(**w),
    "split_team": lambda led, w: led.cost_split(where={"team": "core"}, **w),
    "usage_step": lambda led, w: led.usage_totals(by="step", **w),
    "usage_tool_all_kinds": lambda led, w: led.usage_totals(by="tool", kind=None, **w),
    "usage_unstamped": lambda led, w: led.usage_totals(
        kind=None, where={"route.model": "gpt-4o-mini", "route.baseline_cost": None}, **w
    ),
    "usage_stamped_value": lambda led, w: led.usage_totals(
        kind=None, where={"route.baseline_cost": "0.02"}, **w
    ),
    "totals_status": lambda led, w: led.totals("status", **w),
    "totals_tool_status": lambda led, w: led.totals("tool", "status", **w),
    "totals_route": lambda led, w: led.totals("route.model", "route.baseline_model", **w),
    "totals_prompt": lambda led, w: led.totals(
        "model", "prompt_prefix_hash", "prompt_prefix_tokens", where={"kind": "llm"}, **w
    ),
    "totals_user": lambda led, w: led.totals("user_id", "model", **w),
    "totals_none": lambda led, w: led.totals(**w),
    "totals_tool_kind_conflict": lambda led, w: led.totals("tool", kind="llm", **w),
    "repeats": lambda led, w: led.repeated_tool_calls(**w),
    "prefixes": lambda led, w: led.repeated_prompt_prefixes(**w),
    "prefixes_team": lambda led, w: led.repeated_prompt_prefixes(where={"team": "growth"}, **w),
    "repeats_feature": lambda led, w: led.repeated_tool_calls(where={"feature": "free"}, **w),
    "histogram": lambda led, w: led.trace_histogram(Decimal("0.0025"), **w),
    "histogram_fraction": lambda led, w: led.trace_histogram(Decimal("2.5E-13"), **w),
    "all_percentiles": lambda led, w: led.percentiles(by=None, **w),
    "all_outliers": lambda led, w: led.outliers(by=None, factor="1.5", limit=7, **w),
    "all_outliers_workflow": lambda led, w: led.outliers(
        by=None, where={"workflow": "research"}, **w
    ),
    "group_percentiles": lambda led, w: led.percentiles(by="team", **w),
    "workflow_percentiles": lambda led, w: led.percentiles(
        by="workflow", quantiles=(0, 0.5, 1), **w
    ),
    "workflow_outliers": lambda led, w: led.outliers(
        by="workflow", factor="1.5", where={"workflow": "research"}, limit=9, **w
    ),
    "workflow_outliers_none": lambda led, w: led.outliers(
        by="workflow", where={"workflow": None}, **w
    ),
    "group_outliers": lambda led, w: led.outliers(by="workflow", factor=2, **w),
}


@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_backend_gives_the_same_answer(
    ledgers: dict[str, Ledger], name: str, window: str
) -> None:
    answers = {b: QUERIES[name](led, WINDOWS[window]) for b, led in ledgers.items()}
    reference = answers.pop("memory")
    for backend, answer in answers.items():
        assert answer == reference, backend


def _in(s: SpanRecord, w: dict[str, Any]) -> bool:
    return (w.get("since") is None or s.start_time >= w["since"]) and (
        w.get("until") is None or s.start_time < w["until"]
    )


@pytest.mark.parametrize("window", ["all", "unaligned", "inside"])
def test_totals_are_the_sums_of_the_spans(ledgers: dict[str, Ledger], window: str) -> None:
    w = WINDOWS[window]
    inside = [s for s in SPANS if _in(s, w)]
    expect: dict[str | None, list[Any]] = defaultdict(lambda: [0, ZERO, 0, ZERO, 0, 0])
    for s in inside:
        e = expect[s.status.value]
        e[0] += 1
        e[1] += s.cost.total or ZERO
        e[2] += s.cost.total is None
        e[3] += Decimal(to_pico(s.saved)) / 10**12 if s.saved is not None else ZERO
        e[4] += s.usage.input_tokens if s.usage else 0
        e[5] += s.usage.output_tokens if s.usage else 0
    for led in ledgers.values():
        got = {
            r.keys[0]: [r.spans, r.cost, r.unpriced, r.saved, r.input_tokens, r.output_tokens]
            for r in led.totals("status", **w)
        }
        assert got == dict(expect)
    if window == "all":  # saved and unpriced spans are both in the workload
        assert expect["cached"][3] > 0 and expect["ok"][2] > 0


def test_usage_totals_sum_every_count_of_the_spans(ledgers: dict[str, Ledger]) -> None:
    w = UNALIGNED
    llm = [s for s in SPANS if s.kind is SpanKind.LLM and _in(s, w)]
    for led in ledgers.values():
        totals = led.usage_totals(by="step", **w)
        assert sum(t.spans for t in totals) == len(llm)
        reasoning = sum(t.tokens["reasoning_tokens"] for t in totals if t.tokens is not None)
        assert reasoning == sum(s.usage.reasoning_tokens for s in llm if s.usage is not None) > 0
        # one row per (step, model, status, priced, with usage): usage never mixes
        keys = [(t.key, t.model, t.status, t.priced, t.tokens is None) for t in totals]
        assert len(keys) == len(set(keys))


def test_repeated_tool_calls_match_a_count_by_hand(ledgers: dict[str, Ledger]) -> None:
    calls: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, ZERO])
    for s in SPANS:
        args = s.attributes.get("tool_args_hash")
        if s.kind is SpanKind.TOOL and s.status is SpanStatus.OK and args is not None:
            calls[(s.name, str(args))][0] += 1
            calls[(s.name, str(args))][1] += s.cost.total or ZERO
    expect: dict[tuple[str, int], list[Any]] = defaultdict(lambda: [0, ZERO])
    for (tool, _), (n, cost) in calls.items():
        if n >= 2:
            expect[(tool, n)][0] += 1
            expect[(tool, n)][1] += cost
    for led in ledgers.values():
        got = {(g.tool, g.calls): [g.argument_sets, g.cost] for g in led.repeated_tool_calls()}
        assert got == dict(expect)
        assert ("geo", 3) in got  # unpriced calls still repeat, at $0


def test_repeated_prompt_prefixes_match_a_count_by_hand(ledgers: dict[str, Ledger]) -> None:
    calls: dict[tuple[str, str, str], int] = defaultdict(int)
    for s in SPANS:
        digest, size = (
            s.attributes.get("prompt_prefix_hash"),
            s.attributes.get("prompt_prefix_tokens"),
        )
        if s.kind is SpanKind.LLM and s.model and digest is not None and size is not None:
            calls[(s.model, str(digest), str(size))] += 1
    expect = {k: n for k, n in calls.items() if n >= 2}
    assert expect
    for led in ledgers.values():
        got = {(g.model, g.prefix_hash, g.prefix_tokens): g.calls
               for g in led.repeated_prompt_prefixes()}  # fmt: skip
        assert got == expect


def test_histogram_counts_every_trace_in_its_bin(ledgers: dict[str, Ledger]) -> None:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for s in SPANS:
        totals[s.trace_id] += s.cost.total or ZERO
    width = Decimal("0.01")
    expect: dict[int, int] = defaultdict(int)
    for t in totals.values():
        expect[int(t // width)] += 1
    for led in ledgers.values():
        assert led.trace_histogram(width) == dict(expect)
        (row,) = led.percentiles(by=None, quantiles=(0.5, 1.0))
        assert row.traces == len(totals) and row.max == max(totals.values())
        assert row.quantiles[1.0] == row.max
    with pytest.raises(ValueError, match="width"):
        ledgers["memory"].trace_histogram(Decimal(0))


def test_spans_of_traces_reads_whole_traces_in_order(ledgers: dict[str, Ledger]) -> None:
    ids = sorted({s.trace_id for s in SPANS})[3:9]
    for led in ledgers.values():
        got = led.spans_of_traces([*ids, "f" * 32])
        assert list(got) == ids
        for tid, spans in got.items():
            assert spans == led.spans(tid)


def test_the_rollup_answers_whole_hours_without_reading_spans(tmp_path: Path) -> None:
    """Shows which queries read the rollup: with the spans gone, only those still answer."""
    path = tmp_path / "l.db"
    led = _fill(f"sqlite:///{path}")
    w = ALIGNED
    series = led.time_series("hour", by="kind", **w)
    tools = led.totals("tool", "status", where={"step": "web_search"}, **w)
    usage = led.usage_totals(by="step", **w)
    # UNALIGNED runs 01:17:03-04:02: its whole hours are 02:00-04:00.
    whole = led.time_series("hour", by="kind", since=T0 + 2 * H, until=T0 + 4 * H)
    assert series and tools and usage and whole
    assert led.time_series("hour", by="kind", **UNALIGNED) != whole
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM faremeter_spans")
    assert led.time_series("hour", by="kind", **w) == series
    assert led.totals("tool", "status", where={"step": "web_search"}, **w) == tools
    assert led.usage_totals(by="step", **w) == usage
    # The partial hours at either end are read from the (now empty) spans...
    assert led.time_series("hour", by="kind", **UNALIGNED) == whole
    # ...and so is anything filtered by an attribute the rollup does not key on.
    assert led.totals("tool", "status", where={"team": "core"}, **w) == []
    led.close()


def _rollup_rows(fetch: Callable[[str], list[Any]], prefix: str = "") -> dict[str, list[Any]]:
    return {
        "hourly": fetch(f"SELECT * FROM {prefix}faremeter_hourly ORDER BY bucket_ns, dkey"),
        "tool_args": fetch(f"SELECT * FROM {prefix}faremeter_tool_args ORDER BY tool, args"),
        "prefixes": fetch(
            f"SELECT * FROM {prefix}faremeter_prompt_prefixes"
            " ORDER BY model, prefix_hash, prefix_tokens"
        ),
    }


_DOWNGRADE = [
    "DROP TABLE {p}faremeter_hourly",
    "DROP TABLE {p}faremeter_tool_args",
    "DROP TABLE {p}faremeter_prompt_prefixes",
    "DROP INDEX {p}faremeter_spans_status",
    "DROP INDEX {p}faremeter_traces_total",
    "UPDATE {p}faremeter_schema SET version = 2",
]


def test_a_version_2_sqlite_ledger_is_backfilled_to_the_rollup_writes_keep(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    led = _fill(f"sqlite:///{path}", max_batch=17)  # many batches: rows upserted many times
    led.close()

    def fetch(sql: str) -> list[Any]:
        with sqlite3.connect(path) as conn:
            return conn.execute(sql).fetchall()

    written = _rollup_rows(fetch)
    assert len(written["hourly"]) > 20 and written["tool_args"] and written["prefixes"]
    with sqlite3.connect(path) as conn:
        for stmt in _DOWNGRADE:
            conn.execute(stmt.format(p=""))
    reopened = Ledger.from_url(f"sqlite:///{path}")
    assert reopened.cost_split().spans == len(SPANS)  # opens, migrates, backfills
    assert _rollup_rows(fetch) == written
    assert fetch("SELECT version FROM faremeter_schema") == [(3,)]
    reference = Ledger.from_url("memory")
    for s in SPANS:
        reference.record(s)
    for name, query in QUERIES.items():
        assert query(reopened, UNALIGNED) == query(reference, UNALIGNED), name
    reopened.close()
    reference.close()


def test_a_version_2_postgres_ledger_is_backfilled_to_the_rollup_writes_keep() -> None:
    pg = _pg_schema_url()
    if pg is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    url, schema = pg
    try:
        led = _fill(url, max_batch=23)
        led.close()
        p = f'"{schema}".'
        written = _rollup_rows(_pg, p)
        assert written["hourly"] and written["tool_args"]
        for stmt in _DOWNGRADE:
            _pg(stmt.format(p=p), autocommit=True)
        reopened = Ledger.from_url(url)
        assert reopened.cost_split().spans == len(SPANS)
        assert _rollup_rows(_pg, p) == written
        reopened.close()
    finally:
        _drop_schema(schema)


def test_a_retried_batch_adds_nothing_to_the_rollups(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "l.db")
    batch = SPANS[:300]
    assert store.write(batch) == 300
    conn = store._reader()  # pyright: ignore[reportPrivateUsage]
    before = _rollup_rows(lambda sql: conn.execute(sql).fetchall())
    assert store.write([*batch[100:], *SPANS[300:310]]) == 10  # a retry plus ten new spans
    store.write(SPANS[300:310])
    after = _rollup_rows(lambda sql: conn.execute(sql).fetchall())
    fresh = SQLiteStore(tmp_path / "fresh.db")
    fresh.write(SPANS[:310])
    conn2 = fresh._reader()  # pyright: ignore[reportPrivateUsage]
    assert after == _rollup_rows(lambda sql: conn2.execute(sql).fetchall()) != before
    store.close()
    fresh.close()
