"""Cache hit path: faremeter's ToolCache / LLM cache per backend vs an instant tool vs LangChain.

    uv run python integration_tests/benchmarks/bench_cache.py

A hit is the whole path a cached call takes: canonical key of the arguments,
store read, JSON decode, TTL check and recording the ``cached`` span (cost 0,
``saved``) into an in-memory ledger. Beside it: calling an instant tool with no
cache at all (the floor: a hit can only pay off for tools slower than this
ratio says) and LangChain's ``InMemoryCache.lookup`` (a dict lookup that
records nothing). Redis is included when 127.0.0.1:6379 answers. Output is
markdown, ready for BENCHMARKS.md.
"""

from __future__ import annotations

import platform
import socket
import statistics
import tempfile
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.caches import InMemoryCache
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration

from faremeter import Usage
from faremeter.caching import MemoryBackend, ResponseCache, SQLiteBackend, ToolCache
from faremeter.caching.backends import CacheBackend
from faremeter.testing import make_test_meter
from faremeter_langchain import FaremeterCallbackHandler
from faremeter_langchain._cache import FaremeterLLMCache

REPEATS, NUMBER = 7, 2_000
ARGS: dict[str, Any] = {
    "query": "price of gpt-4o per million tokens",
    "limit": 5,
    "filters": {"lang": "en"},
}
RESULT = [f"https://example.com/{i}" for i in range(5)]


def median_us(fn: Callable[[], object], number: int = NUMBER) -> float:
    fn()  # warm
    runs = timeit.repeat(fn, number=number, repeat=REPEATS)
    return statistics.median(runs) / number * 1e6


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def generations_messages() -> list[AIMessage]:
    return [
        AIMessage(
            content="The answer.",
            usage_metadata={"input_tokens": 1200, "output_tokens": 150, "total_tokens": 1350},
            response_metadata={"model_name": "gpt-4o-mini"},
        )
    ]


def web_search(query: str, limit: int = 5, filters: dict[str, str] | None = None) -> list[str]:
    return RESULT


def tool_hit_us(backend: CacheBackend) -> float:
    meter = make_test_meter(tools={"web_search": "0.005"}, deterministic=False)
    cached = ToolCache(meter=meter, backend=backend).wrap(web_search)
    cached(**ARGS)  # the miss that fills the entry
    us = median_us(lambda: cached(**ARGS))
    meter.close()
    return us


def main() -> None:
    rows: list[tuple[str, float]] = []
    backends: list[tuple[str, CacheBackend]] = [("memory", MemoryBackend())]
    tmp = Path(tempfile.mkdtemp())
    backends.append(("sqlite (file, WAL)", SQLiteBackend(tmp / "cache.db")))
    if redis_up():
        from faremeter.caching.backends.redis import RedisBackend

        prefix = f"fm-bench-{uuid.uuid4().hex[:8]}:"
        backends.append(("redis (localhost)", RedisBackend(prefix=prefix)))
    for label, backend in backends:
        rows.append((f"ToolCache hit, {label} (records a cached span)", tool_hit_us(backend)))
        backend.clear()
        backend.close()

    instant = median_us(lambda: web_search(**ARGS))

    # LLM caches: LangChain's own vs faremeter's BaseCache (memory), same generations.
    generations = [
        ChatGeneration(
            message=AIMessage(
                content="The answer.",
                usage_metadata={"input_tokens": 1200, "output_tokens": 150, "total_tokens": 1350},
                response_metadata={"model_name": "gpt-4o-mini"},
            )
        )
    ]
    prompt, llm_string = '[{"role": "user", "content": "hi"}]', "gpt-4o-mini---temperature=0"
    lc = InMemoryCache()
    lc.update(prompt, llm_string, generations)
    lc_us = median_us(lambda: lc.lookup(prompt, llm_string))
    meter = make_test_meter(deterministic=False)
    ours = FaremeterLLMCache(meter=meter)
    ours.update(prompt, llm_string, generations)
    ours_us = median_us(lambda: ours.lookup(prompt, llm_string))
    rc = ResponseCache(meter=meter)
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0,
    }
    rc.store(request, {"content": "The answer."}, usage=Usage(input_tokens=1200, output_tokens=150))
    rc_us = median_us(lambda: rc.lookup(request, record=False))

    # The whole cached invoke, with the faremeter handler attached in both runs.
    handler = FaremeterCallbackHandler(meter)
    config: Any = {"callbacks": [handler]}
    invoke_us: dict[str, float] = {}
    for label, llm_cache in (("InMemoryCache", InMemoryCache()), ("FaremeterLLMCache", ours)):
        model = GenericFakeChatModel(messages=iter(list(generations_messages())), cache=llm_cache)
        model.invoke("hi", config=config)  # the miss
        invoke_us[label] = median_us(lambda m=model: m.invoke("hi", config=config), number=300)
    meter.close()

    print(f"## Cache hit path ({datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()})\n")
    print("| path | median µs | × instant tool call |")
    print("|---|---:|---:|")
    print(f"| instant tool, no cache (the floor) | {instant:.2f} | 1.0 |")
    for label, us in rows:
        print(f"| {label} | {us:.2f} | {us / instant:.0f} |")
    print()
    print("| LLM cache lookup (hit) | median µs | × LangChain InMemoryCache |")
    print("|---|---:|---:|")
    print(f"| LangChain `InMemoryCache.lookup` (dict, records nothing) | {lc_us:.2f} | 1.0 |")
    for label, us in (
        ("`FaremeterLLMCache.lookup`, memory (JSON entry, generations revived once)", ours_us),
        ("`ResponseCache.lookup`, memory (key + JSON, record=False)", rc_us),
    ):
        print(f"| {label} | {us:.2f} | {us / lc_us:.0f} |")
    print()
    base = invoke_us["InMemoryCache"]
    print("| cached `model.invoke`, faremeter handler attached | median µs | × InMemoryCache |")
    print("|---|---:|---:|")
    for label, us in invoke_us.items():
        print(f"| `cache={label}(...)` | {us:.1f} | {us / base:.2f} |")


if __name__ == "__main__":
    main()
