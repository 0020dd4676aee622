"""Prompt-prefix stamping: every adapter's long calls feed the ``prompt_cache`` suggestion."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest

from faremeter import SpanKind, SpanRecord, Usage
from faremeter.analytics import suggest
from faremeter.calls import CallTracker
from faremeter.meter import Meter
from faremeter.prompt_prefix import (
    HASH_ATTRIBUTE,
    PREFIX_CHARS,
    PROMPT_CACHE_MIN_TOKENS,
    TOKENS_ATTRIBUTE,
    prompt_prefix_attributes,
    prompt_prefix_hash,
    stamp_prompt_prefix,
)
from faremeter.testing import make_test_meter, recorded_spans

MODEL = "gpt-4o"
SYSTEM_A = "You are a careful research assistant. " * 150  # ~5,700 characters
SYSTEM_B = "You are a terse support agent for Acme. " * 150
LONG = Usage(input_tokens=1500, output_tokens=20)
SHORT = Usage(input_tokens=200, output_tokens=20)


@pytest.fixture
def meter() -> Meter:
    return make_test_meter()


class LazyPrompt:
    """A framework's lazy prompt: counts how often the core forces it."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.forced = 0

    def __call__(self) -> list[str]:
        self.forced += 1
        return self.texts


def run_call(
    calls: CallTracker,
    key: str,
    prompt: Sequence[str] | Callable[[], Sequence[str]],
    usage: Usage | None,
    *,
    cached: bool = False,
) -> None:
    calls.start(key, name=MODEL, model=MODEL, prompt=prompt, attributes={"call": key})
    calls.end(key, usage=usage, completion="a short answer", cached=cached)


def by_name(meter: Meter) -> dict[str, SpanRecord]:
    return {str(s.attributes["call"]): s for s in recorded_spans(meter)}


def test_long_calls_sharing_a_prefix_share_a_hash_and_others_do_not(meter: Meter) -> None:
    calls = CallTracker(meter)
    prompts = {
        "a1": LazyPrompt([SYSTEM_A, "What is the capital of France?"]),
        "a2": LazyPrompt([SYSTEM_A, "Summarise the attached report."]),
        "b1": LazyPrompt([SYSTEM_B, "What is the capital of France?"]),
        "small": LazyPrompt(["hi"]),
    }
    for key, prompt in prompts.items():
        run_call(calls, key, prompt, SHORT if key == "small" else LONG)
    spans = by_name(meter)
    a1, a2, b1 = (spans[k].attributes for k in ("a1", "a2", "b1"))
    assert a1[HASH_ATTRIBUTE] == a2[HASH_ATTRIBUTE] != b1[HASH_ATTRIBUTE]
    assert a1[TOKENS_ATTRIBUTE] == b1[TOKENS_ATTRIBUTE] == PROMPT_CACHE_MIN_TOKENS == 1024
    digest = a1[HASH_ATTRIBUTE]
    assert isinstance(digest, str) and len(digest) == 16  # blake2b-64
    small = spans["small"].attributes
    assert HASH_ATTRIBUTE not in small and TOKENS_ATTRIBUTE not in small
    assert prompts["small"].forced == 0, "a small call must not read its prompt"
    assert prompts["a1"].forced == 1


def test_estimated_usage_counts_like_reported(meter: Meter) -> None:
    calls = CallTracker(meter)
    run_call(calls, "estimated", [SYSTEM_A, "question"], None)  # no usage reported
    span = by_name(meter)["estimated"]
    assert span.usage is not None and span.usage.source == "estimated"
    assert span.usage.input_tokens >= PROMPT_CACHE_MIN_TOKENS
    assert span.attributes[HASH_ATTRIBUTE] == prompt_prefix_hash([SYSTEM_A, "other question"])


def test_no_stamp_for_hits_cache_reads_tools_or_unreadable_prompts(meter: Meter) -> None:
    calls = CallTracker(meter)
    run_call(calls, "hit", [SYSTEM_A], LONG, cached=True)  # faremeter's cache: no request
    read = Usage(input_tokens=1500, output_tokens=20, cache_read_tokens=1024)
    run_call(calls, "read", [SYSTEM_A], read)  # the provider already cached it

    def broken() -> list[str]:
        raise RuntimeError("framework payload gone")

    run_call(calls, "broken", broken, LONG)
    calls.start("tool", name="web_search", kind=SpanKind.TOOL, prompt=[SYSTEM_A],
                attributes={"call": "tool"})  # fmt: skip
    calls.end("tool", usage=LONG)
    spans = by_name(meter)
    assert set(spans) == {"hit", "read", "broken", "tool"}  # every call still recorded
    assert all(HASH_ATTRIBUTE not in s.attributes for s in spans.values())


def test_prefix_is_the_first_1024_tokens_worth_of_text_in_message_order() -> None:
    head = "x" * PREFIX_CHARS
    assert prompt_prefix_hash([head + "tail one"]) == prompt_prefix_hash([head, "tail two"])
    assert prompt_prefix_hash(["ab", "c"]) != prompt_prefix_hash(["a", "bc"])
    assert prompt_prefix_hash(["user", "system"]) != prompt_prefix_hash(["system", "user"])
    assert prompt_prefix_hash("one text") == prompt_prefix_hash(["one text"])
    assert prompt_prefix_hash(lambda: ["one text"]) == prompt_prefix_hash(["one text"])
    assert prompt_prefix_hash(None) is None and prompt_prefix_hash(["", ""]) is None


def test_manual_attributes_feed_the_prompt_cache_suggestion(meter: Meter) -> None:
    assert prompt_prefix_attributes([SYSTEM_A], SHORT) == {}
    for question in ("q1", "q2", "q3"):
        meter.record_llm(MODEL, LONG, **prompt_prefix_attributes([SYSTEM_A, question], LONG))
    meter.flush()
    (s,) = [s for s in suggest(meter.ledger, meter.catalog) if s.kind == "prompt_cache"]
    rates = meter.catalog.get(MODEL).rates_for(1024)
    per_call = 1024 * (rates["input"] - rates["cache_read"]) / Decimal(1_000_000)
    assert s.subject == MODEL and s.impact == 2 * per_call > 0
    assert s.evidence["repeated_calls"] == "2"


def test_stamp_called_directly_keeps_its_size_and_cache_gates() -> None:
    long_prompt = ["You are a meticulous research assistant. " * 200]
    for usage in (
        Usage(input_tokens=1023, output_tokens=10),  # below the provider's minimum
        Usage(input_tokens=2000, output_tokens=10, cache_read_tokens=1024),  # already cached
    ):
        attrs: dict[str, object] = {}
        stamp_prompt_prefix(SpanKind.LLM, attrs, long_prompt, usage)
        assert attrs == {}
    attrs = {}
    stamp_prompt_prefix(
        SpanKind.LLM, attrs, long_prompt, Usage(input_tokens=2000, output_tokens=10)
    )
    assert attrs[HASH_ATTRIBUTE] == prompt_prefix_hash(long_prompt)
