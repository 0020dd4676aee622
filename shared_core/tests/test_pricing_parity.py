"""faremeter's catalog against LiteLLM's own cost calculator, model by model.

The snapshot is generated from the price map bundled with the installed litellm,
so for every priced model ``catalog.cost(model, usage).total`` must equal
``sum(litellm.cost_per_token(...))`` within 1e-12 USD — for plain usage, cache
reads, 5-minute and 1-hour cache writes, reasoning tokens and long-context
usage (above, at and far above each threshold).

Where faremeter deliberately differs, the case is excluded *here, by name, with
the reason*, and the same reason is written in docs/pricing.md ("Differences
from LiteLLM"). Exclusions are counted so they cannot silently grow.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

# The oracle must read the same price map the snapshot was generated from, not
# whatever LiteLLM would fetch from GitHub at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

litellm = pytest.importorskip("litellm")

from litellm._internal_context import pinned_billing_time  # noqa: E402
from litellm.types.utils import (  # noqa: E402
    CacheCreationTokenDetails,
    CompletionTokensDetailsWrapper,
    PromptTokensDetailsWrapper,
)
from litellm.types.utils import Usage as LiteLLMUsage  # noqa: E402

from faremeter.pricing import PriceCatalog  # noqa: E402
from faremeter.pricing.snapshot import load_snapshot  # noqa: E402
from faremeter.usage import Usage  # noqa: E402

TOLERANCE = Decimal("1e-12")

# Off-peak pricing (DeepSeek, Tencent) depends on the wall clock; compare at a
# weekday peak hour, where LiteLLM bills the standard rates faremeter bills.
PEAK = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)  # Wednesday 08:00 UTC / 16:00 CST
OFF_PEAK = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)  # Saturday

SCENARIOS: dict[str, Usage] = {
    "plain": Usage(input_tokens=1_200, output_tokens=300),
    "cache_read": Usage(input_tokens=5_000, output_tokens=200, cache_read_tokens=3_000),
    "cache_write_5m": Usage(input_tokens=5_000, output_tokens=200, cache_write_tokens=2_000),
    "cache_write_1h": Usage(
        input_tokens=5_000, output_tokens=200, cache_write_tokens=2_000, cache_write_1h_tokens=1_500
    ),
    "reasoning": Usage(input_tokens=1_000, output_tokens=900, reasoning_tokens=600),
    "at_128k": Usage(input_tokens=128_000, output_tokens=500, cache_read_tokens=20_000),
    "at_200k": Usage(input_tokens=200_000, output_tokens=500, cache_read_tokens=20_000),
    "above_200k": Usage(
        input_tokens=200_001, output_tokens=700, cache_read_tokens=50_000, reasoning_tokens=100
    ),
    "above_272k_all_kinds": Usage(
        input_tokens=300_001,
        output_tokens=1_000,
        cache_read_tokens=50_000,
        cache_write_tokens=10_000,
        cache_write_1h_tokens=4_000,
        reasoning_tokens=200,
    ),
    "above_512k": Usage(input_tokens=600_000, output_tokens=1_000, cache_read_tokens=100_000),
}
# Threshold-boundary cases only say something about models with tiers.
TIER_ONLY_SCENARIOS = frozenset({"at_128k", "at_200k", "above_200k", "above_512k"})
CACHE_SCENARIOS = frozenset(
    name for name, u in SCENARIOS.items() if u.cache_read_tokens or u.cache_write_tokens
)

# ---- Deliberate differences and untestable cases (see docs/pricing.md) -------

# provider -> (scenarios excluded, reason)
EXCLUDED_PROVIDERS: dict[str, tuple[frozenset[str], str]] = {
    "perplexity": (
        CACHE_SCENARIOS,
        "LiteLLM's perplexity cost function bills every prompt token, cached or"
        " written, at the full input rate and ignores the map's cache rates;"
        " faremeter bills cache reads/writes at their rates (LiteLLM #31714 class of bug)",
    ),
    "github_copilot": (
        frozenset(SCENARIOS),
        "LiteLLM resolves the github_copilot provider by fetching an OAuth token"
        " over the network before pricing; not comparable offline",
    ),
}
# model id -> reason
EXCLUDED_MODELS: dict[str, str] = {
    "gemini-exp-1206": "LiteLLM prices it $0 (its gemini lookup lands on a zero-priced alias);"
    " faremeter uses the map's own rates",
}
MIN_COMPARED_MODELS = 3_400


def _litellm_usage(u: Usage) -> LiteLLMUsage:
    details = None
    if u.cache_read_tokens or u.cache_write_tokens:
        kwargs: dict[str, Any] = {"cached_tokens": u.cache_read_tokens}
        if u.cache_write_tokens:
            kwargs["cache_creation_tokens"] = u.cache_write_tokens
            kwargs["cache_creation_token_details"] = CacheCreationTokenDetails(
                ephemeral_5m_input_tokens=u.cache_write_tokens - u.cache_write_1h_tokens,
                ephemeral_1h_input_tokens=u.cache_write_1h_tokens,
            )
        details = PromptTokensDetailsWrapper(**kwargs)
    completion = (
        CompletionTokensDetailsWrapper(reasoning_tokens=u.reasoning_tokens)
        if u.reasoning_tokens
        else None
    )
    return LiteLLMUsage(
        prompt_tokens=u.input_tokens,
        completion_tokens=u.output_tokens,
        total_tokens=u.input_tokens + u.output_tokens,
        prompt_tokens_details=details,
        completion_tokens_details=completion,
    )


def _litellm_total(
    model_id: str, provider: str | None, u: Usage, at: dt.datetime
) -> tuple[Decimal, str]:
    """LiteLLM's price and the map key it priced.

    By the map key when LiteLLM can infer the provider from it; else by bare
    name + ``custom_llm_provider`` (as a router would call it), in which case
    LiteLLM prefers the ``provider/name`` entry when the map has one.
    """
    usage = _litellm_usage(u)
    with pinned_billing_time(at):
        try:
            prompt, completion = litellm.cost_per_token(model=model_id, usage_object=usage)
            priced_as = model_id
        except Exception:
            if provider is None:
                raise
            bare = model_id.removeprefix(f"{provider}/")
            prompt, completion = litellm.cost_per_token(
                model=bare, custom_llm_provider=provider, usage_object=_litellm_usage(u)
            )
            prefixed = f"{provider}/{bare}"
            priced_as = prefixed if prefixed in load_snapshot().models else model_id
    return Decimal(repr(prompt + completion)), priced_as


def _cases() -> Iterator[tuple[str, dict[str, Any]]]:
    yield from load_snapshot().models.items()


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    from importlib.metadata import version

    if load_snapshot().source["version"] != version("litellm"):
        pytest.skip(
            "snapshot was generated from another litellm; run scripts/generate_price_snapshot.py"
        )
    return PriceCatalog.default()


def test_snapshot_matches_installed_litellm() -> None:
    from importlib.metadata import version

    assert load_snapshot().source == {
        "name": "litellm",
        "version": version("litellm"),
        "file": "model_prices_and_context_window_backup.json",
    }


def test_every_priced_model_matches_litellm(catalog: PriceCatalog) -> None:
    mismatches: list[str] = []
    compared: set[str] = set()
    excluded: dict[str, str] = {}
    for model_id, entry in _cases():
        provider = entry.get("provider")
        if model_id in EXCLUDED_MODELS:
            excluded[model_id] = EXCLUDED_MODELS[model_id]
            continue
        skipped, reason = EXCLUDED_PROVIDERS.get(provider or "", (frozenset[str](), ""))
        has_tiers = "tiers" in entry
        for name, usage in SCENARIOS.items():
            if name in TIER_ONLY_SCENARIOS and not has_tiers:
                continue
            if name in skipped:
                excluded[f"{model_id}:{name}"] = reason
                continue
            theirs, priced_as = _litellm_total(model_id, provider, usage, PEAK)
            ours = catalog.cost(priced_as, usage).total
            assert ours is not None
            if abs(ours - theirs) > TOLERANCE:
                mismatches.append(f"{model_id} [{name}]: faremeter {ours} vs litellm {theirs}")
            compared.add(model_id)
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])
    assert len(compared) >= MIN_COMPARED_MODELS
    # Exclusions stay what the docs say they are: a handful of named cases.
    assert len({k.split(":")[0] for k in excluded}) < 150, sorted(excluded)[:20]


def test_off_peak_pricing_is_a_documented_difference(catalog: PriceCatalog) -> None:
    """LiteLLM bills DeepSeek's off-peak discount by wall clock; faremeter bills list price."""
    off_peak_models = [m for m in ("deepseek/deepseek-v4-pro",) if m in load_snapshot().models]
    assert off_peak_models, "expected an off-peak-priced model in the snapshot"
    usage = SCENARIOS["plain"]
    for model_id in off_peak_models:
        ours = catalog.cost(model_id, usage).total
        assert ours is not None
        assert abs(ours - _litellm_total(model_id, "deepseek", usage, PEAK)[0]) <= TOLERANCE
        assert _litellm_total(model_id, "deepseek", usage, OFF_PEAK)[0] < ours


def test_litellm_bills_perplexity_cache_reads_at_full_rate(catalog: PriceCatalog) -> None:
    """The excluded perplexity case is a real LiteLLM difference, not a faremeter gap."""
    model_id = next(
        m
        for m, e in load_snapshot().models.items()
        if e.get("provider") == "perplexity" and "cache_read" in e
    )
    usage = SCENARIOS["cache_read"]
    price = catalog.get(model_id)
    ours = catalog.cost(model_id, usage)
    assert ours.cache_read == 3_000 * price.cache_read_per_mtok.scaleb(-6)  # type: ignore[union-attr]
    theirs, _ = _litellm_total(model_id, "perplexity", usage, PEAK)
    full_rate = 5_000 * price.input_per_mtok.scaleb(-6) + 200 * price.output_per_mtok.scaleb(-6)
    assert abs(theirs - full_rate) <= TOLERANCE  # cached tokens at the full input rate
    assert ours.total is not None and ours.total < theirs
