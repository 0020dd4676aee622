"""Concurrent identical routed requests pay once: the others are served the stored answer."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from faremeter.caching import ResponseCache
from faremeter.caching.backends import SQLiteBackend
from faremeter.caching.miss_leases import MissLeases
from faremeter.fallback import RetryPolicy
from faremeter.meter import Meter
from faremeter.routing import Router
from faremeter.routing.routed_cache import StoredResponse
from faremeter.routing.routed_call import ModelRouting
from faremeter.spans import SpanKind, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage

USAGE = Usage(input_tokens=1000, output_tokens=200)
REQUEST = {"messages": [{"role": "user", "content": "summarise the report"}], "temperature": 0}
N = 20


class Codec:
    def dump(self, response: dict[str, Any]) -> StoredResponse | None:
        return StoredResponse(data=dict(response), model=response["model"], usage=USAGE)

    def load(self, data: Any) -> dict[str, Any] | None:
        return dict(data) if isinstance(data, dict) else None  # pyright: ignore[reportUnknownArgumentType]


class Down(Exception):
    """Not retried, not a fallback reason: the routed call fails."""


def _routing(meter: Meter, cache: ResponseCache) -> ModelRouting:
    router = Router({"economy": ["gpt-4o-mini"]}, complexity=False)
    return ModelRouting(
        router,
        models=[c.model for c in router.candidates],
        meter=meter,
        retry=RetryPolicy(retries={}, jitter_s=0),
        sleep=lambda s: None,
        cache=cache,
    )


class Provider:
    """Records a priced span per call; the first call waits until the others wait on it."""

    def __init__(self, meter: Meter, cache: ResponseCache, *, waiters: int) -> None:
        self.meter = meter
        self.cache = cache
        self.waiters = waiters
        self.calls = 0
        self.fail_first = False
        self._lock = threading.Lock()

    def _key_in_flight(self) -> int:
        misses = self.cache.misses
        assert misses is not None
        return max((misses.in_flight(k) for k in list(misses._flights)), default=0)  # pyright: ignore[reportPrivateUsage]

    def __call__(self, model: str) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            for _ in range(4_000):  # bounded: the outcome asserted holds either way
                if self._key_in_flight() >= self.waiters + 1:
                    break
                time.sleep(0.005)
            if self.fail_first:
                raise Down("provider down")
        span = self.meter.start_span(model, kind=SpanKind.LLM, model=model)
        span.end(usage=USAGE)
        return {"text": "the summary", "model": model}


def _serve(routing: ModelRouting, provider: Provider) -> dict[str, Any]:
    ticket = routing.lookup(lambda: REQUEST, Codec())
    if ticket.hit is not None:
        return ticket.hit
    plan = routing.plan(REQUEST["messages"])
    return routing.run(plan, provider, cache=ticket)


def _price(meter: Meter) -> Decimal:
    total = meter.catalog.cost("gpt-4o-mini", USAGE).total
    assert total is not None
    return total


def test_twenty_concurrent_identical_requests_call_the_model_once() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter)
    routing = _routing(meter, cache)
    provider = Provider(meter, cache, waiters=N - 1)
    with ThreadPoolExecutor(max_workers=N) as pool:
        results = list(pool.map(lambda _i: _serve(routing, provider), range(N)))  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]
    assert results == [{"text": "the summary", "model": "gpt-4o-mini"}] * N
    assert provider.calls == 1
    spans = recorded_spans(meter)
    hits = [s for s in spans if s.status is SpanStatus.CACHED]
    priced = [s for s in spans if s.kind is SpanKind.LLM and s.status is SpanStatus.OK]
    assert len(hits) == N - 1 and len(priced) == 1
    assert all(h.saved == _price(meter) and h.cost.total == 0 for h in hits)
    assert sum((s.cost.total or Decimal(0) for s in spans), Decimal(0)) == _price(meter)
    assert cache.misses is not None and not cache.misses._flights  # pyright: ignore[reportPrivateUsage]


def test_concurrent_coroutines_call_the_model_once() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter, poll_interval=0.001)
    routing = _routing(meter, cache)
    calls: list[str] = []
    started = asyncio.Event()

    async def provider(model: str) -> dict[str, Any]:
        calls.append(model)
        started.set()
        await asyncio.sleep(0.05)  # the others arrive meanwhile; they wait either way
        span = meter.start_span(model, kind=SpanKind.LLM, model=model)
        span.end(usage=USAGE)
        return {"text": "the summary", "model": model}

    async def serve() -> dict[str, Any]:
        ticket = await routing.alookup(lambda: REQUEST, Codec())
        if ticket.hit is not None:
            return ticket.hit
        plan = await routing.aplan(REQUEST["messages"])
        return await routing.arun(plan, provider, cache=ticket)

    async def main() -> list[dict[str, Any]]:
        leader = asyncio.create_task(serve())
        await started.wait()  # the leader holds the lease before the others look up
        rest = await asyncio.gather(*(serve() for _ in range(N - 1)))
        return [await leader, *rest]

    results = asyncio.run(main())
    assert len(results) == N and all(r["text"] == "the summary" for r in results)
    assert calls == ["gpt-4o-mini"]
    hits = [s for s in recorded_spans(meter) if s.status is SpanStatus.CACHED]
    assert len(hits) == N - 1 and all(h.saved == _price(meter) for h in hits)


def test_a_failed_leader_lets_its_waiters_send_their_own_requests() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter)
    routing = _routing(meter, cache)
    provider = Provider(meter, cache, waiters=4)
    provider.fail_first = True

    def serve(_: int) -> str:
        try:
            return _serve(routing, provider)["text"]
        except Down:
            return "failed"

    with ThreadPoolExecutor(max_workers=5) as pool:
        outcomes = sorted(pool.map(serve, range(5)))
    # The leader's error is its own; the four waiters were not handed it, and
    # each sent its request (none of them stored before the others looked).
    assert outcomes.count("failed") == 1
    assert outcomes.count("the summary") == 4
    assert provider.calls >= 2


def test_a_ticket_dropped_between_lookup_and_run_releases_its_lease() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter, lock_ttl=600)
    routing = _routing(meter, cache)
    ticket = routing.lookup(lambda: REQUEST, Codec())
    assert ticket.lease is not None and ticket.key is not None
    misses = cache.misses
    assert misses is not None and misses.in_flight(ticket.key) == 1
    key = ticket.key
    del ticket  # e.g. a budget denial raised by plan() before run()
    gc.collect()
    assert misses.in_flight(key) == 0
    # The next identical request leads at once instead of waiting 600 s.
    provider = Provider(meter, cache, waiters=0)
    assert _serve(routing, provider)["text"] == "the summary"
    assert provider.calls == 1


def test_an_abandoned_stream_releases_its_lease() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter, lock_ttl=600)
    routing = _routing(meter, cache)

    class Chunks:
        def dump(self, response: list[str]) -> StoredResponse | None:
            return StoredResponse(data="".join(response), model="gpt-4o-mini", usage=USAGE)

        def load(self, data: Any) -> list[str] | None:
            return [data] if isinstance(data, str) else None

    def open_stream(model: str) -> Iterator[str]:
        yield from ("one ", "two ", "three")

    ticket = routing.lookup(lambda: REQUEST, Chunks())
    key = ticket.key
    assert key is not None and ticket.lease is not None
    stream = routing.run_stream(routing.plan(REQUEST["messages"]), open_stream, cache=ticket)
    assert next(stream) == "one "
    del ticket
    stream.close()  # the caller stops reading: nothing stored, nobody kept waiting
    misses = cache.misses
    assert misses is not None and misses.in_flight(key) == 0
    assert cache.lookup_key(key, record=False) is None


def test_processes_sharing_a_store_wait_on_its_lock(tmp_path: Path) -> None:
    """Two caches over one SQLite file stand for two processes (separate lease tables)."""
    meter = make_test_meter()
    path = tmp_path / "responses.db"
    first = ResponseCache(meter=meter, backend=SQLiteBackend(path), poll_interval=0.005)
    second = ResponseCache(meter=meter, backend=SQLiteBackend(path), poll_interval=0.005)
    routing_a, routing_b = _routing(meter, first), _routing(meter, second)
    calls: list[str] = []
    waiting = threading.Event()
    acquire = second.backend.acquire

    def acquire_noting_the_wait(key: str, token: str, ttl: float) -> bool:
        held = acquire(key, token, ttl)
        if not held:
            waiting.set()  # the second process found the first one's lock
        return held

    second.backend.acquire = acquire_noting_the_wait  # type: ignore[method-assign]
    first_holds = threading.Event()
    first_acquire = first.backend.acquire

    def acquire_noting_the_hold(key: str, token: str, ttl: float) -> bool:
        held = first_acquire(key, token, ttl)
        if held:
            first_holds.set()
        return held

    first.backend.acquire = acquire_noting_the_hold  # type: ignore[method-assign]

    def provider(model: str) -> dict[str, Any]:
        calls.append(model)
        waiting.wait(30)  # bounded: the outcome asserted holds either way
        span = meter.start_span(model, kind=SpanKind.LLM, model=model)
        span.end(usage=USAGE)
        return {"text": "the summary", "model": model}

    def serve(routing: ModelRouting) -> dict[str, Any]:
        ticket = routing.lookup(lambda: REQUEST, Codec())
        if ticket.hit is not None:
            return ticket.hit
        return routing.run(routing.plan(REQUEST["messages"]), provider, cache=ticket)

    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(serve, routing_a)
        assert first_holds.wait(30)  # the first process holds the store's lock
        b = pool.submit(serve, routing_b)
        assert a.result() == b.result()
    assert calls == ["gpt-4o-mini"]
    (hit,) = [s for s in recorded_spans(meter) if s.status is SpanStatus.CACHED]
    assert hit.saved == _price(meter)


def test_stampede_protection_can_be_turned_off() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter, lock_ttl=None)
    assert cache.misses is None
    ticket = _routing(meter, cache).lookup(lambda: REQUEST, Codec())
    assert ticket.lease is None and ticket.key is not None


def test_lease_table_rejects_non_positive_waits() -> None:
    cache = ResponseCache()
    with pytest.raises(ValueError, match="must be > 0"):
        MissLeases(cache._store, wait_s=0, poll_s=0.1)  # pyright: ignore[reportPrivateUsage]


class _NeverWait(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        raise AssertionError("waited on a lease held by this very thread")


def test_a_call_on_the_leaseholders_own_thread_never_waits_on_it() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter, lock_ttl=600)
    routing = _routing(meter, cache)
    held = routing.lookup(lambda: REQUEST, Codec())  # e.g. a stream not drained yet
    assert held.lease is not None and held.key is not None
    misses = cache.misses
    assert misses is not None
    misses._flights[held.key].done = _NeverWait()  # pyright: ignore[reportPrivateUsage]
    provider = Provider(meter, cache, waiters=0)
    assert _serve(routing, provider)["text"] == "the summary"  # ran at once, uncoordinated
    assert provider.calls == 1 and misses.in_flight(held.key) == 1
    held.release()
    assert misses.in_flight(held.key) == 0


def test_a_forked_child_does_not_wait_on_its_parents_leases() -> None:
    import multiprocessing

    meter = make_test_meter()
    cache = ResponseCache(meter=meter, lock_ttl=600)
    routing = _routing(meter, cache)
    # The parent's call is in flight on another thread (a child forked from this
    # thread would otherwise count as that thread and never wait anyway).
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(routing.lookup, lambda: REQUEST, Codec()).result()
    assert held.lease is not None

    def child(results: Any) -> None:
        provider = Provider(meter, cache, waiters=0)
        results.put((_serve(routing, provider)["text"], provider.calls))

    ctx = multiprocessing.get_context("fork")
    results: Any = ctx.Queue()
    proc = ctx.Process(target=child, args=(results,))
    proc.start()
    assert results.get(timeout=60) == ("the summary", 1)  # led at once in the child
    proc.join(30)
    assert proc.exitcode == 0
    held.release()


def test_a_coroutine_never_waits_on_a_sync_lease_of_its_own_thread() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter, lock_ttl=600, poll_interval=0.001)
    routing = _routing(meter, cache)
    held = routing.lookup(lambda: REQUEST, Codec())  # a sync stream paused on this thread
    assert held.lease is not None

    async def lookup_again() -> Any:
        # Bounded: waiting on the paused lease would take the full 600 s.
        return await asyncio.wait_for(routing.alookup(lambda: REQUEST, Codec()), timeout=30)

    ticket = asyncio.run(lookup_again())
    assert ticket.hit is None and ticket.lease is None  # a miss run uncoordinated, at once
    held.release()
