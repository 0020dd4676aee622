"""Caches on real shared stores: one run across processes, restarts, outages.

Needs Redis at 127.0.0.1:6379 (skips with how to start it otherwise); the
outage test starts its own ``redis-server`` on a free port so it can kill it.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from faremeter import SpanKind, SpanStatus, Usage
from faremeter.caching import SQLiteBackend, ToolCache
from faremeter.caching.backends import CacheBackend
from faremeter.caching.backends.redis import RedisBackend
from faremeter.testing import make_test_meter, recorded_spans

PRICE = Decimal("0.005")
PROCESSES = 4


def _redis_backend(url: str, prefix: str) -> RedisBackend:
    return RedisBackend(url, prefix=prefix, socket_timeout=5.0)  # generous: a loaded CI host stalls


def _make_backend(spec: tuple[str, str, str]) -> CacheBackend:
    kind, where, prefix = spec
    if kind == "redis":
        return _redis_backend(where, prefix)
    return SQLiteBackend(where)


def _worker(spec: tuple[str, str, str], counter_path: str, results: Any) -> None:
    """One process: call the cached tool once, report what it recorded."""
    import redis

    meter = make_test_meter(tools={"web_search": PRICE})
    backend = _make_backend(spec)
    cache = ToolCache(meter=meter, backend=backend, poll_interval=0.01)
    client: Any = redis.Redis.from_url(spec[1]) if spec[0] == "redis" else None  # pyright: ignore[reportUnknownMemberType]

    def web_search(query: str) -> str:
        # Count runs in a file every process appends to (O_APPEND writes are atomic).
        with open(counter_path, "a") as f:
            f.write(f"{os.getpid()}\n")
        # Hold the lock until every process has started its call, so the other
        # three are certainly waiting on it (bounded, in case one never starts).
        for _ in range(1_000):
            if _started(spec, client) >= PROCESSES:
                break
            time.sleep(0.01)
        return f"results for {query}"

    _start(spec, client)
    value = cache.wrap(web_search)("faremeter")
    statuses = [(s.status.value, str(s.saved)) for s in recorded_spans(meter)]
    results.put((value, statuses))


def _start(spec: tuple[str, str, str], client: Any) -> None:
    if client is not None:
        client.incr(spec[2] + "started")
    else:
        with open(spec[1] + ".started", "a") as f:
            f.write("x\n")


def _started(spec: tuple[str, str, str], client: Any) -> int:
    if client is not None:
        return int(client.get(spec[2] + "started") or 0)
    try:
        return len(Path(spec[1] + ".started").read_text().splitlines())
    except FileNotFoundError:
        return 0


def _run_processes(
    spec: tuple[str, str, str], tmp_path: Path, worker: Any = None
) -> list[tuple[str, list[Any]]]:
    """Run ``worker`` (the cached tool call by default) in 4 processes; it must run once."""
    ctx = multiprocessing.get_context("fork")
    results: Any = ctx.Queue()
    counter = tmp_path / "runs.txt"
    counter.touch()
    target = worker or _worker
    procs = [
        ctx.Process(target=target, args=(spec, str(counter), results)) for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(counter.read_text().splitlines()) == 1, "the work ran more than once"
    return out


def _assert_one_run(out: list[tuple[str, list[Any]]]) -> None:
    assert {value for value, _ in out} == {"results for faremeter"}
    statuses = sorted(s for _, spans in out for s in spans)
    assert statuses == [("cached", str(PRICE))] * (PROCESSES - 1) + [("ok", "None")]


@pytest.fixture
def prefix() -> str:
    return f"fm-test-cache-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def cleanup(redis_url: str, prefix: str) -> Iterator[None]:
    yield
    _redis_backend(redis_url, prefix).clear()


def test_four_processes_on_redis_run_the_tool_once(
    redis_url: str, prefix: str, cleanup: None, tmp_path: Path
) -> None:
    _assert_one_run(_run_processes(("redis", redis_url, prefix), tmp_path))


def _routed_worker(spec: tuple[str, str, str], counter_path: str, results: Any) -> None:
    """One process: a routed model call over a ResponseCache on the shared Redis."""
    import redis

    from faremeter.caching import ResponseCache
    from faremeter.routing import Router
    from faremeter.routing.routed_cache import StoredResponse
    from faremeter.routing.routed_call import ModelRouting
    from faremeter.usage import Usage

    usage = Usage(input_tokens=1000, output_tokens=200)

    class Codec:
        def dump(self, response: dict[str, str]) -> StoredResponse:
            return StoredResponse(data=response, model="gpt-4o-mini", usage=usage)

        def load(self, data: Any) -> dict[str, str]:
            return dict(data)

    meter = make_test_meter()
    cache = ResponseCache(meter=meter, backend=_redis_backend(spec[1], spec[2]), poll_interval=0.01)
    router = Router({"economy": ["gpt-4o-mini"]}, complexity=False)
    routing = ModelRouting(router, models=["gpt-4o-mini"], meter=meter, cache=cache)
    client: Any = redis.Redis.from_url(spec[1])  # pyright: ignore[reportUnknownMemberType]
    request = {"messages": [{"role": "user", "content": "summarise"}], "temperature": 0}

    def provider(model: str) -> dict[str, str]:
        with open(counter_path, "a") as f:
            f.write(f"{os.getpid()}\n")
        for _ in range(1_000):  # until the other processes are waiting (bounded)
            if _started(spec, client) >= PROCESSES:
                break
            time.sleep(0.01)
        meter.start_span(model, kind=SpanKind.LLM, model=model).end(usage=usage)
        return {"text": "the summary"}

    _start(spec, client)
    ticket = routing.lookup(lambda: request, Codec())
    if ticket.hit is not None:
        value = ticket.hit
    else:
        value = routing.run(routing.plan(request["messages"]), provider, cache=ticket)
    spans = recorded_spans(meter)
    statuses = [(s.status.value, str(s.saved)) for s in spans if s.kind is SpanKind.LLM]
    results.put((value["text"], statuses))


def test_four_processes_on_redis_send_one_routed_request(
    redis_url: str, prefix: str, cleanup: None, tmp_path: Path
) -> None:
    out = _run_processes(("redis", redis_url, prefix), tmp_path, _routed_worker)
    assert {text for text, _ in out} == {"the summary"}
    statuses = sorted(s for _, spans in out for s in spans)
    price = (
        make_test_meter()
        .catalog.cost("gpt-4o-mini", Usage(input_tokens=1000, output_tokens=200))
        .total
    )
    assert statuses == [("cached", str(price))] * (PROCESSES - 1) + [("ok", "None")]


def test_four_processes_on_sqlite_run_the_tool_once(tmp_path: Path) -> None:
    _assert_one_run(_run_processes(("sqlite", str(tmp_path / "cache.db"), ""), tmp_path))


def _store_in_child(url: str, prefix: str) -> None:
    meter = make_test_meter(tools={"web_search": PRICE})
    cache = ToolCache(meter=meter, backend=_redis_backend(url, prefix))

    def web_search(query: str) -> str:
        return f"fresh {query}"

    cache.wrap(web_search)("q")


def test_redis_entry_survives_a_process_restart(redis_url: str, prefix: str, cleanup: None) -> None:
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_store_in_child, args=(redis_url, prefix))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    meter = make_test_meter(tools={"web_search": PRICE})
    cache = ToolCache(meter=meter, backend=_redis_backend(redis_url, prefix))
    runs: list[str] = []

    def web_search(query: str) -> str:
        runs.append(query)
        return "recomputed"

    assert cache.wrap(web_search)("q") == "fresh q"
    assert runs == []
    (hit,) = recorded_spans(meter)
    assert hit.status is SpanStatus.CACHED and hit.saved == PRICE


# ---------------------------------------------------------------- a private Redis
# (the `private_redis` fixture lives in integration_tests/conftest.py)


def test_redis_outage_degrades_to_a_miss(
    private_redis: tuple[str, subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    url, proc = private_redis
    meter = make_test_meter(tools={"web_search": PRICE})
    cache = ToolCache(meter=meter, backend=_redis_backend(url, "fm-outage:"))
    runs: list[str] = []

    @cache.wrap
    def web_search(query: str) -> str:
        runs.append(query)
        return f"r-{query}"

    assert web_search("a") == web_search("a") == "r-a"
    assert runs == ["a"] and cache.stats.store_failures == 0
    proc.kill()
    proc.wait()
    with caplog.at_level("WARNING", logger="faremeter.caching"):
        assert web_search("a") == "r-a"  # the store is gone: a miss, not an error
        assert web_search("b") == "r-b"
    assert runs == ["a", "a", "b"]
    assert cache.stats.store_failures >= 1
    outage_logs = [r for r in caplog.records if "store failed" in r.getMessage()]
    assert len(outage_logs) == 1  # logged once per outage, not per call
    statuses = [s.status for s in recorded_spans(meter)]
    assert statuses == [SpanStatus.OK, SpanStatus.CACHED, SpanStatus.OK, SpanStatus.OK]


def _read_in_child(backend: SQLiteBackend, results: Any) -> None:
    results.put(backend.get("parent"))
    backend.set("child", "from the child", None)


def test_sqlite_backend_survives_fork(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "cache.db")
    backend.set("parent", "from the parent", None)
    ctx = multiprocessing.get_context("fork")
    results: Any = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(backend, results))
    child.start()
    assert results.get(timeout=30) == "from the parent"
    child.join(30)
    assert child.exitcode == 0
    assert backend.get("child") == "from the child"


def test_redis_backend_contract(redis_url: str, prefix: str, cleanup: None) -> None:
    from faremeter.caching.contract import check_backend_contract

    # Redis keeps its own clock (PX expiry): the TTL part runs against a
    # deterministic clock in the memory/SQLite suite and via the cache's own
    # expiry check (which every backend shares) in test_caching_tool.
    check_backend_contract(_redis_backend(redis_url, prefix), None)
