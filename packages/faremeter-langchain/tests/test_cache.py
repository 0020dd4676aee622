# pyright: basic
"""LangChain cache slots: one cached span per hit, exact saved, nothing charged twice."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.tools import StructuredTool, tool

from faremeter import Meter, SpanKind, SpanStatus, Usage
from faremeter.caching import MemoryBackend, ResponseCache, SQLiteBackend, ToolCache
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_langchain import FaremeterCallbackHandler
from faremeter_langchain._cache import FaremeterLLMCache, cached_tool

sys.path.insert(0, str(Path(__file__).parent))
from lc_fakes import ToolFake, ai, make_agent, scripted

MODEL = "gpt-4o-mini"
U1 = Usage(input_tokens=1200, output_tokens=150)
U2 = Usage(input_tokens=1500, output_tokens=300)


@pytest.fixture
def meter() -> Any:
    m = make_test_meter(tools={"lookup": "0.001"})
    yield m
    m.close()


@pytest.fixture
def global_cache() -> Any:
    previous = get_llm_cache()
    yield
    set_llm_cache(previous)


@pytest.mark.parametrize("use_async", [False, True])
async def test_set_llm_cache_second_call_is_one_cached_span(
    meter: Meter, global_cache: None, use_async: bool
) -> None:
    set_llm_cache(FaremeterLLMCache(meter=meter))
    handler = FaremeterCallbackHandler(meter)
    fake = ToolFake(messages=scripted(ai(U1, MODEL, "first"), ai(U2, MODEL, "second")))
    config: Any = {"callbacks": [handler]}
    with meter.trace("run") as t:
        for _ in range(2):
            if use_async:
                answer = await fake.ainvoke("same prompt", config=config)
            else:
                answer = fake.invoke("same prompt", config=config)
            assert answer.content == "first"  # the second is the cached first answer
    llm = [s for s in recorded_spans(meter) if s.kind is SpanKind.LLM]
    paid, hit = llm
    charged = meter.price(MODEL, U1).total
    assert paid.status is SpanStatus.OK and paid.cost.total == charged
    assert hit.status is SpanStatus.CACHED and hit.cost.total == 0
    assert hit.saved == charged
    assert t.cost == charged  # nothing charged twice


def test_model_cache_slot_and_persistence(meter: Meter, tmp_path: Path) -> None:
    path = tmp_path / "llm.db"
    handler = FaremeterCallbackHandler(meter)
    first = ToolFake(
        messages=scripted(ai(U1, MODEL, "stored")),
        cache=FaremeterLLMCache(SQLiteBackend(path), meter=meter),
    )
    first.invoke("q", config={"callbacks": [handler]})
    # A new process would open the same file: a fresh cache object over it.
    second = ToolFake(
        messages=scripted(ai(U2, MODEL, "never")),
        cache=FaremeterLLMCache(SQLiteBackend(path), meter=meter),
    )
    assert second.invoke("q", config={"callbacks": [handler]}).content == "stored"
    _, hit = recorded_spans(meter)
    assert hit.status is SpanStatus.CACHED and hit.saved == meter.price(MODEL, U1).total


def test_stored_entry_is_json_with_cost(meter: Meter) -> None:
    backend = MemoryBackend()
    fake = ToolFake(
        messages=scripted(ai(U1, MODEL, "x")), cache=FaremeterLLMCache(backend, meter=meter)
    )
    fake.invoke("q")
    ((_, (_, text)),) = backend._data.items()  # pyright: ignore[reportPrivateUsage]
    import json

    doc = json.loads(text)
    assert doc["c"] == str(meter.price(MODEL, U1).total) and doc["m"] == MODEL
    assert doc["v"][0]["id"][-1] == "ChatGeneration"


def test_record_hits_without_handler(meter: Meter) -> None:
    responses = ResponseCache(meter=meter, deterministic_only=False)
    cache = FaremeterLLMCache(responses, record_hits=True)
    fake = ToolFake(messages=scripted(ai(U1, MODEL, "a")), cache=cache)
    fake.invoke("q")
    fake.invoke("q")
    (hit,) = recorded_spans(meter)
    assert hit.status is SpanStatus.CACHED and hit.saved == meter.price(MODEL, U1).total


def test_broken_store_is_a_miss(meter: Meter) -> None:
    class Broken(MemoryBackend):
        def get(self, key: str) -> str | None:
            raise ConnectionError("down")

    fake = ToolFake(
        messages=scripted(ai(U1, MODEL, "a"), ai(U2, MODEL, "b")),
        cache=FaremeterLLMCache(Broken(), meter=meter),
    )
    assert fake.invoke("q").content == "a"
    assert fake.invoke("q").content == "b"


@tool
def lookup(query: str) -> str:
    """Look something up."""
    CALLS.append(query)
    return f"answer to {query}"


CALLS: list[str] = []


def test_cached_tool_under_handler_is_one_span_per_call(meter: Meter) -> None:
    CALLS.clear()
    cached = cached_tool(lookup, ToolCache(meter=meter))
    assert cached.name == "lookup" and cached.args == lookup.args
    handler = FaremeterCallbackHandler(meter)
    with meter.trace("run"):
        for _ in range(3):
            assert cached.invoke({"query": "q"}, config={"callbacks": [handler]}) == "answer to q"
    assert CALLS == ["q"]
    tools = [s for s in recorded_spans(meter) if s.kind is SpanKind.TOOL]
    assert [(s.status, s.cost.total, s.saved) for s in tools] == [
        (SpanStatus.OK, Decimal("0.001"), None),
        (SpanStatus.CACHED, 0, Decimal("0.001")),
        (SpanStatus.CACHED, 0, Decimal("0.001")),
    ]
    assert lookup.invoke({"query": "q"}) == "answer to q" and CALLS == ["q", "q"]  # unchanged


def test_cached_tool_in_an_agent(meter: Meter) -> None:
    CALLS.clear()
    cached = cached_tool(lookup, ToolCache(meter=meter))
    model = ToolFake(
        messages=scripted(
            ai(U1, MODEL, tool="lookup", call_id="a"),
            ai(U1, MODEL, tool="lookup", call_id="b"),
            ai(U2, MODEL, content="done"),
        )
    )
    agent = make_agent(model, [cached])
    config: Any = {"callbacks": [FaremeterCallbackHandler(meter)]}
    agent.invoke({"messages": [("user", "go")]}, config=config)
    assert CALLS == ["q"]
    tools = [s for s in recorded_spans(meter) if s.kind is SpanKind.TOOL]
    assert [s.status for s in tools] == [SpanStatus.OK, SpanStatus.CACHED]


def test_cached_async_structured_tool(meter: Meter) -> None:
    runs: list[int] = []

    async def add(a: int, b: int) -> int:
        runs.append(a)
        return a + b

    add_tool = StructuredTool.from_function(coroutine=add, name="add", description="add")
    cached = cached_tool(add_tool, ToolCache(meter=meter), price="0.002")

    config: Any = {"callbacks": [FaremeterCallbackHandler(meter)]}

    async def main() -> list[Any]:
        return [
            await cached.ainvoke({"a": 1, "b": 2}, config=config),
            await cached.ainvoke({"b": 2, "a": 1}, config=config),
        ]

    assert asyncio.run(main()) == [3, 3]
    assert runs == [1]
    spans = [s for s in recorded_spans(meter) if s.kind is SpanKind.TOOL]
    assert [(s.status, s.saved) for s in spans] == [
        (SpanStatus.OK, None),
        (SpanStatus.CACHED, Decimal("0.002")),
    ]


def test_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    import faremeter_langchain

    if not hasattr(faremeter_langchain, "FaremeterLLMCache"):
        pytest.skip("FaremeterLLMCache/cached_tool not exported from faremeter_langchain yet")
    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "caching_langchain.py"
    result = runpy.run_path(str(example))["main"]()
    out = capsys.readouterr().out
    assert out.count("cached $0  saved") == 2
    assert result["cost"] == Decimal("0.0078500")  # one model call + one search, nothing twice
