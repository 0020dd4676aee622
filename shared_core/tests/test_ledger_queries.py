"""Every ledger query, written once and run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from faremeter.cost import Cost
from faremeter.ledger import Ledger
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.usage import Usage

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
NS = 1_000_000_000


def _pg_available() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg not installed: pip install 'faremeter[postgres]'"
    try:
        with psycopg.connect(PG_URL, connect_timeout=2):
            return None
    except Exception as exc:
        return (
            f"PostgreSQL not reachable at {PG_URL} ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    schema = None
    if request.param == "memory":
        url = "memory"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/ledger.db"
    else:
        reason = _pg_available()
        if reason:
            pytest.skip(reason)
        schema = f"fm_test_{uuid.uuid4().hex[:12]}"
        url = f"{PG_URL}?schema={schema}"
    led = Ledger.from_url(url)
    try:
        yield led
    finally:
        led.close()
        if schema:
            _drop_schema(schema)


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


def span(
    trace: str,
    sid: str,
    parent: str | None,
    *,
    name: str = "s",
    kind: SpanKind = SpanKind.LLM,
    cost: Cost | None = None,
    at: datetime = T0,
    usage: Usage | None = None,
    **attrs: str | int | float | bool,
) -> SpanRecord:
    return SpanRecord(
        trace_id=trace.ljust(32, "0"),
        span_id=sid.ljust(16, "0"),
        parent_span_id=None if parent is None else parent.ljust(16, "0"),
        name=name,
        kind=kind,
        start_ns=ns(at),
        end_ns=ns(at) + 5_000_000,
        usage=usage,
        cost=cost if cost is not None else Cost(),
        attributes=attrs,
        model="gpt-4o" if kind is SpanKind.LLM else None,
    )


def llm(amount: str) -> Cost:
    return Cost(input=Decimal(amount))


def dataset() -> list[SpanRecord]:
    """Two workflows, three users, tools, an unpriced span, two days."""
    u = Usage(input_tokens=1000, output_tokens=100)
    spans = [
        # trace a: research by u1, $0.30 total
        span(
            "a",
            "a1",
            None,
            name="research",
            kind=SpanKind.AGENT,
            user_id="u1",
            workflow="research",
            team="t1",
        ),
        span(
            "a",
            "a2",
            "a1",
            cost=llm("0.1"),
            usage=u,
            user_id="u1",
            workflow="research",
            step="plan",
            team="t1",
            priority=1,
        ),
        span(
            "a",
            "a3",
            "a1",
            name="web_search",
            kind=SpanKind.TOOL,
            cost=Cost.of_tool("0.005"),
            user_id="u1",
            workflow="research",
            step="search",
            team="t1",
        ),
        span(
            "a",
            "a4",
            "a2",
            cost=llm("0.195"),
            usage=u,
            user_id="u1",
            workflow="research",
            step="plan",
            team="t1",
            priority=2,
        ),
        # trace b: research by u2, $0.05, one unpriced
        span(
            "b",
            "b1",
            None,
            name="research",
            kind=SpanKind.AGENT,
            user_id="u2",
            workflow="research",
            at=T0 + timedelta(hours=1),
        ),
        span(
            "b",
            "b2",
            "b1",
            cost=llm("0.05"),
            usage=u,
            user_id="u2",
            workflow="research",
            step="plan",
            at=T0 + timedelta(hours=1),
        ),
        span(
            "b",
            "b3",
            "b1",
            cost=Cost.unpriced("unknown model x"),
            user_id="u2",
            workflow="research",
            step="plan",
            at=T0 + timedelta(hours=1),
        ),
        # trace c: support by u3 the next day, $1.00
        span(
            "c",
            "c1",
            None,
            name="support",
            kind=SpanKind.CHAIN,
            user_id="u3",
            workflow="support",
            flag=True,
            at=T0 + timedelta(days=1),
        ),
        span(
            "c",
            "c2",
            "c1",
            cost=llm("0.99"),
            user_id="u3",
            workflow="support",
            at=T0 + timedelta(days=1),
        ),
        span(
            "c",
            "c3",
            "c1",
            name="read_page",
            kind=SpanKind.TOOL,
            cost=Cost.of_tool("0.01"),
            user_id="u3",
            workflow="support",
            at=T0 + timedelta(days=1),
        ),
    ]
    return spans


def fill(ledger: Ledger) -> list[SpanRecord]:
    spans = dataset()
    for s in spans:
        ledger.record(s)
    assert ledger.flush(10)
    return spans


def test_spans_round_trip_every_field(ledger: Ledger) -> None:
    rich = SpanRecord(
        trace_id="f" * 32,
        span_id="e" * 16,
        parent_span_id="d" * 16,
        name="call",
        kind=SpanKind.LLM,
        status=SpanStatus.FALLBACK,
        start_ns=1_700_000_000_123_456_789,
        end_ns=1_700_000_001_987_654_321,
        model="gpt-4o-2024-08-06",
        provider="openai",
        usage=Usage(
            input_tokens=120,
            output_tokens=30,
            cache_read_tokens=20,
            cache_write_tokens=10,
            cache_write_1h_tokens=5,
            reasoning_tokens=7,
            source="estimated",
        ),
        cost=Cost(
            input=Decimal("0.000225"),
            cache_read=Decimal("0.0000125"),
            cache_write=Decimal("0.00001875"),
            output=Decimal("0.00023"),
            reasoning=Decimal("0.00007"),
            tool=Decimal(0),
            model="gpt-4o",
        ),
        saved=Decimal("0.0012345678901234"),
        price_version="2025-01-01",
        attributes={"user_id": "u", "n": 3, "ratio": 0.25, "ok": True, "x.y-z": "q"},
        tags=("a", "b"),
        error="RateLimitError: slow down",
        error_class="rate_limit",
        content=None,
    )
    unpriced = SpanRecord(
        trace_id="f" * 32,
        span_id="c" * 16,
        name="x",
        kind=SpanKind.TOOL,
        start_ns=1_700_000_002_000_000_000,
        end_ns=1_700_000_002_000_000_001,
        cost=Cost.unpriced("no price for tool x"),
    )
    ledger.record(rich)
    ledger.record(unpriced)
    assert ledger.flush(10)
    got = ledger.spans("f" * 32)
    assert got == [rich, unpriced]
    assert got[0].attributes["ok"] is True and got[0].attributes["n"] == 3
    assert got[1].cost.total is None


def test_content_is_stripped_unless_asked(ledger: Ledger) -> None:
    s = span("k", "k1", None)
    ledger.record(SpanRecord(**{**{f: getattr(s, f) for f in s.__slots__}, "content": {"p": "hi"}}))
    assert ledger.flush(10)
    assert ledger.spans()[0].content is None


def test_cost_by_user_sums_each_span_once(ledger: Ledger) -> None:
    fill(ledger)
    rows = ledger.cost_by("user_id")
    assert [(r.key, r.cost, r.spans, r.traces, r.unpriced) for r in rows] == [
        ("u3", Decimal("1.00"), 3, 1, 0),
        ("u1", Decimal("0.3"), 4, 1, 0),
        ("u2", Decimal("0.05"), 3, 1, 1),
    ]
    assert rows[1].input_tokens == 2000 and rows[1].output_tokens == 200


def test_cost_by_fields_and_custom_attributes(ledger: Ledger) -> None:
    fill(ledger)
    tools = ledger.cost_by("tool")
    assert [(r.key, r.cost) for r in tools] == [
        ("read_page", Decimal("0.01")),
        ("web_search", Decimal("0.005")),
    ]
    kinds = {r.key: r.cost for r in ledger.cost_by("kind")}
    assert kinds == {
        "llm": Decimal("1.335"),
        "tool": Decimal("0.015"),
        "agent": Decimal(0),
        "chain": Decimal(0),
    }
    custom = {r.key: (r.cost, r.spans) for r in ledger.cost_by("priority")}
    assert custom == {
        "2": (Decimal("0.195"), 1),
        "1": (Decimal("0.1"), 1),
        None: (Decimal("1.055"), 8),
    }
    flags = {r.key: r.spans for r in ledger.cost_by("flag")}
    assert flags == {"true": 1, None: 9}
    assert {r.key for r in ledger.cost_by("model")} == {"gpt-4o", None}
    assert {r.key: r.unpriced for r in ledger.cost_by("status")} == {"ok": 1}


def test_where_and_time_bounds(ledger: Ledger) -> None:
    fill(ledger)
    rows = ledger.cost_by("step", where={"workflow": "research", "team": "t1"})
    assert [(r.key, r.cost) for r in rows] == [
        ("plan", Decimal("0.295")),
        ("search", Decimal("0.005")),
        (None, Decimal(0)),
    ]
    day2 = ledger.cost_by("workflow", since=T0 + timedelta(hours=20))
    assert [(r.key, r.cost) for r in day2] == [("support", Decimal("1.00"))]
    early = ledger.cost_by("workflow", until=T0 + timedelta(minutes=30))
    assert [(r.key, r.spans) for r in early] == [("research", 4)]
    missing = ledger.cost_by("user_id", where={"team": None})
    assert {r.key for r in missing} == {"u2", "u3"}
    assert ledger.cost_by("user_id", where={"priority": 2})[0].cost == Decimal("0.195")
    assert len(ledger.spans(kind="tool")) == 2
    assert len(ledger.spans(where={"flag": True})) == 1
    assert len(ledger.spans(limit=3)) == 3


def test_step_breakdown_and_split(ledger: Ledger) -> None:
    fill(ledger)
    steps = ledger.step_breakdown(workflow="research")
    assert [(r.key, r.cost, r.unpriced) for r in steps] == [
        ("plan", Decimal("0.345"), 1),
        ("search", Decimal("0.005"), 0),
        (None, Decimal(0), 0),
    ]
    split = ledger.cost_split()
    assert (split.llm, split.tool, split.other, split.total) == (
        Decimal("1.335"),
        Decimal("0.015"),
        Decimal(0),
        Decimal("1.35"),
    )
    assert (split.spans, split.unpriced) == (10, 1)


def test_percentiles_group_by_root_attribute(ledger: Ledger) -> None:
    fill(ledger)
    rows = ledger.percentiles(by="workflow")
    assert [r.key for r in rows] == ["research", "support"]
    research = rows[0]
    assert research.traces == 2 and research.unpriced_traces == 1
    assert research.p50 == Decimal("0.05") and research.p90 == Decimal("0.3")
    assert research.max == Decimal("0.3") and research.total == Decimal("0.35")
    assert rows[1].p99 == Decimal("1.00")
    by_user = ledger.percentiles(by="user_id", quantiles=(0.0, 1.0), where={"workflow": "research"})
    assert [(r.key, r.quantiles[0.0]) for r in by_user] == [
        ("u1", Decimal("0.3")),
        ("u2", Decimal("0.05")),
    ]
    with pytest.raises(ValueError, match="span field"):
        ledger.percentiles(by="model")


def test_percentiles_nearest_rank_on_many_traces(ledger: Ledger) -> None:
    for i in range(1, 101):
        ledger.record(span(f"t{i:03d}", f"s{i:03d}", None, cost=llm(f"{i}.00"), workflow="w"))
    assert ledger.flush(10)
    (row,) = ledger.percentiles(quantiles=(0.5, 0.9, 0.99, 0.29))
    assert row.quantiles == {
        0.5: Decimal(50),
        0.9: Decimal(90),
        0.99: Decimal(99),
        0.29: Decimal(29),
    }
    assert row.max == Decimal(100) and row.traces == 100


def test_time_series_and_top_traces(ledger: Ledger) -> None:
    fill(ledger)
    hours = ledger.time_series("hour")
    assert [(b.start, b.cost, b.spans) for b in hours] == [
        (datetime(2025, 3, 1, 10, tzinfo=UTC), Decimal("0.3"), 4),
        (datetime(2025, 3, 1, 11, tzinfo=UTC), Decimal("0.05"), 3),
        (datetime(2025, 3, 2, 10, tzinfo=UTC), Decimal("1.00"), 3),
    ]
    days = ledger.time_series("day", by="workflow")
    assert [(b.start.day, b.key, b.cost, b.unpriced) for b in days] == [
        (1, "research", Decimal("0.35"), 1),
        (2, "support", Decimal("1.00"), 0),
    ]
    top = ledger.top_traces(2)
    assert [(t.trace_id[0], t.root_name, t.cost, t.spans) for t in top] == [
        ("c", "support", Decimal("1.00"), 3),
        ("a", "research", Decimal("0.3"), 4),
    ]
    assert top[0].started == T0 + timedelta(days=1)
    assert [t.trace_id[0] for t in ledger.top_traces(5, where={"user_id": "u2"})] == ["b"]


def test_trace_tree(ledger: Ledger) -> None:
    fill(ledger)
    tree = ledger.trace_tree("a".ljust(32, "0"))
    (root,) = tree.roots
    assert root.total_cost == Decimal("0.3")
    assert root.find("web_search") is not None
    assert tree.total_cost == Decimal("0.3")


def test_rollup_converges_across_batches_and_rewrites(ledger: Ledger) -> None:
    spans = dataset()
    for s in reversed(spans):  # children before roots, one flush each: many batches
        ledger.record(s)
        assert ledger.flush(10)
    for s in spans:  # a retried batch: must neither duplicate nor double-count
        ledger.record(s)
    assert ledger.flush(10)
    assert len(ledger.spans()) == len(spans)
    top = {t.trace_id[0]: (t.cost, t.spans, t.root_name) for t in ledger.top_traces(10)}
    assert top == {
        "c": (Decimal("1.00"), 3, "support"),
        "a": (Decimal("0.3"), 4, "research"),
        "b": (Decimal("0.05"), 3, "research"),
    }


def test_attribute_names_are_validated_never_interpolated(ledger: Ledger) -> None:
    fill(ledger)
    for bad in ("user_id; DROP TABLE x", "a'b", "", "1abc", "a b"):
        with pytest.raises(ValueError, match="invalid attribute name"):
            ledger.cost_by(bad)
        with pytest.raises(ValueError, match="invalid attribute name"):
            ledger.spans(where={bad: "x"})
    with pytest.raises(ValueError, match="naive"):
        ledger.cost_by("user_id", since=datetime(2025, 1, 1))
    assert len(ledger.spans()) == 10


def test_exact_sums_of_many_small_costs(ledger: Ledger) -> None:
    amount = Decimal("0.0000025")
    for i in range(3000):
        ledger.record(
            span(
                "m", f"{i:016x}", None if i == 0 else "0" * 16, cost=Cost(input=amount), user_id="u"
            )
        )
    assert ledger.flush(10)
    (row,) = ledger.cost_by("user_id")
    assert row.cost == amount * 3000 == Decimal("0.0075")
