"""Pre-call cost estimates: counted prompts, real output caps, full catalog rules; fitting."""

from __future__ import annotations

from decimal import Decimal

import pytest

from faremeter.budgets import estimate_call_cost, fit_max_tokens
from faremeter.budgets.estimate import (
    DEFAULT_OUTPUT_CAP,
    REPLY_PRIMING_TOKENS,
    count_input_tokens,
)
from faremeter.estimate import MESSAGE_OVERHEAD_TOKENS, count_tokens
from faremeter.pricing import ModelPrice, PriceCatalog, PriceTier

M = Decimal(1_000_000)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog.default().with_overrides(
        models={
            "tiered": ModelPrice(
                input_per_mtok=1,
                output_per_mtok=2,
                tiers=[PriceTier(above_tokens=100, input_per_mtok=10, output_per_mtok=20)],
            ),
            "cachey": ModelPrice(input_per_mtok=1, output_per_mtok=1, cache_write_per_mtok=4),
            "thinker": ModelPrice(input_per_mtok=1, output_per_mtok=1, reasoning_per_mtok=3),
        }
    )


def test_prompt_counts_include_per_message_framing() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    total, cached = count_input_tokens("gpt-4o", messages)
    expected = (
        sum(count_tokens(str(m["content"]), "gpt-4o") + MESSAGE_OVERHEAD_TOKENS for m in messages)
        + REPLY_PRIMING_TOKENS
    )
    assert (total, cached) == (expected, 0)


def test_multipart_content_and_message_objects_are_counted() -> None:
    class Msg:
        content = "hello world"

    parts = [{"role": "user", "content": [{"type": "text", "text": "hello "}, {"text": "world"}]}]
    assert count_input_tokens("gpt-4o", parts) == count_input_tokens("gpt-4o", [Msg()])


def test_gpt4o_estimate_is_prompt_plus_max_tokens_at_catalog_rates(
    catalog: PriceCatalog,
) -> None:
    messages = [{"role": "user", "content": "hello world"}]
    n, _ = count_input_tokens("gpt-4o", messages)
    cost = estimate_call_cost(catalog, "gpt-4o", messages, 256)
    assert cost == (n * Decimal("2.5") + 256 * Decimal(10)) / M


def test_output_is_bounded_by_the_models_real_cap(catalog: PriceCatalog) -> None:
    capped = estimate_call_cost(catalog, "gpt-4o", "hi", 1_000_000)
    published = estimate_call_cost(catalog, "gpt-4o", "hi", 16_384)
    assert capped == published


def test_configured_output_cap_replaces_the_published_maximum(catalog: PriceCatalog) -> None:
    small = estimate_call_cost(catalog, "gpt-4o", "hi", None, output_cap=512)
    explicit = estimate_call_cost(catalog, "gpt-4o", "hi", 512)
    assert small == explicit
    unknown_cap = estimate_call_cost(catalog, "tiered", "hi", None)
    assert unknown_cap == estimate_call_cost(catalog, "tiered", "hi", DEFAULT_OUTPUT_CAP)


def test_long_context_tier_reprices_the_whole_request(catalog: PriceCatalog) -> None:
    short = estimate_call_cost(catalog, "tiered", "word " * 10, 10)
    long = estimate_call_cost(catalog, "tiered", "word " * 400, 10)
    assert short is not None and long is not None
    n_long, _ = count_input_tokens("tiered", "word " * 400)
    assert n_long > 100
    assert long == (n_long * 10 + 10 * 20) / M


def test_cache_control_messages_are_priced_as_cache_writes(catalog: PriceCatalog) -> None:
    plain = [{"role": "user", "content": "context " * 50}]
    marked = [{"role": "user", "content": "context " * 50, "cache_control": {"type": "ephemeral"}}]
    n, cached = count_input_tokens("cachey", marked)
    assert 0 < cached <= n
    a = estimate_call_cost(catalog, "cachey", plain, 0)
    b = estimate_call_cost(catalog, "cachey", marked, 0)
    assert a is not None and b is not None and b > a


def test_reasoning_rate_is_used_when_higher(catalog: PriceCatalog) -> None:
    cost = estimate_call_cost(catalog, "thinker", "x", 100)
    n, _ = count_input_tokens("thinker", "x")
    assert cost == (n * 1 + 100 * 3) / M


def test_heuristic_counts_are_padded_when_no_tokenizer_applies() -> None:
    text = "a" * 400
    n, _ = count_input_tokens("some-llama", text)
    assert n == 125  # 100 heuristic tokens + 25%


def test_unknown_model_is_unpriced_not_free(catalog: PriceCatalog) -> None:
    assert estimate_call_cost(catalog, "no-such-model-xyz", "hi", 10) is None


def test_bad_max_tokens_is_a_clear_error(catalog: PriceCatalog) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        estimate_call_cost(catalog, "gpt-4o", "hi", -1)


def test_fit_max_tokens_is_the_largest_cap_that_fits(catalog: PriceCatalog) -> None:
    available = Decimal("0.001")
    fitted = fit_max_tokens(catalog, "gpt-4o", 100, available)
    assert fitted is not None
    # 100 * 2.5e-6 = 0.00025 for the prompt; 0.00075 / 1e-5 = 75 tokens.
    assert fitted == 75
    assert (
        fit_max_tokens(catalog, "gpt-4o", 1_000, Decimal("0.001")) is None
    )  # prompt alone too big
    assert fit_max_tokens(catalog, "gpt-4o", 10, Decimal("1000")) == 16_384
