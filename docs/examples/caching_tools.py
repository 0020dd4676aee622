"""Cache tool results and model responses, and see what the caches saved — runnable offline.

    uv run python docs/examples/caching_tools.py

A ``web_search`` tool priced at $0.005 per call is cached by content; 100
concurrent identical calls run it once. A model response is cached by exact
match. The cache report then shows hit rate and dollars saved per tool and per
model, and suggests a longer TTL where entries expire before they are reused.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from faremeter import Meter, PriceCatalog, ToolPrice, Usage
from faremeter.caching import MemoryBackend, ResponseCache, ToolCache, cache_report


class Clock:
    """A clock the example moves by hand, to show TTL expiry without waiting."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        return self.now


def main() -> dict[str, Any]:
    catalog = PriceCatalog.default().with_overrides(
        tools={
            "web_search": ToolPrice.per_call("0.005"),
            "stock_quote": ToolPrice.per_call("0.01"),
        }
    )
    meter = Meter(ledger="memory", catalog=catalog)
    clock = Clock()
    cache = ToolCache(
        ttl=3600,  # one hour for every tool...
        ttls={"stock_quote": 60},  # ...but quotes go stale after a minute
        exclude={"send_email"},  # side effects are never cached
        backend=MemoryBackend(timer=clock),  # or "sqlite:///cache.db", "redis://..."
        clock=clock,
        meter=meter,
    )
    runs: list[str] = []

    @cache.wrap
    def web_search(query: str, limit: int = 3) -> list[str]:
        runs.append(query)
        return [f"https://example.com/{query}/{i}" for i in range(limit)]

    @cache.wrap
    def stock_quote(symbol: str) -> float:
        runs.append(symbol)
        return 101.5

    with meter.trace("research", user_id="u-42"):
        # 100 agents ask the same thing at once: the tool runs once.
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(web_search, ["faremeter"] * 100))
        web_search(query="faremeter", limit=3)  # same key: argument spelling doesn't matter
        for _ in range(4):  # asked every 2 minutes: the 60 s TTL is always over
            clock.now += 120
            stock_quote("ACME")

    # Exact-match response cache: only deterministic requests (temperature 0).
    responses = ResponseCache(ttl=86_400, meter=meter)
    request = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Summarise faremeter in one line."}],
        "temperature": 0,
    }
    usage = Usage(input_tokens=1_200, output_tokens=80)
    with meter.trace("summary", user_id="u-42"):
        if responses.lookup(request) is None:
            meter.record_llm("gpt-4o", usage)  # the real call, priced as usual
            responses.store(request, {"content": "See, cap and cut agent costs."}, usage=usage)
        for _ in range(4):
            assert responses.lookup(request) is not None  # each hit: one cached span

    report = cache_report(meter)
    print(f"the tools ran {len(runs)} times for 105 calls")
    for row in report.rows:
        print(
            f"{row.kind:4} {row.name:11} hits {row.hits:3}/{row.lookups:<3} "
            f"hit rate {row.hit_rate:4.0%}  saved ${row.saved.normalize():f}"
        )
    for suggestion in report.suggestions:
        print("suggestion:", suggestion.message)
    print(f"total saved: ${report.saved.normalize():f}")
    meter.close()
    return {"runs": runs, "report": report, "saved": report.saved}


if __name__ == "__main__":
    main()
