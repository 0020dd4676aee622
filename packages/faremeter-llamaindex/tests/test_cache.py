# pyright: basic
"""A cached FunctionTool: one span per call, hits cached with saved, sync and async."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from faremeter import Meter, SpanKind, SpanStatus, Usage
from faremeter.caching import ToolCache
from faremeter.testing import recorded_spans
from faremeter_llamaindex import instrument
from faremeter_llamaindex._cache import cached_function_tool
from faremeter_llamaindex.testing import Reply, ScriptedLLM

MODEL = "gpt-4o-mini"
U = Usage(input_tokens=100, output_tokens=10)


def tools_of(meter: Meter) -> list[Any]:
    return [s for s in recorded_spans(meter) if s.kind is SpanKind.TOOL]


def test_cached_tool_in_a_function_agent(tmeter: Meter) -> None:
    runs: list[str] = []

    def lookup(query: str = "") -> str:
        """Look something up."""
        runs.append(query)
        return f"found {query}"

    tool = cached_function_tool(FunctionTool.from_defaults(lookup), ToolCache(meter=tmeter))
    llm = ScriptedLLM(
        [
            Reply(tool_calls=[("lookup", {"query": "x"})], usage=U),
            Reply(tool_calls=[("lookup", {"query": "x"})], usage=U),
            Reply(text="done", usage=U),
        ],
        model=MODEL,
    )
    agent = FunctionAgent(tools=[tool], llm=llm, streaming=False)

    async def main() -> str:
        return str(await agent.run(user_msg="go"))

    with instrument(tmeter):
        assert asyncio.run(main()) == "done"
    assert runs == ["x"]
    spans = tools_of(tmeter)
    assert [(s.status, s.cost.total, s.saved) for s in spans] == [
        (SpanStatus.OK, Decimal("0.001"), None),
        (SpanStatus.CACHED, 0, Decimal("0.001")),
    ]
    assert spans[0].parent_span_id == spans[1].parent_span_id  # same agent, one span per call


def test_sync_and_async_calls_without_instrumentation(tmeter: Meter) -> None:
    runs: list[int] = []

    def add(a: int = 1, b: int = 2) -> int:
        """Add."""
        runs.append(a)
        return a + b

    original = FunctionTool.from_defaults(add)
    tool = cached_function_tool(original, ToolCache(meter=tmeter))
    assert tool.call(a=2, b=3).raw_output == 5
    assert asyncio.run(tool.acall(b=3, a=2)).raw_output == 5
    assert runs == [2]
    assert [s.status for s in tools_of(tmeter)] == [SpanStatus.OK, SpanStatus.CACHED]
    assert tools_of(tmeter)[1].saved == Decimal("0.002")
    assert original.call(a=2, b=3).raw_output == 5 and runs == [2, 2]  # original unchanged
    assert tool.metadata.name == "add" and tool.metadata.fn_schema == original.metadata.fn_schema


def test_async_function_tool(tmeter: Meter) -> None:
    runs: list[str] = []

    async def delegate(task: str = "") -> str:
        """Delegate."""
        runs.append(task)
        return task.upper()

    tool = cached_function_tool(
        FunctionTool.from_defaults(async_fn=delegate), ToolCache(meter=tmeter), price="0.01"
    )

    async def main() -> list[Any]:
        first = await tool.acall(task="t")
        second = await tool.acall(task="t")
        return [first.raw_output, second.raw_output]

    assert asyncio.run(main()) == ["T", "T"]
    assert tool.call(task="t").raw_output == "T"  # the sync face hits too
    assert runs == ["t"]
    hits = [s for s in tools_of(tmeter) if s.status is SpanStatus.CACHED]
    assert [s.saved for s in hits] == [Decimal("0.01"), Decimal("0.01")]


def test_docs_example_runs() -> None:
    import runpy
    from pathlib import Path

    import pytest

    import faremeter_llamaindex

    if not hasattr(faremeter_llamaindex, "cached_function_tool"):
        pytest.skip("cached_function_tool not exported from faremeter_llamaindex yet")
    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "caching_llamaindex.py"
    result = runpy.run_path(str(example))["main"]()
    assert [(s.status, s.saved) for s in result["tools"]] == [
        (SpanStatus.OK, None),
        (SpanStatus.CACHED, Decimal("0.01")),
    ]
