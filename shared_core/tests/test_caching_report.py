"""Cache report: hit rate and saved per tool/model, and the TTL suggestion."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from faremeter import Meter, Usage
from faremeter.caching import MemoryBackend, ResponseCache, ToolCache, cache_report
from faremeter.cli import main
from faremeter.testing import make_test_meter


def echo(value: str) -> str:
    return value


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_report_hit_rate_saved_and_ttl_suggestion() -> None:
    meter: Meter = make_test_meter(tools={"web_search": "0.005", "read_page": "0.001"})
    clock = Clock()
    cache = ToolCache(meter=meter, clock=clock, ttl=10, backend=MemoryBackend(timer=clock))
    search = cache.wrap(echo, name="web_search")
    read = cache.wrap(echo, name="read_page")
    uncached = meter.priced_tool(name="calculator", price_per_call="0")(echo)

    # web_search: the same 4 queries come back every 20 s, after the 10 s TTL:
    # 1 hit (asked twice within the TTL), 12 misses of which 8 are repeated keys.
    for _ in range(3):
        clock.now += 20
        for q in ("a", "b", "c", "d"):
            search(q)
    search("a")
    # read_page: 1 miss, 3 hits
    for _ in range(4):
        read("u")
    uncached("1")

    report = cache_report(meter)
    web = report.row("web_search")
    page = report.row("read_page")
    assert web is not None and page is not None
    assert (web.hits, web.misses, web.repeated_misses) == (1, 12, 8)
    assert web.saved == Decimal("0.005") and web.repeated_miss_cost == Decimal("0.040")
    assert (page.hits, page.misses, page.saved) == (3, 1, Decimal("0.003"))
    assert page.hit_rate == 0.75
    assert report.row("calculator") is None  # not cached: no row
    assert report.saved == Decimal("0.008")
    (suggestion,) = report.suggestions
    assert suggestion.name == "web_search" and suggestion.potential_saving == Decimal("0.040")
    assert "8%" in suggestion.message and "TTL" in suggestion.message


def test_report_per_model_and_window() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter)
    req = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    meter.record_llm("gpt-4o", Usage(input_tokens=1_000, output_tokens=100))
    cache.store(req, "y", cost=Decimal("0.0035"))
    cache.lookup(req)
    cache.lookup(req)
    report = cache_report(meter.ledger)
    row = report.row("gpt-4o", kind="llm")
    assert row is not None and (row.hits, row.misses, row.saved) == (2, 1, Decimal("0.0070"))
    future = cache_report(meter, since=datetime(2100, 1, 1, tzinfo=UTC))
    assert future.rows == ()


def test_cli_report_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    meter = Meter(ledger=url, catalog=make_test_meter(tools={"web_search": "0.005"}).catalog)
    cache = ToolCache(meter=meter)
    search = cache.wrap(echo, name="web_search")
    for _ in range(3):
        search("a")
    meter.close()
    assert main(["report", "--cache", "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert "web_search" in out and "67%" in out and "$0.01" in out


def test_report_split_by_user() -> None:
    import faremeter

    meter = make_test_meter(tools={"web_search": "0.005"})
    cache = ToolCache(meter=meter)
    search = cache.wrap(echo, name="web_search")
    with faremeter.attributes(user_id="u1"):
        for _ in range(3):
            search("a")
    with faremeter.attributes(user_id="u2"):
        search("a")
    report = cache_report(meter, by="user_id")
    u1, u2 = report.row("web_search", group="u1"), report.row("web_search", group="u2")
    assert u1 is not None and (u1.hits, u1.misses, u1.saved) == (2, 1, Decimal("0.010"))
    assert u2 is not None and (u2.hits, u2.misses, u2.saved) == (1, 0, Decimal("0.005"))
    assert report.suggestions == ()
