"""Usage validation and exact Cost arithmetic (seed 001 / seed 002 numbers)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faremeter.cost import Cost
from faremeter.errors import InvalidUsageError
from faremeter.pricing import ModelPrice, PriceCatalog, ToolPrice
from faremeter.usage import MAX_TOKENS_PER_CALL, Usage


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"input_tokens": -1}, "input_tokens must be >= 0, got -1"),
        ({"output_tokens": True}, "output_tokens must be an int, got bool"),
        ({"input_tokens": 1.5}, "input_tokens must be an int, got float"),
        ({"input_tokens": "10"}, "input_tokens must be an int, got str"),
        ({"input_tokens": 10, "cache_read_tokens": 11}, "exceeds input_tokens"),
        (
            {"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 5},
            "exceeds input_tokens",
        ),
        ({"output_tokens": 5, "reasoning_tokens": 6}, "output_tokens must include reasoning"),
        ({"input_tokens": MAX_TOKENS_PER_CALL + 1}, "refusing a corrupt counter"),
        (
            {"input_tokens": 10, "cache_write_tokens": 2, "cache_write_1h_tokens": 3},
            "cache_write_1h_tokens (3) exceeds cache_write_tokens (2)",
        ),
    ],
)
def test_invalid_usage_is_rejected_with_a_clear_message(
    kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InvalidUsageError, match=None) as info:
        Usage(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_seed_001_research_agent_at_gpt_4o_prices() -> None:
    catalog = PriceCatalog.default().with_overrides(
        tools={
            "web_search": ToolPrice.per_call("0.005"),
            "read_page": ToolPrice.per_call("0.001"),
        }
    )
    llm = catalog.cost("gpt-4o", Usage(input_tokens=38_800, output_tokens=3_200))
    assert catalog.get("gpt-4o").input_per_mtok == Decimal("2.5")
    assert catalog.get("gpt-4o").output_per_mtok == Decimal("10")
    assert llm.total == Decimal("0.129")
    assert llm.model == "gpt-4o"
    tools = catalog.tool_cost("web_search", calls=2) + catalog.tool_cost("read_page", calls=3)
    assert tools.total == Decimal("0.013")
    total = llm + tools
    assert total.total == Decimal("0.142")
    assert total.llm == Decimal("0.129")
    assert total.tool == Decimal("0.013")


def test_seed_002_hierarchy_with_custom_prices() -> None:
    catalog = PriceCatalog(
        models={
            "gpt-5.2": ModelPrice(input_per_mtok=3, output_per_mtok=15),
            "gemini-3-pro": ModelPrice(input_per_mtok="2.5", output_per_mtok=10),
        }
    )
    coordinator = catalog.cost("gpt-5.2", Usage(input_tokens=1_500, output_tokens=500))
    code_agent = catalog.cost("gpt-5.2", Usage(input_tokens=2_000, output_tokens=800))
    syntax = catalog.cost("gemini-3-pro", Usage(input_tokens=500, output_tokens=200))
    assert coordinator.total == Decimal("0.012")
    assert code_agent.total == Decimal("0.018")
    assert syntax.total == Decimal("0.00325")
    assert (coordinator + code_agent + syntax).total == Decimal("0.03325")


def test_seed_002_bug_cached_tokens_are_not_free() -> None:
    """Seed 002 treats cached tokens as free; they bill at the cache-read rate."""
    catalog = PriceCatalog(
        models={"m": ModelPrice(input_per_mtok=3, output_per_mtok=15, cache_read_per_mtok="0.3")}
    )
    cost = catalog.cost("m", Usage(input_tokens=1_500, output_tokens=500, cache_read_tokens=1_000))
    assert cost.input == Decimal("0.0015")  # 500 uncached x $3/M
    assert cost.cache_read == Decimal("0.0003")  # 1,000 x $0.30/M — not 0, not $3/M
    assert cost.output == Decimal("0.0075")
    assert cost.total == Decimal("0.0093")


def test_a_million_costs_sum_exactly() -> None:
    catalog = PriceCatalog.default()
    one = catalog.cost("gpt-4o", Usage(input_tokens=1, output_tokens=1))
    assert one.total == Decimal("0.0000125")
    total = sum((one for _ in range(1_000_000)), Cost())
    assert total.total == Decimal("12.5")
    assert total.input == Decimal("2.5")
    assert float(total.total) == 12.5  # a float accumulator would drift


usage_counts = st.integers(min_value=0, max_value=2_000_000)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    inp = draw(usage_counts)
    read = draw(st.integers(0, inp))
    write = draw(st.integers(0, inp - read))
    write_1h = draw(st.integers(0, write))
    out = draw(usage_counts)
    reasoning = draw(st.integers(0, out))
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=reasoning,
    )


@given(usages(), usages())
def test_cost_of_a_sum_is_the_sum_of_costs_below_tiers(a: Usage, b: Usage) -> None:
    price = ModelPrice(
        input_per_mtok=3,
        output_per_mtok=15,
        cache_read_per_mtok="0.3",
        cache_write_per_mtok="3.75",
        cache_write_1h_per_mtok=6,
        reasoning_per_mtok=20,
    )
    catalog = PriceCatalog(models={"m": price})
    assert (catalog.cost("m", a) + catalog.cost("m", b)).total == catalog.cost("m", a + b).total


@given(usages(), st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro", "o3"]))
def test_cost_parts_are_non_negative_and_add_up(u: Usage, model: str) -> None:
    cost = PriceCatalog.default().cost(model, u)
    parts = (cost.input, cost.cache_read, cost.cache_write, cost.output, cost.reasoning)
    assert all(p is not None and p >= 0 for p in parts)
    assert cost.total == sum(parts)  # type: ignore[arg-type]


@given(usages(), st.integers(1, 10_000))
def test_more_output_never_costs_less(u: Usage, extra: int) -> None:
    catalog = PriceCatalog.default()
    more = Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens + extra,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        reasoning_tokens=u.reasoning_tokens,
    )
    for model in ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro"):
        assert catalog.cost(model, more).total > catalog.cost(model, u).total  # type: ignore[operator]


@given(usages(), usages())
def test_usage_addition_is_commutative_and_field_wise(a: Usage, b: Usage) -> None:
    assert a + b == b + a
    assert (a + b).input_tokens == a.input_tokens + b.input_tokens
    assert (a + b).cache_write_1h_tokens == a.cache_write_1h_tokens + b.cache_write_1h_tokens


def test_money_reads_as_people_read_it() -> None:
    from faremeter.cost import format_usd, tidy

    assert (
        tidy(Decimal("0.0100000")) == Decimal("0.01") and str(tidy(Decimal("0.0100000"))) == "0.01"
    )
    assert str(tidy(Decimal("100.000"))) == "100"
    assert format_usd(Decimal("0.0100000")) == "$0.01"
    assert format_usd(Decimal("0.00325")) == "$0.00325"
    assert format_usd(Decimal("1234")) == "$1,234.00"
    assert format_usd(None) == "unpriced"
    assert format_usd(Decimal(0)) == "$0"


def test_trace_tree_prints_as_a_tree() -> None:
    from faremeter import Usage
    from faremeter.testing import make_test_meter

    m = make_test_meter(tools={"web_search": "0.005"})
    with m.trace("research") as t:
        m.record_llm("gpt-4o", Usage(input_tokens=800, output_tokens=300), step="plan")
        m.record_tool("web_search")
    text = str(t.tree())
    assert text.splitlines()[1].startswith("research [agent]  $0.01")
    assert "├─ gpt-4o [llm] step=plan  $0.005" in text
    assert "└─ web_search [tool]  $0.005" in text
    assert repr(t.cost) == "Decimal('0.01')"


def test_usage_totals_is_the_constructor_for_two_totals() -> None:
    from faremeter.errors import InvalidUsageError
    from faremeter.usage import MAX_TOKENS_PER_CALL, Usage, usage_totals

    for i, o, src in [(0, 0, "reported"), (1200, 150, "reported"), (5, 7, "estimated")]:
        fast = usage_totals(i, o, src)  # type: ignore[arg-type]
        assert fast == Usage(input_tokens=i, output_tokens=o, source=src)  # type: ignore[arg-type]
        assert hash(fast) == hash(Usage(input_tokens=i, output_tokens=o, source=src))  # type: ignore[arg-type]
    for bad in [(-1, 0), (0, MAX_TOKENS_PER_CALL + 1)]:
        with pytest.raises(InvalidUsageError):
            usage_totals(*bad)
    with pytest.raises(InvalidUsageError):
        usage_totals(1, 1, "guessed")  # type: ignore[arg-type]
