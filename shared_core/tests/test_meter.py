from __future__ import annotations

import asyncio
import logging
import threading
from decimal import Decimal

import pytest

import faremeter
from faremeter import ConfigError, Cost, Meter, SpanKind, SpanStatus, Usage
from faremeter.pricing import ModelPrice, PriceCatalog
from faremeter.testing import make_test_meter, recorded_spans


@pytest.fixture
def seed002_meter() -> Meter:
    catalog = PriceCatalog.default().with_overrides(
        models={
            "gpt-5.2": ModelPrice(input_per_mtok=3, output_per_mtok=15),
            "gemini-3-pro": ModelPrice(input_per_mtok="2.5", output_per_mtok=10),
        }
    )
    return make_test_meter(catalog=catalog)


def record_seed002(m: Meter) -> faremeter.SpanScope:
    with m.trace("coordinator", user_id="u1", workflow="code-review") as t:
        m.record_llm("gpt-5.2", Usage(input_tokens=1500, output_tokens=500))
        with m.span("code_agent", kind="agent"):
            m.record_llm("gpt-5.2", Usage(input_tokens=2000, output_tokens=800))
            with m.span("syntax_analyzer", kind="agent"):
                m.record_llm("gemini-3-pro", Usage(input_tokens=500, output_tokens=200))
    return t


def test_seed002_hierarchy_direct_child_total(seed002_meter: Meter) -> None:
    t = record_seed002(seed002_meter)
    tree = t.tree()
    root = tree.roots[0]
    assert root.span.name == "coordinator"
    assert root.direct_cost == Decimal("0")  # the agent span itself costs nothing
    coordinator_call = root.children[0]
    assert coordinator_call.span.kind is SpanKind.LLM
    assert coordinator_call.total_cost == Decimal("0.012")
    code_agent = tree.find("code_agent")
    syntax = tree.find("syntax_analyzer")
    assert code_agent is not None and syntax is not None
    assert code_agent.total_cost == Decimal("0.02125")
    assert syntax.total_cost == Decimal("0.00325")
    assert root.child_cost == Decimal("0.03325")
    assert root.child_cost - coordinator_call.total_cost == Decimal("0.02125")
    assert t.cost == tree.total_cost == Decimal("0.03325")


def test_seed002_cost_by_user_counts_each_span_once(seed002_meter: Meter) -> None:
    record_seed002(seed002_meter)
    seed002_meter.flush()
    rows = seed002_meter.ledger.cost_by("user_id")
    assert [(r.key, r.cost) for r in rows] == [("u1", Decimal("0.03325"))]
    stored = seed002_meter.ledger.trace_tree(recorded_spans(seed002_meter)[0].trace_id)
    assert stored.total_cost == Decimal("0.03325")


def test_seed001_research_agent_costs() -> None:
    m = make_test_meter(tools={"web_search": "0.005", "read_page": "0.001"})
    steps = [
        (500, 100, None), (800, 300, None), (1200, 150, "web_search"),
        (2500, 200, "read_page"), (3800, 200, "read_page"), (4500, 500, None),
        (5200, 150, "web_search"), (6000, 200, "read_page"), (6800, 1000, None),
        (7500, 400, None),
    ]  # fmt: skip
    with m.trace("research", workflow="research") as t:
        for i, (inp, out, tool) in enumerate(steps, 1):
            with faremeter.attributes(step=f"step-{i}"):
                m.record_llm("gpt-4o", Usage(input_tokens=inp, output_tokens=out))
                if tool:
                    m.record_tool(tool)
    spans = recorded_spans(m)
    llm = sum((s.cost.total or Decimal(0) for s in spans if s.kind is SpanKind.LLM), Decimal(0))
    tools = sum((s.cost.total or Decimal(0) for s in spans if s.kind is SpanKind.TOOL), Decimal(0))
    assert llm == Decimal("0.129")
    assert tools == Decimal("0.013")
    assert t.cost == Decimal("0.142")
    assert {s.attributes["step"] for s in spans if s.kind is SpanKind.TOOL} == {
        "step-3", "step-4", "step-5", "step-7", "step-8",
    }  # fmt: skip


