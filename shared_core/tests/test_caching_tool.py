"""ToolCache: hits record saved dollars, misses record once, stampedes run once."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from faremeter import Meter, SpanKind, SpanStatus
from faremeter.caching import CachedToolError, MemoryBackend, SQLiteBackend, ToolCache
from faremeter.caching.backends import CacheBackend
from faremeter.testing import make_test_meter, recorded_spans

PRICE = Decimal("0.005")


class Clock:
    """Seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def meter() -> Meter:
    return make_test_meter(tools={"web_search": PRICE})


@pytest.fixture
def clock() -> Clock:
    return Clock()


def echo(value: str) -> str:
    return value


def make_cache(meter: Meter, clock: Clock, **kw: Any) -> ToolCache:
    kw.setdefault("backend", MemoryBackend(timer=clock))
    return ToolCache(meter=meter, clock=clock, **kw)


def test_hit_is_one_cached_span_with_saved_price(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)
    calls: list[str] = []

    @cache.wrap
    def web_search(query: str, limit: int = 3) -> list[str]:
        calls.append(query)
        return [f"{query}-{i}" for i in range(limit)]

    assert web_search("x") == ["x-0", "x-1", "x-2"]
    assert web_search(query="x", limit=3) == ["x-0", "x-1", "x-2"]
    assert calls == ["x"]
    miss, hit = recorded_spans(meter)
    assert (miss.status, miss.cost.total) == (SpanStatus.OK, PRICE)
    assert miss.attributes["cache"] == "miss"
    assert hit.status is SpanStatus.CACHED and hit.kind is SpanKind.TOOL
    assert hit.cost.total == 0 and hit.saved == PRICE
    assert hit.attributes["cache"] == "hit"
    assert hit.attributes["cache_key"] == miss.attributes["cache_key"]
    assert cache.stats.hits == 1 and cache.stats.misses == 1


def test_argument_order_and_number_rule(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)
    seen: list[Any] = []

    @cache.wrap(name="lookup", price="0.01")
    def lookup(payload: dict[str, Any]) -> str:
        seen.append(payload)
        return "ok"

    lookup({"a": 1, "b": 2})
    lookup({"b": 2, "a": 1})  # same key: dict order ignored
    lookup({"a": 1.0, "b": 2})  # same key: 1 == 1.0 by the documented rule
    lookup({"a": "1", "b": 2})  # different key: a string is not a number
    assert seen == [{"a": 1, "b": 2}, {"a": "1", "b": 2}]
    statuses = [s.status for s in recorded_spans(meter)]
    assert statuses == [SpanStatus.OK, SpanStatus.CACHED, SpanStatus.CACHED, SpanStatus.OK]


def test_ttl_expiry_with_injected_clock(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock, ttl=60, ttls={"fast": 5})
    runs = {"slow": 0, "fast": 0}

    @cache.wrap(price="0.001")
    def slow(x: int) -> int:
        runs["slow"] += 1
        return x

    @cache.wrap(price="0.001")
    def fast(x: int) -> int:
        runs["fast"] += 1
        return x

    slow(1)
    fast(1)
    clock.now += 4.999
    slow(1)
    fast(1)
    assert runs == {"slow": 1, "fast": 1}
    clock.now += 0.001  # exactly at fast's expiry
    slow(1)
    fast(1)
    assert runs == {"slow": 1, "fast": 2}
    clock.now += 55
    slow(1)
    assert runs["slow"] == 2


def test_expiry_is_checked_by_the_cache_clock_even_if_the_store_keeps_the_entry(
    meter: Meter, clock: Clock
) -> None:
    # The store's own timer never moves; the cache's clock decides.
    cache = ToolCache(meter=meter, clock=clock, ttl=10, backend=MemoryBackend(timer=lambda: 0.0))
    runs: list[int] = []

    def t(x: int) -> int:
        runs.append(x)
        return x

    tool = cache.wrap(t, price="0")
    tool(1)
    clock.now += 11
    tool(1)
    assert runs == [1, 1]


def test_excluded_tool_and_errors_are_not_cached(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock, exclude={"send_mail"})
    sent: list[str] = []

    @cache.wrap(price="0")
    def send_mail(to: str) -> str:
        sent.append(to)
        return "sent"

    send_mail("a")
    send_mail("a")
    assert sent == ["a", "a"]

    attempts: list[int] = []

    @cache.wrap(price="0.01")
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise TimeoutError("slow upstream")
        return x

    with pytest.raises(TimeoutError):
        flaky(1)
    assert flaky(1) == 1
    assert attempts == [1, 1]
    error = next(s for s in recorded_spans(meter) if s.status is SpanStatus.ERROR)
    assert error.cost.total == 0


