"""ResponseCache: exact-match keys, the determinism rule, saved on hits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from faremeter import Meter, SpanKind, SpanStatus, Usage
from faremeter.caching import MemoryBackend, ResponseCache
from faremeter.caching.response_cache import is_deterministic
from faremeter.testing import make_test_meter, recorded_spans

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def meter() -> Meter:
    return make_test_meter()


def request(**kw: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0, **kw}


def test_hit_records_cached_llm_span_with_saved_cost(meter: Meter) -> None:
    cache = ResponseCache(meter=meter)
    assert cache.lookup(request()) is None
    usage = Usage(input_tokens=1_000, output_tokens=100)
    cost = meter.price("gpt-4o", usage)
    assert cache.store(request(), {"content": "hello"}, usage=usage, cost=cost)
    hit = cache.lookup(request(stream=True, timeout=3, user="u1"))  # transport params ignored
    assert hit is not None and hit.response == {"content": "hello"}
    assert hit.saved == cost.total == Decimal("0.0035")
    (span,) = recorded_spans(meter)
    assert (span.kind, span.status, span.model) == (SpanKind.LLM, SpanStatus.CACHED, "gpt-4o")
    assert span.cost.total == 0 and span.saved == Decimal("0.0035")


def test_saved_falls_back_to_the_price_of_stored_usage(meter: Meter) -> None:
    cache = ResponseCache(meter=meter)
    cache.store(request(), "hi", usage=Usage(input_tokens=1_000_000, output_tokens=0))
    hit = cache.lookup(request(), record=False)
    assert hit is not None and hit.saved == Decimal("2.5")
    assert recorded_spans(meter) == []  # record=False: the caller ends its own span


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.0, "seed": 7},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"response_format": {"type": "json_object"}},
        {"max_tokens": 10},
        {"stop": ["\n"]},
        {"model": "gpt-4o-mini"},
        {"messages": [*MESSAGES[:1], {"role": "user", "content": "hi!"}]},
        {"messages": [{"role": "system", "content": "be long"}, MESSAGES[1]]},
        {"brand_new_param": 1},
    ],
)
def test_everything_that_changes_the_output_changes_the_key(change: dict[str, Any]) -> None:
    cache = ResponseCache()
    assert cache.key(request()) != cache.key(request(**change))


def test_key_ignores_param_order_and_equal_numbers() -> None:
    cache = ResponseCache()
    a = {"temperature": 0, "model": "gpt-4o", "messages": MESSAGES, "top_p": 1}
    b = {"model": "gpt-4o", "top_p": 1.0, "messages": MESSAGES, "temperature": 0.0}
    assert cache.key(a) == cache.key(b)


def test_determinism_rule() -> None:
    assert is_deterministic({"temperature": 0})
    assert is_deterministic({"temperature": 0.0, "n": 1})
    assert is_deterministic({"top_k": 1, "temperature": 0.7})
    assert not is_deterministic({})  # provider default temperature samples
    assert not is_deterministic({"temperature": 0.2})
    assert not is_deterministic({"temperature": 0, "n": 3})
    assert not is_deterministic({"top_k": True})

    cache = ResponseCache()
    sampled = {"model": "gpt-4o", "messages": MESSAGES}
    assert not cache.store(sampled, "x")
    assert cache.lookup(sampled) is None
    everything = ResponseCache(deterministic_only=False)
    assert everything.store(sampled, "x")
    assert everything.lookup(sampled, record=False) is not None


def test_ttl_and_stale_last_resort(meter: Meter) -> None:
    clock = Clock()
    cache = ResponseCache(
        meter=meter, ttl=60, keep_stale=600, clock=clock, backend=MemoryBackend(timer=clock)
    )
    cache.store(request(), "answer", cost=Decimal("0.01"))
    clock.now += 61
    assert cache.lookup(request()) is None
    stale = cache.lookup(request(), allow_stale=True)
    assert stale is not None and stale.stale and stale.response == "answer"
    clock.now += 600
    assert cache.lookup(request(), allow_stale=True) is None


def test_request_without_model_is_not_cached() -> None:
    cache = ResponseCache()
    assert not cache.store({"messages": MESSAGES, "temperature": 0}, "x")
    with pytest.raises(ValueError, match="model"):
        cache.key({"messages": MESSAGES})


def test_last_resort_for_a_fallback_chain(meter: Meter) -> None:
    from faremeter.fallback import FallbackChain

    clock = Clock()
    cache = ResponseCache(
        meter=meter, ttl=60, keep_stale=3600, clock=clock, backend=MemoryBackend(timer=clock)
    )
    cache.store(request(), {"content": "old but useful"}, cost=Decimal("0.01"))
    clock.now += 120  # expired, still kept for the last resort

    def call(model: str) -> Any:
        raise ConnectionError(f"{model} unreachable")

    chain = FallbackChain(
        ["gpt-4o", "gpt-4o-mini"],
        meter=meter,
        last_resort=cache.last_resort(request()),
        sleep=lambda _s: None,
    )
    assert chain.call(call) == {"content": "old but useful"}
    cached = [s for s in recorded_spans(meter) if s.status is SpanStatus.CACHED]
    assert len(cached) == 1  # the chain's call span; the cache added none
    assert cache.last_resort(request(temperature=0, seed=1))() is None