def test_cached_tokens_bill_at_cache_read_rate(meter: Meter) -> None:
    cost = meter.price("gpt-4o", Usage(input_tokens=1000, cache_read_tokens=1000))
    assert cost.cache_read == Decimal("0.00125")  # $1.25/M, not free and not $2.50/M
    assert cost.input == 0


def test_attributes_inherit_into_child_tasks_not_siblings(meter: Meter) -> None:
    async def worker(name: str) -> None:
        with faremeter.attributes(step=name):
            await asyncio.sleep(0)
            meter.record_llm("gpt-4o", Usage(input_tokens=10, output_tokens=1), name=name)

    async def main() -> str:
        async with meter.trace("run", user_id="u7") as t:
            await asyncio.gather(worker("a"), worker("b"), worker("c"))
        return t.trace_id

    trace_id = asyncio.run(main())
    spans = {s.name: s for s in recorded_spans(meter) if s.kind is SpanKind.LLM}
    for name in "abc":
        assert spans[name].attributes["step"] == name
        assert spans[name].attributes["user_id"] == "u7"
        assert spans[name].trace_id == trace_id


def test_threads_start_fresh_unless_bound(meter: Meter) -> None:
    with meter.trace("run") as t:
        unbound = threading.Thread(target=meter.record_llm, args=("gpt-4o", Usage()))
        bound = threading.Thread(
            target=faremeter.bind(meter.record_llm), args=("gpt-4o-mini", Usage())
        )
        unbound.start(), bound.start()
        unbound.join(), bound.join()
    spans = {s.model: s for s in recorded_spans(meter) if s.kind is SpanKind.LLM}
    assert spans["gpt-4o-mini"].trace_id == t.trace_id
    assert spans["gpt-4o"].trace_id != t.trace_id


def test_nested_trace_is_its_own_trace_linked_to_the_outer(meter: Meter) -> None:
    with meter.trace("outer", user_id="u1") as outer:
        with meter.trace("inner") as inner:
            meter.record_llm("gpt-4o", Usage(input_tokens=100))
        meter.record_llm("gpt-4o", Usage(input_tokens=200))
    assert inner.trace_id != outer.trace_id
    assert inner.cost == Decimal("0.00025")
    assert outer.cost == Decimal("0.0005")
    inner_root = next(s for s in recorded_spans(meter) if s.name == "inner")
    assert inner_root.attributes["parent_trace_id"] == outer.trace_id
    assert inner_root.attributes["user_id"] == "u1"


def test_error_in_trace_is_recorded_and_propagates_unchanged(meter: Meter) -> None:
    boom = KeyError("boom")
    with pytest.raises(KeyError) as info, meter.trace("run"):
        meter.record_llm("gpt-4o", Usage(input_tokens=100))
        raise boom
    assert info.value is boom
    root = next(s for s in recorded_spans(meter) if s.name == "run")
    assert root.status is SpanStatus.ERROR
    assert root.error == "KeyError: 'boom'"


def test_priced_tool_sync_async_and_errors() -> None:
    m = make_test_meter()

    @m.priced_tool(price_per_call="0.005")
    def web_search(q: str) -> list[str]:
        return [q]

    @m.priced_tool(name="records", price_per_unit="0.10", units=len)
    async def fetch_records(n: int) -> list[int]:
        return list(range(n))

    class ToolFailed(Exception):
        pass

    failure = ToolFailed("down")

    @m.priced_tool(price_per_call="1")
    def flaky() -> None:
        raise failure

    with m.trace("run") as t:
        assert web_search("x") == ["x"]
        assert asyncio.run(fetch_records(3)) == [0, 1, 2]
        with pytest.raises(ToolFailed) as info:
            flaky()
    assert info.value is failure
    spans = {s.name: s for s in recorded_spans(m)}
    assert spans["web_search"].cost.total == Decimal("0.005")
    assert spans["records"].cost.total == Decimal("0.30")
    assert spans["flaky"].status is SpanStatus.ERROR
    assert spans["flaky"].cost.total == 0
    assert t.cost == Decimal("0.305")