def test_listed_errors_are_cached_and_reraised(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock, cache_errors=(LookupError,))
    runs: list[str] = []

    @cache.wrap(price="0.10")
    def fetch(record_id: str) -> dict[str, str]:
        runs.append(record_id)
        raise LookupError(f"no record {record_id}")

    with pytest.raises(LookupError, match="no record r1"):
        fetch("r1")
    with pytest.raises(LookupError, match="no record r1"):
        fetch("r1")
    assert runs == ["r1"]
    hit = recorded_spans(meter)[-1]
    assert hit.status is SpanStatus.CACHED and hit.saved is None  # a failure saved nothing


def test_unrebuildable_cached_error_becomes_cached_tool_error(meter: Meter, clock: Clock) -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}/{b}")

    cache = make_cache(meter, clock, cache_errors=(Odd,))

    def odd() -> None:
        raise Odd(1, 2)

    tool = cache.wrap(odd, price="0")
    with pytest.raises(Odd):
        tool()
    with pytest.raises(CachedToolError, match="Odd: 1/2"):
        tool()


def test_non_json_results_are_returned_uncached(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)
    runs: list[int] = []

    @cache.wrap(price="0")
    def make(x: int) -> object:
        runs.append(x)
        return object()

    make(1)
    make(1)
    assert runs == [1, 1]
    assert cache.stats.uncacheable == 2


def test_serialize_deserialize_round_trip(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)

    @cache.wrap(price="0", serialize=list, deserialize=tuple)
    def pair(x: int) -> tuple[int, int]:
        return (x, x)

    assert pair(2) == (2, 2)
    assert pair(2) == (2, 2)


def test_hundred_concurrent_identical_calls_run_once(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)
    runs: list[str] = []
    key = cache.key("web_search", {"query": "same"})

    @cache.wrap
    def web_search(query: str) -> str:
        runs.append(query)
        # Hold the leader until the 99 others wait on it (or have given up waiting
        # for the condition — the outcome asserted below holds either way).
        for _ in range(2_000):
            if cache._flight.in_flight(key) >= 100:  # pyright: ignore[reportPrivateUsage]
                break
            time.sleep(0.005)
        return "result"

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(web_search, ["same"] * 100))
    assert results == ["result"] * 100
    assert runs == ["same"]
    spans = recorded_spans(meter)
    cached = [s for s in spans if s.status is SpanStatus.CACHED]
    assert len(spans) == 100 and len(cached) == 99
    assert sum(s.saved or 0 for s in cached) == 99 * PRICE
    assert [s.cost.total for s in spans if s.status is SpanStatus.OK] == [PRICE]


def test_concurrent_failure_is_shared_not_retried(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)
    gate = threading.Event()
    runs: list[int] = []

    @cache.wrap(price="0")
    def boom(x: int) -> int:
        runs.append(x)
        gate.wait(5)
        raise RuntimeError("down")

    key = cache.key("boom", {"x": 1})
    errors: list[BaseException] = []

    def call() -> None:
        try:
            boom(1)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for _ in range(2_000):
        if cache._flight.in_flight(key) >= 5:  # pyright: ignore[reportPrivateUsage]
            break
        time.sleep(0.005)
    gate.set()
    for t in threads:
        t.join()
    assert len(errors) == 5
    assert runs == [1]  # the four waiters shared the leader's failure
    assert cache._flight.in_flight(key) == 0  # pyright: ignore[reportPrivateUsage]


def test_async_concurrent_identical_calls_run_once(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)
    runs: list[str] = []

    @cache.wrap
    async def web_search(query: str) -> str:
        runs.append(query)
        await asyncio.sleep(0)  # let every other task reach the flight
        await asyncio.sleep(0)
        return query.upper()

    async def main() -> list[str]:
        return await asyncio.gather(*(web_search("q") for _ in range(50)))

    assert asyncio.run(main()) == ["Q"] * 50
    assert runs == ["q"]
    spans = recorded_spans(meter)
    assert sum(s.saved or 0 for s in spans if s.status is SpanStatus.CACHED) == 49 * PRICE


