"""What-if repricing and suggestions, checked against hand computations."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from faremeter import Meter, SpanKind, SpanStatus, Usage, analytics
from faremeter.analytics.sample import sample_workload
from faremeter.demo import RESEARCH_STEPS, run_research_agent
from faremeter.errors import UnknownModelError
from faremeter.ledger import Ledger
from faremeter.testing import make_test_meter

M = Decimal(1_000_000)


@pytest.fixture
def demo_meter() -> Meter:
    meter = make_test_meter()
    run_research_agent(meter)
    run_research_agent(meter, user_id="u2")
    meter.flush()
    return meter


def test_summarize_on_gpt4o_mini_equals_the_hand_computation(demo_meter: Meter) -> None:
    mini, big = demo_meter.catalog.get("gpt-4o-mini"), demo_meter.catalog.get("gpt-4o")
    # The published prices the hand computation uses.
    assert (mini.input_per_mtok, mini.output_per_mtok) == (Decimal("0.15"), Decimal("0.6"))
    assert (big.input_per_mtok, big.output_per_mtok) == (Decimal("2.5"), Decimal("10"))
    (summarize,) = [s for s in RESEARCH_STEPS if s.name == "summarize"]
    assert (summarize.input_tokens, summarize.output_tokens) == (4500, 500)
    # 4,500 x $0.15/M + 500 x $0.60/M = $0.000975 per run; recorded 4,500 x $2.50/M + 500 x $10/M.
    per_run_mini = Decimal(4500) * Decimal("0.15") / M + Decimal(500) * Decimal("0.6") / M
    per_run_4o = Decimal(4500) * Decimal("2.5") / M + Decimal(500) * Decimal(10) / M
    assert per_run_mini == Decimal("0.000975") and per_run_4o == Decimal("0.01625")

    w = analytics.what_if(
        demo_meter.ledger, demo_meter.catalog, model="gpt-4o-mini", step="summarize"
    )
    assert (w.calls, w.skipped) == (2, 0)
    assert w.what_if == 2 * per_run_mini
    assert w.recorded == 2 * per_run_4o
    assert w.savings == 2 * (per_run_4o - per_run_mini)
    # and the recorded side is what the ledger says summarize cost
    (row,) = [
        r for r in demo_meter.ledger.cost_by("step", where={"kind": "llm"}) if r.key == "summarize"
    ]
    assert row.cost == w.recorded


def test_what_if_of_the_whole_demo_and_a_route(demo_meter: Meter) -> None:
    led, cat = demo_meter.ledger, demo_meter.catalog
    total_in = sum(s.input_tokens for s in RESEARCH_STEPS)
    total_out = sum(s.output_tokens for s in RESEARCH_STEPS)
    w = analytics.what_if(led, cat, model="gpt-4o-mini")
    assert w.what_if == 2 * (total_in * Decimal("0.15") + total_out * Decimal("0.6")) / M
    assert w.recorded == 2 * Decimal("0.129")  # seed 001's LLM cost per run

    def route(span: object) -> str | None:
        step = getattr(span, "attributes", {}).get("step")
        return "gpt-4o-mini" if step in ("parse_query", "format") else None

    r = analytics.what_if(led, cat, model=route)
    moved = [s for s in RESEARCH_STEPS if s.name in ("parse_query", "format")]
    saving = sum(
        (Decimal(s.input_tokens) * (Decimal("2.5") - Decimal("0.15")) / M
         + Decimal(s.output_tokens) * (Decimal(10) - Decimal("0.6")) / M for s in moved),
        Decimal(0),
    )  # fmt: skip
    assert r.target == "route" and r.savings == 2 * saving
    assert {(row.model, row.target) for row in r.rows} == {
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o", "gpt-4o-mini"),
    }


def test_what_if_uses_cache_rates_and_skips_what_it_cannot_price() -> None:
    meter = make_test_meter()
    with meter.trace("t", workflow="w"):
        meter.record_llm(
            "gpt-4o", Usage(input_tokens=10_000, cache_read_tokens=8_000, output_tokens=100)
        )
        meter.record_llm("no-such-model-xyz", Usage(input_tokens=10, output_tokens=1))
        meter.record_llm(
            "gpt-4o", Usage(input_tokens=5, output_tokens=5), status=SpanStatus.CACHED, cost=None
        )
    meter.flush()
    w = analytics.what_if(meter.ledger, meter.catalog, model="gpt-4o-mini")
    expect = (2_000 * Decimal("0.15") + 8_000 * Decimal("0.075") + 100 * Decimal("0.6")) / M
    assert w.calls == 1 and w.what_if == expect and w.skipped == 2
    with pytest.raises(UnknownModelError):
        analytics.what_if(meter.ledger, meter.catalog, model="gpt-4o-mimi")


@pytest.fixture(scope="module")
def sample_ledger() -> Ledger:
    meter = make_test_meter()
    led = meter.ledger
    for s in sample_workload(meter.catalog, traces=240):
        led.record(s)
    led.flush()
    return led


def test_suggestions_carry_evidence_and_exact_impact(sample_ledger: Ledger) -> None:
    cat = make_test_meter().catalog
    spans = sample_ledger.spans()
    found = analytics.suggest(sample_ledger, cat)
    kinds = {s.kind for s in found}
    assert kinds == {"cheaper_model", "tool_cache", "budget_hits", "prompt_cache", "retry_backoff"}
    assert [s.impact for s in found] == sorted((s.impact for s in found), reverse=True)
    by = {(s.kind, s.subject): s for s in found}

    summarize = by[("cheaper_model", "summarize")]
    w = analytics.what_if(sample_ledger, cat, model="gpt-4o-mini", step="summarize")
    assert summarize.impact == w.savings and summarize.evidence["calls"] == str(w.calls)

    # web_search: every call after the first with the same args hash could have been a cache hit
    seen: dict[str, list[Decimal]] = defaultdict(list)
    for s in spans:
        if s.kind is SpanKind.TOOL and s.name == "web_search" and s.status is SpanStatus.OK:
            seen[str(s.attributes["tool_args_hash"])].append(s.cost.total or Decimal(0))
    wasted = sum((sum(v, Decimal(0)) * (len(v) - 1) / len(v) for v in seen.values()), Decimal(0))
    assert by[("tool_cache", "web_search")].impact == wasted
    # kb_lookup is cached 60% of the time: above the 50% bar, no suggestion
    assert ("tool_cache", "kb_lookup") not in by

    denied = {s.trace_id for s in spans if s.status is SpanStatus.DENIED}
    spent = sum((s.cost.total or Decimal(0) for s in spans if s.trace_id in denied), Decimal(0))
    hits = by[("budget_hits", "research")]
    assert hits.evidence["traces"] == str(len(denied)) and hits.impact == spent

    prefixed = [s for s in spans if s.attributes.get("prompt_prefix_hash")]
    rates = cat.get("gpt-4o")
    per_token = (rates.input_per_mtok - rates.cache_read_per_mtok) / M  # type: ignore[operator]
    assert by[("prompt_cache", "gpt-4o")].impact == (len(prefixed) - 1) * 1024 * per_token

    retries = by[("retry_backoff", "gpt-4o-mini")]
    assert retries.evidence["quick_retries"] == str(
        sum(1 for s in spans if s.status is SpanStatus.ERROR)
    )

    assert analytics.suggest(sample_ledger, cat, min_impact=Decimal("1000")) == []
    # a 20 ms wait is a backoff when the bar is 10 ms; gpt-4o mapped to itself saves nothing
    fewer = analytics.suggest(sample_ledger, cat, cheaper={"gpt-4o": "gpt-4o"}, retry_gap_ms=10)
    assert not [s for s in fewer if s.kind == "retry_backoff"]
    assert {s.subject for s in fewer if s.kind == "cheaper_model"} == set()


def test_what_if_at_a_tiered_model_prices_each_call_in_its_tier() -> None:
    meter = make_test_meter()
    target = "anthropic.claude-sonnet-4-5-20250929-v1:0"  # long-context tier above 200k
    assert meter.catalog.get(target).tiers
    small = Usage(input_tokens=150_000, output_tokens=1_000)
    large = Usage(input_tokens=250_000, output_tokens=1_000)
    with meter.trace("t"):
        meter.record_llm("gpt-4o", small)
        meter.record_llm("gpt-4o", large)
    meter.flush()
    w = analytics.what_if(meter.ledger, meter.catalog, model=target)
    expect = meter.price(target, small).total + meter.price(target, large).total  # type: ignore[operator]
    assert w.what_if == expect
    # pricing the summed usage would put both calls in the upper tier
    assert w.what_if != meter.price(target, small + large).total


def test_what_if_over_summed_counts_equals_pricing_each_call_for_every_token_kind() -> None:
    from faremeter.analytics.whatif import what_if_spans

    meter = make_test_meter()
    usages = [
        Usage(input_tokens=9_000, cache_read_tokens=4_000, cache_write_tokens=3_000,
              cache_write_1h_tokens=1_000, output_tokens=700, reasoning_tokens=300),
        Usage(input_tokens=5_000, audio_input_tokens=1_200, output_tokens=400,
              audio_output_tokens=100),
        Usage(input_tokens=77, output_tokens=3, source="estimated"),
    ] * 3  # fmt: skip
    with meter.trace("t", step="mixed"):
        for u in usages:
            meter.record_llm("gpt-4o", u)
    meter.flush()
    for target in ("gpt-4o-mini", "claude-haiku-4-5", "azure/gpt-4o-audio-preview-2024-12-17"):
        assert target in meter.catalog
        fast = analytics.what_if(meter.ledger, meter.catalog, model=target, step="mixed")
        slow = what_if_spans(meter.ledger.spans(kind=SpanKind.LLM), meter.catalog, model=target)
        assert fast.calls == slow.calls == len(usages)
        assert fast.what_if == slow.what_if, target