def test_unknown_model_unpriced_with_one_warning(
    meter: Meter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="faremeter"):
        for _ in range(3):
            rec = meter.record_llm("no-such-model-xyz", Usage(input_tokens=5))
            assert rec is not None and rec.cost.total is None
    warnings = [r for r in caplog.records if "no-such-model-xyz" in r.getMessage()]
    assert len(warnings) == 1
    assert rec.cost.unpriced_reason == "unknown model 'no-such-model-xyz'"


def test_unpriced_tool_is_not_zero(meter: Meter) -> None:
    rec = meter.record_tool("unconfigured")
    assert rec is not None and rec.cost.total is None


def test_span_end_is_idempotent(meter: Meter) -> None:
    span = meter.start_span("x", kind="llm", model="gpt-4o")
    assert span.end(usage=Usage(input_tokens=10)) is not None
    assert span.end(usage=Usage(input_tokens=10)) is None
    assert len(recorded_spans(meter)) == 1


def test_own_faults_never_reach_the_app(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenLedger:
        def record(self, span: object) -> None:
            raise OSError("disk on fire")

        def flush(self, timeout: float | None = None) -> bool:
            return True

        def close(self) -> None:
            pass

    m = Meter(ledger=BrokenLedger())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="faremeter"), m.trace("run"):
        assert m.record_llm("gpt-4o", Usage(input_tokens=1)) is None
    assert "disk on fire" in caplog.text


def test_content_dropped_unless_opted_in() -> None:
    off, on = make_test_meter(), make_test_meter(store_content=True)
    for m in (off, on):
        m.start_span("x", kind="llm", model="gpt-4o").end(
            usage=Usage(input_tokens=1), content={"prompt": "secret plan"}
        )
    assert recorded_spans(off)[0].content is None
    assert recorded_spans(on)[0].content == {"prompt": "secret plan"}


def test_bad_ledger_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="mysql://x"):
        Meter(ledger="mysql://x")


def test_default_meter_is_replaceable(meter: Meter) -> None:
    assert faremeter.get_meter() is meter
    other = make_test_meter()
    assert faremeter.set_meter(other) is meter
    assert faremeter.get_meter() is other
    faremeter.set_meter(meter)


def test_invalid_attribute_names_rejected(meter: Meter) -> None:
    with (
        pytest.raises(ValueError, match="invalid attribute name"),
        faremeter.attributes(**{"drop table; --": "x"}),
    ):
        pass


def test_tool_reported_cost(meter: Meter) -> None:
    rec = meter.record_tool("data_api", cost=Cost.of_tool("0.30"), calls=3)
    assert rec is not None and rec.cost.tool == Decimal("0.30")


def test_llm_span_without_usage_is_unpriced_unless_it_failed(meter: Meter) -> None:
    ok = meter.start_span("call", kind="llm", model="gpt-4o").end()
    failed = meter.start_span("call", kind="llm", model="gpt-4o").end(status="error", error="x")
    assert ok is not None and ok.cost.total is None
    assert ok.cost.unpriced_reason == "no usage reported"
    assert failed is not None and failed.cost.total == 0


def test_build_record_matches_the_constructor() -> None:
    from dataclasses import astuple, fields

    from faremeter.spans import SpanRecord, build_record

    ref = SpanRecord(
        trace_id="a" * 32, span_id="b" * 16, parent_span_id="c" * 16, name="n",
        kind=SpanKind.LLM, status=SpanStatus.ERROR, start_ns=1, end_ns=2, model="m",
        provider="p", usage=Usage(input_tokens=3), cost=Cost.of_tool("1"),
        saved=Decimal("0.5"), price_version="v", attributes={"user_id": "u"}, tags=("t",),
        error="E: x", error_class="timeout", content={"prompt": "p"},
    )  # fmt: skip
    fast = build_record(*(getattr(ref, f.name) for f in fields(SpanRecord)))
    assert fast == ref and astuple(fast) == astuple(ref)
    with pytest.raises(AttributeError):
        fast.name = "changed"  # type: ignore[misc]
