from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faremeter import InvalidUsageError, Usage
from faremeter.estimate import count_tokens, estimate_usage
from faremeter.normalize import parse_usage, safe_parse_usage


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(
            {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "prompt_tokens_details": {"cached_tokens": 40},
                "completion_tokens_details": {"reasoning_tokens": 5},
            },
            Usage(input_tokens=100, output_tokens=20, cache_read_tokens=40, reasoning_tokens=5),
            id="openai-chat",
        ),
        pytest.param(
            {
                "input_tokens": 100,
                "output_tokens": 20,
                "input_tokens_details": {"cached_tokens": 10},
                "output_tokens_details": {"reasoning_tokens": 7},
            },
            Usage(input_tokens=100, output_tokens=20, cache_read_tokens=10, reasoning_tokens=7),
            id="openai-responses",
        ),
        pytest.param(
            {
                "input_tokens": 100,
                "output_tokens": 20,
                "total_tokens": 120,
                "input_token_details": {"cache_read": 30, "cache_creation": 10},
                "output_token_details": {"reasoning": 4},
            },
            Usage(
                input_tokens=100,
                output_tokens=20,
                cache_read_tokens=30,
                cache_write_tokens=10,
                reasoning_tokens=4,
            ),
            id="langchain-usage-metadata",
        ),
        pytest.param(
            {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 50,
                "cache_creation": {"ephemeral_1h_input_tokens": 20},
            },
            Usage(
                input_tokens=160,
                output_tokens=5,
                cache_read_tokens=100,
                cache_write_tokens=50,
                cache_write_1h_tokens=20,
            ),
            id="anthropic-exclusive",
        ),
        pytest.param(
            {
                "usageMetadata": {
                    "promptTokenCount": 50,
                    "candidatesTokenCount": 10,
                    "thoughtsTokenCount": 5,
                    "cachedContentTokenCount": 20,
                }
            },
            Usage(input_tokens=50, output_tokens=15, cache_read_tokens=20, reasoning_tokens=5),
            id="gemini-thoughts-excluded-from-candidates",
        ),
        pytest.param(
            {"inputTokens": 30, "outputTokens": 3, "cacheReadInputTokens": 10},
            Usage(input_tokens=40, output_tokens=3, cache_read_tokens=10),
            id="bedrock",
        ),
        pytest.param(
            {"prompt_tokens": 8, "total_tokens": 8},
            Usage(input_tokens=8),
            id="embedding",
        ),
        pytest.param({"total_tokens": 12}, Usage(input_tokens=12), id="total-only"),
    ],
)
def test_provider_shapes(payload: dict[str, Any], expected: Usage) -> None:
    assert parse_usage(payload) == expected


def test_objects_and_missing() -> None:
    class Obj:
        def __init__(self) -> None:
            self.prompt_tokens = 3
            self.completion_tokens = 2

    assert parse_usage(Obj()) == Usage(input_tokens=3, output_tokens=2)
    assert parse_usage(None) is None
    assert parse_usage({}) is None
    assert parse_usage({"model": "x"}) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"prompt_tokens": -1},
        {"prompt_tokens": "ten"},
        {"prompt_tokens": 1.5},
        {"prompt_tokens": True},
        {"prompt_tokens": float("nan")},
        {"prompt_tokens": 10**12},
        {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 6}},
        {"completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 6}},
    ],
)
def test_bad_counts_rejected(payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidUsageError):
        parse_usage(payload)


def test_safe_parse_logs_once_per_place(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="faremeter"):
        for _ in range(3):
            assert safe_parse_usage({"prompt_tokens": -5}, where="test-place") is None
    assert sum("test-place" in r.getMessage() for r in caplog.records) == 1


_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)  # fmt: skip
_keys = st.sampled_from(
    ["prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "total_tokens",
     "cache_read_input_tokens", "cache_creation_input_tokens", "cached_tokens", "reasoning_tokens",
     "promptTokenCount", "candidatesTokenCount", "inputTokens", "usage", "prompt_tokens_details",
     "completion_tokens_details", "input_token_details", "cache_read", "reasoning"]
)  # fmt: skip
_payload = st.recursive(
    _scalar, lambda inner: st.dictionaries(_keys, inner, max_size=6) | st.lists(inner, max_size=3),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_payload)
def test_fuzzed_payloads_never_raise_from_safe_parse(payload: Any) -> None:
    result = safe_parse_usage(payload, where="fuzz")
    assert result is None or isinstance(result, Usage)


@settings(max_examples=400, deadline=None)
@given(_payload)
def test_parse_usage_raises_only_invalid_usage(payload: Any) -> None:
    with contextlib.suppress(InvalidUsageError):
        parse_usage(payload)


def test_estimates_are_marked_and_nonzero() -> None:
    usage = estimate_usage("claude-sonnet-4-5", ["You are helpful.", "Summarise this."], "Done.")
    assert usage.source == "estimated"
    assert usage.input_tokens > 0 and usage.output_tokens > 0


def test_heuristic_counts_cjk_per_character() -> None:
    assert count_tokens("abcdefgh", "some-unknown-model") == 2
    assert count_tokens("世界你好", "some-unknown-model") == 4
    assert count_tokens("", "gpt-4o") == 0


def test_openai_family_uses_a_real_tokenizer_when_available() -> None:
    text = "The quick brown fox jumps over the lazy dog."
    # tiktoken's o200k_base gives 10 tokens; the heuristic would give 11.
    n = count_tokens(text, "gpt-4o")
    assert n in (10, 11)
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        pytest.skip("tiktoken not installed")
    from faremeter.estimate import _bundled_tiktoken_cache  # pyright: ignore[reportPrivateUsage]

    if _bundled_tiktoken_cache() is None:
        pytest.skip("no bundled tiktoken encodings and no network")
    assert n == 10


def _outcome(payload: Any) -> Usage | str | None:
    try:
        return parse_usage(payload)
    except InvalidUsageError:
        return "invalid"


_small_count = st.one_of(st.none(), st.integers(min_value=0, max_value=3), st.booleans())
_details = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=2),
    st.dictionaries(
        st.sampled_from(["cached_tokens", "reasoning_tokens", "audio_tokens", "cache_read",
                         "accepted_prediction_tokens", "image_tokens"]),
        _small_count, max_size=4,
    ),
)  # fmt: skip
_openai_shaped = st.fixed_dictionaries(
    {"prompt_tokens": st.integers(min_value=0, max_value=50),
     "completion_tokens": st.integers(min_value=0, max_value=50)},
    optional={"total_tokens": st.integers(min_value=0, max_value=100),
              "prompt_tokens_details": _details, "completion_tokens_details": _details,
              "input_token_details": _details, "output_tokens_details": _details},
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_openai_shaped)
def test_totals_with_detail_objects_parse_as_the_full_parser_does(payload: dict[str, Any]) -> None:
    # A plain dict takes the shortcut for all-zero details; the same payload
    # behind a read-only mapping takes the full parse. They must agree.
    from types import MappingProxyType

    assert _outcome(payload) == _outcome(MappingProxyType(payload))
