"""PriceCatalog: resolution, rates, tiers, batch, effective dates, tools, CLI."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from faremeter.cost import Cost
from faremeter.errors import UnknownModelError
from faremeter.pricing import OVERRIDE_VERSION, ModelPrice, PriceCatalog, PriceTier, ToolPrice
from faremeter.usage import Usage

M = Decimal("0.000001")  # one dollar per million tokens, per token


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog.default()


# ---------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("  gpt-4o ", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),  # a priced snapshot keeps its own price
        ("openai/gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("gpt-4o-2031-01-01", "gpt-4o"),  # unknown snapshot -> its family
        ("gpt-4o-20310101", "gpt-4o"),
        ("gpt-4o@20310101", "gpt-4o"),
        ("gpt-4-0613", "gpt-4-0613"),
        ("gpt-4o-1231", "gpt-4o"),  # -MMDD
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
        ("claude-sonnet-4-5-20991231", "claude-sonnet-4-5"),
        ("gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro"),  # LiteLLM's own prefixed key
        ("vertex_ai/claude-3-5-sonnet@20240620", "vertex_ai/claude-3-5-sonnet@20240620"),
        ("claude-3-5-sonnet@20240620", "vertex_ai/claude-3-5-sonnet@20240620"),  # unique tail
        ("someproxy/openai/gpt-4o", "gpt-4o"),  # every leading prefix is stripped
    ],
)
def test_resolution(catalog: PriceCatalog, name: str, expected: str) -> None:
    assert catalog.resolve(name) == expected
    assert catalog.cost(name, Usage(input_tokens=10, output_tokens=1)).model == expected


def test_unknown_model_suggests_close_ids(catalog: PriceCatalog) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.cost("gpt-4oo", Usage(input_tokens=1))
    assert info.value.model == "gpt-4oo"
    assert info.value.suggestions[0] == "gpt-4o"
    assert "did you mean 'gpt-4o'" in str(info.value)
    with pytest.raises(UnknownModelError) as info:
        catalog.resolve("anthropic/claude-sonet-4-5")
    assert "claude-sonnet-4-5" in info.value.suggestions


def test_unknown_model_is_never_priced_at_zero(catalog: PriceCatalog) -> None:
    with pytest.raises(UnknownModelError):
        catalog.cost("no-such-model-anywhere", Usage(input_tokens=1))
    assert "no-such-model-anywhere" not in catalog
    assert "gpt-4o" in catalog


def test_aliases_resolve_to_priced_models(catalog: PriceCatalog) -> None:
    custom = catalog.with_overrides(
        aliases={"azure/prod-gpt4o": "gpt-4o", "cheap": "azure/prod-gpt4o"}
    )
    assert custom.resolve("azure/prod-gpt4o") == "gpt-4o"
    assert custom.resolve("AZURE/Prod-GPT4o") == "gpt-4o"
    assert custom.resolve("cheap") == "gpt-4o"  # alias of an alias
    usage = Usage(input_tokens=1_000, output_tokens=100)
    assert custom.cost("azure/prod-gpt4o", usage) == catalog.cost("gpt-4o", usage)
    with pytest.raises(UnknownModelError):
        catalog.resolve("azure/prod-gpt4o")  # the original catalog is unchanged


def test_alias_to_unknown_model_fails_when_added(catalog: PriceCatalog) -> None:
    with pytest.raises(UnknownModelError, match="gpt-4oo"):
        catalog.with_overrides(aliases={"prod": "gpt-4oo"})


def test_resolution_is_cached(catalog: PriceCatalog) -> None:
    custom = catalog.with_overrides()
    custom.resolve("openai/gpt-4o-2031-01-01")
    assert custom._resolved["openai/gpt-4o-2031-01-01"] == "gpt-4o"  # pyright: ignore[reportPrivateUsage]
    custom.cost("openai/gpt-4o-2031-01-01", Usage(input_tokens=1))
    assert "openai/gpt-4o-2031-01-01" in custom._hot  # pyright: ignore[reportPrivateUsage]


# --------------------------------------------------------------------- rates


def test_cache_reads_bill_at_the_cache_read_rate(catalog: PriceCatalog) -> None:
    cost = catalog.cost(
        "gpt-4o", Usage(input_tokens=10_000, output_tokens=0, cache_read_tokens=8_000)
    )
    assert cost.input == 2_000 * Decimal("2.5") * M
    assert cost.cache_read == 8_000 * Decimal("1.25") * M  # not free, not the full $2.50


def test_model_without_cache_price_bills_cached_tokens_as_input() -> None:
    catalog = PriceCatalog(models={"m": ModelPrice(input_per_mtok=2, output_per_mtok=8)})
    cost = catalog.cost(
        "m", Usage(input_tokens=1_000, cache_read_tokens=400, cache_write_tokens=100)
    )
    assert cost.input == 500 * 2 * M
    assert cost.cache_read == 400 * 2 * M
    assert cost.cache_write == 100 * 2 * M


def test_five_minute_and_one_hour_cache_writes(catalog: PriceCatalog) -> None:
    usage = Usage(
        input_tokens=10_000,
        output_tokens=100,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=1_000,
    )
    cost = catalog.cost("claude-sonnet-4-5", usage)
    assert cost.cache_write == 2_000 * Decimal("3.75") * M + 1_000 * 6 * M
    assert cost.input == 7_000 * 3 * M


def test_reasoning_bills_at_reasoning_rate_else_output_rate() -> None:
    catalog = PriceCatalog(
        models={
            "with": ModelPrice(input_per_mtok=1, output_per_mtok=4, reasoning_per_mtok=10),
            "without": ModelPrice(input_per_mtok=1, output_per_mtok=4),
        }
    )
    usage = Usage(input_tokens=0, output_tokens=1_000, reasoning_tokens=600)
    with_rate = catalog.cost("with", usage)
    assert with_rate.output == 400 * 4 * M and with_rate.reasoning == 600 * 10 * M
    without = catalog.cost("without", usage)
    assert without.output == 400 * 4 * M and without.reasoning == 600 * 4 * M


def test_long_context_tier_reprices_the_whole_request_above_a_strict_threshold(
    catalog: PriceCatalog,
) -> None:
    at = catalog.cost("gemini-2.5-pro", Usage(input_tokens=200_000, output_tokens=1_000))
    above = catalog.cost("gemini-2.5-pro", Usage(input_tokens=200_001, output_tokens=1_000))
    assert at.input == 200_000 * Decimal("1.25") * M
    assert at.output == 1_000 * 10 * M
    assert above.input == 200_001 * Decimal("2.5") * M  # every token, not only the excess
    assert above.output == 1_000 * 15 * M


def test_inclusive_threshold_for_xai(catalog: PriceCatalog) -> None:
    price = catalog.get("xai/grok-4.20")
    assert price.tiers[0].inclusive
    at = catalog.cost("xai/grok-4.20", Usage(input_tokens=200_000))
    below = catalog.cost("xai/grok-4.20", Usage(input_tokens=199_999))
    assert at.input == 200_000 * Decimal("2.5") * M
    assert below.input == 199_999 * Decimal("1.25") * M


def test_tiers_carry_unset_rates_from_the_tier_below() -> None:
    price = ModelPrice(
        input_per_mtok=1,
        output_per_mtok=2,
        tiers=[
            PriceTier(above_tokens=100, input_per_mtok=3, output_per_mtok=5),
            PriceTier(above_tokens=1_000, input_per_mtok=4),
        ],
    )
    catalog = PriceCatalog(models={"m": price})
    cost = catalog.cost("m", Usage(input_tokens=2_000, output_tokens=10))
    assert cost.input == 2_000 * 4 * M
    assert cost.output == 10 * 5 * M
    assert price.rates_for(50)["output"] == 2


def test_batch_rates(catalog: PriceCatalog) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert catalog.cost("gpt-4o", usage, batch=True).total == Decimal("1.25") + 5
    # A model without published batch rates gets the 50% batch discount.
    plain = PriceCatalog(models={"m": ModelPrice(input_per_mtok=2, output_per_mtok=8)})
    assert plain.cost("m", usage, batch=True).total == 1 + 4


def test_effective_dates_pick_the_price_in_force() -> None:
    old = ModelPrice(input_per_mtok=10, output_per_mtok=30)
    new = ModelPrice(input_per_mtok=5, output_per_mtok=15, effective_from=dt.date(2025, 6, 1))
    future = ModelPrice(
        input_per_mtok=1, output_per_mtok=1, effective_from=dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
    )
    catalog = PriceCatalog(models={"m": old}).with_overrides(models={"m": new})
    catalog = catalog.with_overrides(models={"m": future})
    usage = Usage(input_tokens=1_000_000)
    assert catalog.cost("m", usage, at=dt.datetime(2025, 5, 31, 23, 59, tzinfo=dt.UTC)).total == 10
    assert catalog.cost("m", usage, at=dt.datetime(2025, 6, 1)).total == 5  # naive = UTC
    assert catalog.cost("m", usage).total == 5  # now: the future price is not in force yet
    assert catalog.cost("m", usage, at=dt.datetime(3000, 1, 1, tzinfo=dt.UTC)).total == 1
    assert catalog.get("m", at=dt.datetime(2020, 1, 1)) == old
    only_future = PriceCatalog(models={"f": future})
    with pytest.raises(UnknownModelError, match="no price in force"):
        only_future.cost("f", usage)


def test_undated_override_replaces_snapshot_price(catalog: PriceCatalog) -> None:
    custom = catalog.with_overrides(
        models={"gpt-4o": ModelPrice(input_per_mtok=1, output_per_mtok=2)}
    )
    assert custom.get("gpt-4o").version == OVERRIDE_VERSION
    assert custom.cost("openai/gpt-4o", Usage(input_tokens=1_000_000)).total == 1
    assert catalog.get("gpt-4o").version == catalog.price_version
    assert catalog.price_version.startswith("litellm-1.")


def test_model_price_is_immutable_and_validated() -> None:
    price = ModelPrice(input_per_mtok=3, output_per_mtok=15)
    with pytest.raises(AttributeError):
        price.input_per_mtok = Decimal(1)  # type: ignore[misc]
    with pytest.raises(ValueError, match="input_per_mtok: must be >= 0"):
        ModelPrice(input_per_mtok=-1, output_per_mtok=1)
    with pytest.raises(ValueError, match="must be finite"):
        ModelPrice(input_per_mtok=float("nan"), output_per_mtok=1)
    with pytest.raises(TypeError):
        ModelPrice(3, 15)  # type: ignore[misc]  # keyword-only
    assert price == ModelPrice(input_per_mtok="3", output_per_mtok=Decimal(15))
    assert price.replace(output_per_mtok=20).output_per_mtok == 20
    assert "input_per_mtok=3" in repr(price)


def test_snapshot_entries_carry_router_metadata(catalog: PriceCatalog) -> None:
    price = catalog.get("gpt-4o")
    assert price.provider == "openai"
    assert price.mode == "chat"
    assert price.max_input_tokens == 128_000
    assert {"function_calling", "vision", "response_schema"} <= price.capabilities
    assert "reasoning" in catalog.get("o3").capabilities
    assert len(catalog.ids()) > 3_400


# --------------------------------------------------------------------- tools


def test_tool_prices_per_call_and_per_unit() -> None:
    catalog = PriceCatalog(
        tools={
            "web_search": ToolPrice.per_call("0.005"),
            "read_page": ToolPrice(price_per_call=Decimal("0.001")),
            "crm_api": ToolPrice.per_unit("0.10", unit="record"),
        }
    )
    assert catalog.tool_cost("web_search", calls=2).total == Decimal("0.010")
    assert catalog.tool_cost("read_page", 3).tool == Decimal("0.003")
    assert catalog.tool_cost("crm_api", units=7).total == Decimal("0.70")
    no_units = catalog.tool_cost("crm_api")
    assert not no_units.priced and "pass units=" in (no_units.unpriced_reason or "")


def test_unknown_tool_is_unpriced_not_zero(catalog: PriceCatalog) -> None:
    cost = catalog.tool_cost("web_search")  # no built-in tool prices
    assert cost.total is None
    assert cost.unpriced_reason == "no price configured for tool 'web_search'"
    assert (cost + Cost.of_tool("1")).total is None


def test_tool_price_validation() -> None:
    with pytest.raises(ValueError, match="price_per_call and/or price_per_unit"):
        ToolPrice()
    with pytest.raises(ValueError, match="must be >= 0"):
        ToolPrice.per_call(-1)
    with pytest.raises(ValueError, match="calls must be"):
        ToolPrice.per_call(1).cost("t", calls=-1)


# ----------------------------------------------------------------------- CLI


def test_cli_prices_prints_rates(capsys: pytest.CaptureFixture[str]) -> None:
    from faremeter.cli import main

    assert main(["prices", "openai/gpt-4o"]) == 0
    out = capsys.readouterr().out
    assert "gpt-4o" in out and "openai" in out
    assert "$2.5" in out and "$10" in out and "$1.25" in out
    assert "128,000" in out
    assert "litellm-" in out


def test_cli_prices_shows_tiers(capsys: pytest.CaptureFixture[str]) -> None:
    from faremeter.cli import main

    assert main(["prices", "gemini-2.5-pro"]) == 0
    assert "200,000" in capsys.readouterr().out


def test_cli_prices_unknown_model_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from faremeter.cli import main

    assert main(["prices", "gpt-4oo"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'gpt-4oo'" in err and "gpt-4o" in err


def test_cli_prices_with_config(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from faremeter.cli import main

    path = Path(str(tmp_path)) / "faremeter.toml"
    path.write_text('[prices."my-model"]\ninput_per_mtok = 3\noutput_per_mtok = 15\n')
    assert main(["prices", "my-model", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "my-model" in out and "$15" in out and "override" in out