def test_priced_tool_records_the_miss_cache_records_the_hit(meter: Meter, clock: Clock) -> None:
    from faremeter.caching import cache_priced_tool
    from faremeter.priced_tool import ToolPricing

    cache = make_cache(meter, clock)
    runs: list[str] = []

    def fetch_records(query: str) -> list[str]:
        runs.append(query)
        return ["r1", "r2", "r3"]

    pricing = ToolPricing("fetch_records", price_per_call=None, price_per_unit="0.10", units=len)
    tool = cache_priced_tool(meter, cache, fetch_records, pricing)
    assert tool("q") == tool("q") == ["r1", "r2", "r3"]
    assert runs == ["q"]
    miss, hit = recorded_spans(meter)
    assert (miss.status, miss.cost.total) == (SpanStatus.OK, Decimal("0.30"))
    assert miss.attributes["cache"] == "miss"
    assert (hit.status, hit.cost.total, hit.saved) == (SpanStatus.CACHED, 0, Decimal("0.30"))


def test_hit_claims_the_enclosing_span_of_the_same_tool(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)
    tool = cache.wrap(echo, name="web_search")

    @meter.priced_tool(name="web_search", price_per_call=PRICE)
    def outer(q: str) -> str:
        return tool(q)

    with meter.trace("run"):
        outer("a")
        outer("a")
    spans = [s for s in recorded_spans(meter) if s.kind is SpanKind.TOOL]
    # One span per call: the decorator's; the cache tagged the miss, claimed the hit.
    assert [(s.status, s.cost.total, s.saved) for s in spans] == [
        (SpanStatus.OK, PRICE, None),
        (SpanStatus.CACHED, 0, PRICE),
    ]


def test_store_outage_is_a_miss_never_an_error(meter: Meter, clock: Clock) -> None:
    class Down:
        name = "down"
        shared = True

        def __getattr__(self, _name: str) -> Any:
            def fail(*_a: Any, **_k: Any) -> Any:
                raise ConnectionError("store unreachable")

            return fail

    backend: CacheBackend = Down()  # type: ignore[assignment]
    cache = make_cache(meter, clock, backend=backend)
    runs: list[int] = []

    def web_search(x: int) -> int:
        runs.append(x)
        return x

    tool = cache.wrap(web_search)
    assert tool(1) == 1 and tool(1) == 1
    assert runs == [1, 1]
    assert cache.stats.store_failures > 0


def test_sqlite_entry_survives_restart(tmp_path: Path, meter: Meter, clock: Clock) -> None:
    path = tmp_path / "cache.db"
    runs: list[str] = []

    def web_search(query: str) -> list[str]:
        runs.append(query)
        return [query]

    first = ToolCache(meter=meter, clock=clock, backend=SQLiteBackend(path, timer=clock))
    first.wrap(web_search)("x")
    first.backend.close()
    second = ToolCache(meter=meter, clock=clock, backend=SQLiteBackend(path, timer=clock))
    assert second.wrap(web_search)("x") == ["x"]
    assert runs == ["x"]
    assert recorded_spans(meter)[-1].saved == PRICE


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="ttl"):
        ToolCache(ttl=0)
    with pytest.raises(ValueError, match=r"ttls\['x'\]"):
        ToolCache(ttls={"x": -1})
    with pytest.raises(TypeError, match="cache_errors"):
        ToolCache(cache_errors=(KeyboardInterrupt,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache url"):
        ToolCache(backend="mysql://x")


def test_store_outage_cooldown_skips_the_store_then_retries() -> None:
    from faremeter.caching.entries import CacheEntry
    from faremeter.caching.guarded import GuardedStore

    class Flaky(MemoryBackend):
        down = True
        calls = 0

        def get(self, key: str) -> str | None:
            self.calls += 1
            if self.down:
                raise TimeoutError("no answer within the socket timeout")
            return super().get(key)

    now = [0.0]
    backend = Flaky()
    store = GuardedStore(backend, clock=lambda: 0.0, cooldown=5.0, monotonic=lambda: now[0])
    assert store.get("k") is None and backend.calls == 1 and store.failures == 1
    for _ in range(3):  # within the cooldown: not even asked
        assert store.get("k") is None
        assert store.acquire("lock", "t", 1.0)  # a down store never blocks the caller
    assert backend.calls == 1 and store.skipped == 6
    backend.down = False
    now[0] = 5.0
    store.put("k", CacheEntry(value=1, stored_at=0.0), None)
    entry = store.get("k")
    assert entry is not None and entry.value == 1 and backend.calls == 2
    with pytest.raises(ValueError, match="cooldown"):
        GuardedStore(backend, clock=lambda: 0.0, cooldown=-1)


def test_each_hit_gets_its_own_copy(meter: Meter, clock: Clock) -> None:
    cache = make_cache(meter, clock)

    @cache.wrap(price="0")
    def listing(q: str) -> list[str]:
        return ["a", "b"]

    first = listing("x")
    first.append("mutated by the caller")
    second = listing("x")
    second.append("mutated again")
    assert listing("x") == ["a", "b"]
