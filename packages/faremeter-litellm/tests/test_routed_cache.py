"""A routed LiteLLM completion served from faremeter's ResponseCache (offline, mock responses)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import litellm
import pytest

import faremeter
import faremeter_litellm
from faremeter import BudgetExceeded
from faremeter.budgets import Budget
from faremeter.caching import ResponseCache
from faremeter.fallback import RetryPolicy
from faremeter.meter import Meter
from faremeter.routing import Router
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage
from faremeter_litellm.routed import RoutedCompletion

from .helpers import MESSAGES, mock

USAGE = Usage(input_tokens=400, output_tokens=120)
TIERS = {"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]}
NO_RETRY = RetryPolicy(retries={}, jitter_s=0)


@pytest.fixture
def meter() -> Iterator[Meter]:
    m = make_test_meter()
    previous = faremeter.set_meter(m)
    handle = faremeter_litellm.instrument(m)
    yield m
    handle.uninstrument()
    faremeter.set_meter(previous)
    m.close()


# Built once: a mock ModelResponse carries a fresh id, and the models are part of the key.
MODELS = {m: {"model": m, "mock_response": mock(USAGE, model=m)} for m in ("gpt-4o-mini", "gpt-4o")}


def _routed(meter: Meter, cache: ResponseCache | None, **kw: Any) -> RoutedCompletion:
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    kw.setdefault("models", MODELS)
    return RoutedCompletion(
        router, meter=meter, retry=NO_RETRY, sleep=lambda s: None, cache=cache, **kw
    )


def _charge(meter: Meter, model: str = "gpt-4o-mini") -> Decimal:
    total = meter.catalog.cost(model, USAGE).total
    assert total is not None
    return total


def _calls(meter: Meter) -> list[SpanRecord]:
    """Model calls that reached LiteLLM (priced), not cache hits."""
    return [
        s for s in recorded_spans(meter) if s.kind is SpanKind.LLM and s.status is SpanStatus.OK
    ]


def _hits(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.status is SpanStatus.CACHED]


def test_second_identical_call_is_one_cached_span_saving_the_first_charge(meter: Meter) -> None:
    routed = _routed(meter, ResponseCache(meter=meter))
    with meter.trace("job") as t, faremeter.attributes(step="parse", user_id="u1"):
        first = routed.completion(messages=MESSAGES, temperature=0)
        meter.flush()  # LiteLLM ends sync calls on its logging thread
        second = routed.completion(messages=MESSAGES, temperature=0)
    meter.flush()
    assert isinstance(second, litellm.ModelResponse)
    assert second.choices[0].message.content == first.choices[0].message.content == "ok"  # pyright: ignore[reportAttributeAccessIssue]
    (call,) = _calls(meter)  # the second request never reached LiteLLM
    assert call.attributes["cache"] == "miss"
    (hit,) = _hits(meter)
    assert hit.kind is SpanKind.LLM and hit.name == "litellm.route"
    assert hit.model == "gpt-4o-mini"
    assert hit.cost.total == Decimal(0)
    assert hit.saved == _charge(meter)
    assert hit.attributes["cache_key"] == call.attributes["cache_key"]
    assert hit.trace_id == call.trace_id and hit.attributes["user_id"] == "u1"
    assert [s.name for s in recorded_spans(meter) if s.name == "litellm.route"] == [
        "litellm.route",
        "litellm.route",
    ]  # the miss's route span and the hit: no routing, no attempt on the hit
    assert t.cost == _charge(meter)


def test_saved_is_exact_without_waiting_for_the_logging_thread(meter: Meter) -> None:
    cache = ResponseCache(meter=meter)
    routed = _routed(meter, cache)
    with meter.trace("job"), faremeter.attributes(step="parse"):
        routed.completion(messages=MESSAGES, temperature=0)  # no flush: may still be on its thread
        routed.completion(messages=MESSAGES, temperature=0)
    meter.flush()
    (hit,) = _hits(meter)
    assert hit.saved == _charge(meter)


def test_a_sampled_request_is_not_cached(meter: Meter) -> None:
    routed = _routed(meter, ResponseCache(meter=meter))
    with meter.trace("job") as t, faremeter.attributes(step="parse"):
        routed.completion(messages=MESSAGES, temperature=0.7)
        routed.completion(messages=MESSAGES, temperature=0.7)
        routed.completion(messages=MESSAGES)  # the provider's default temperature samples too
    meter.flush()
    assert len(_calls(meter)) == 3
    assert not _hits(meter)
    assert all("cache" not in s.attributes for s in _calls(meter))
    assert t.cost == 3 * _charge(meter)


def test_a_model_spec_temperature_makes_the_request_deterministic(meter: Meter) -> None:
    models = {
        m: {"model": m, "mock_response": mock(USAGE, model=m), "temperature": 0}
        for m in ("gpt-4o-mini", "gpt-4o")
    }
    routed = _routed(meter, ResponseCache(meter=meter), models=models)
    with meter.trace("job"), faremeter.attributes(step="parse"):
        routed.completion(messages=MESSAGES, temperature=0.9)  # every model overrides it with 0
        routed.completion(messages=MESSAGES, temperature=0.9)
    meter.flush()
    assert len(_calls(meter)) == 1 and len(_hits(meter)) == 1


def test_a_hit_reserves_no_budget() -> None:
    # $0.00015 holds one call (worst case ~$0.00007 reserved, $0.000132 charged)
    # but not a second reservation on top of the first charge.
    def run(cache: ResponseCache | None) -> Meter:
        m = make_test_meter(budgets=[Budget("task", limit="0.00015", window="trace")])
        handle = faremeter_litellm.instrument(m)
        try:
            routed = _routed(m, cache)
            with m.trace("job"), faremeter.attributes(step="parse"):
                routed.completion(messages=MESSAGES, temperature=0, max_tokens=100)
                m.flush()
                routed.completion(messages=MESSAGES, temperature=0, max_tokens=100)
            m.flush()
        finally:
            handle.uninstrument()
        return m

    with pytest.raises(BudgetExceeded):
        run(None)  # without the cache the second call is refused
    m = run(ResponseCache())
    assert len(_calls(m)) == 1 and len(_hits(m)) == 1
    assert not [s for s in recorded_spans(m) if s.status is SpanStatus.DENIED]


def test_async_path(meter: Meter) -> None:
    routed = _routed(meter, ResponseCache(meter=meter))

    async def main() -> Any:
        with meter.trace("job") as t, faremeter.attributes(step="parse"):
            await routed.acompletion(messages=MESSAGES, temperature=0)
            await faremeter_litellm.instrument(meter).aflush()
            reply = await routed.acompletion(messages=MESSAGES, temperature=0)
        return reply, t

    reply, t = asyncio.run(main())
    meter.flush()
    assert isinstance(reply, litellm.ModelResponse)
    assert len(_calls(meter)) == 1
    (hit,) = _hits(meter)
    assert hit.saved == _charge(meter)
    assert t.cost == _charge(meter)


def test_eight_concurrent_identical_acompletions_call_the_model_once(meter: Meter) -> None:
    # The mock provider answers after 0.2 s, while the seven others arrive; the
    # outcome asserted holds whenever they arrive (waiting, or a plain hit).
    slow = {m: {**params, "mock_delay": 0.2} for m, params in MODELS.items()}
    routed = _routed(meter, ResponseCache(meter=meter, poll_interval=0.01), models=slow)

    async def main() -> list[Any]:
        with faremeter.attributes(step="parse"):
            replies = await asyncio.gather(
                *(routed.acompletion(messages=MESSAGES, temperature=0) for _ in range(8))
            )
        await faremeter_litellm.instrument(meter).aflush()
        return replies

    replies = asyncio.run(main())
    meter.flush()
    assert all(isinstance(r, litellm.ModelResponse) for r in replies)
    assert len({r.choices[0].message.content for r in replies}) == 1
    assert len(_calls(meter)) == 1
    hits = _hits(meter)
    assert len(hits) == 7 and all(h.saved == _charge(meter) for h in hits)


def test_a_completed_stream_is_stored_and_replayed_as_one_chunk(meter: Meter) -> None:
    models = {m: {"model": m} for m in ("gpt-4o-mini", "gpt-4o")}
    routed = _routed(meter, ResponseCache(meter=meter), models=models, mock_response="hi there")
    with meter.trace("job"), faremeter.attributes(step="parse"):
        streamed = list(routed.completion(messages=MESSAGES, temperature=0, stream=True))
        meter.flush()
        replayed = list(routed.completion(messages=MESSAGES, temperature=0, stream=True))
        plain = routed.completion(messages=MESSAGES, temperature=0)
    meter.flush()
    assert len(streamed) > 1
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == "hi there"
    (chunk,) = replayed
    assert isinstance(chunk, litellm.ModelResponseStream)
    assert chunk.choices[0].delta.content == "hi there"
    assert isinstance(plain, litellm.ModelResponse)
    assert plain.choices[0].message.content == "hi there"  # pyright: ignore[reportAttributeAccessIssue]
    assert len(_calls(meter)) == 1 and len(_hits(meter)) == 2


def test_an_abandoned_stream_is_not_stored(meter: Meter) -> None:
    models = {m: {"model": m} for m in ("gpt-4o-mini", "gpt-4o")}
    routed = _routed(meter, ResponseCache(meter=meter), models=models, mock_response="a b c d")
    with meter.trace("job"), faremeter.attributes(step="parse"):
        stream = routed.completion(messages=MESSAGES, temperature=0, stream=True)
        next(stream)
        stream.close()  # the caller stopped reading
        routed.completion(messages=MESSAGES, temperature=0)
    meter.flush()
    assert not _hits(meter)


def test_async_stream_hit_replays_one_chunk(meter: Meter) -> None:
    models = {m: {"model": m} for m in ("gpt-4o-mini", "gpt-4o")}
    routed = _routed(meter, ResponseCache(meter=meter), models=models, mock_response="hello")

    async def texts() -> list[str]:
        out: list[str] = []
        for _ in range(2):
            stream = await routed.acompletion(messages=MESSAGES, temperature=0, stream=True)
            out.append("".join([c.choices[0].delta.content or "" async for c in stream]))
        return out

    with meter.trace("job"), faremeter.attributes(step="parse"):
        assert asyncio.run(texts()) == ["hello", "hello"]
    meter.flush()
    assert len(_hits(meter)) == 1


def test_a_cached_value_survives_a_new_process_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'responses.db'}"

    def session() -> tuple[Meter, Any]:
        m = make_test_meter()
        handle = faremeter_litellm.instrument(m)
        cache = ResponseCache(backend=url, meter=m)
        try:
            with m.trace("job"), faremeter.attributes(step="parse"):
                reply = _routed(m, cache).completion(messages=MESSAGES, temperature=0)
            m.flush()
        finally:
            handle.uninstrument()
            cache.backend.close()
        return m, reply

    first, _ = session()
    assert len(_calls(first)) == 1
    again, reply = session()  # a new meter, cache, store connection and routed completion
    assert not _calls(again)
    (hit,) = _hits(again)
    assert hit.saved == _charge(again)
    assert isinstance(reply, litellm.ModelResponse)
    assert reply.choices[0].message.content == "ok"  # pyright: ignore[reportAttributeAccessIssue]


def test_differently_configured_routers_do_not_share_answers(meter: Meter) -> None:
    cache = ResponseCache(meter=meter)
    one = _routed(meter, cache)
    other_models = {name: {**spec, "top_p": 0.5} for name, spec in MODELS.items()}
    other = _routed(meter, cache, models=other_models)
    with meter.trace("job"), faremeter.attributes(step="parse"):
        one.completion(messages=MESSAGES, temperature=0)
        other.completion(messages=MESSAGES, temperature=0)
        one.completion(messages=MESSAGES, temperature=0)
    meter.flush()
    assert len(_calls(meter)) == 2 and len(_hits(meter)) == 1


def test_a_redis_outage_is_a_miss(meter: Meter) -> None:
    # Nothing listens on port 1: every store call fails, and the calls go through.
    cache = ResponseCache(backend="redis://127.0.0.1:1/0", meter=meter, outage_cooldown=0)
    routed = _routed(meter, cache)
    with meter.trace("job") as t, faremeter.attributes(step="parse"):
        routed.completion(messages=MESSAGES, temperature=0)
        routed.completion(messages=MESSAGES, temperature=0)
    meter.flush()
    assert len(_calls(meter)) == 2 and not _hits(meter)
    assert cache.store_failures >= 3  # two lookups and a store
    assert t.cost == 2 * _charge(meter)
