"""Cache a LlamaIndex FunctionTool by content — runnable offline.

    uv run python docs/examples/caching_llamaindex.py

``cached_function_tool`` returns a copy of the tool whose calls go through a
``ToolCache``; under ``instrument()`` a repeated call is one ``cached`` span
with the dollars it saved.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from faremeter import Meter, PriceCatalog, ToolPrice, Usage
from faremeter.caching import ToolCache
from faremeter_llamaindex import cached_function_tool, instrument
from faremeter_llamaindex.testing import Reply, ScriptedLLM


def lookup(query: str = "") -> str:
    """Look up a fact."""
    return f"facts about {query}"


def main() -> dict[str, Any]:
    catalog = PriceCatalog.default().with_overrides(tools={"lookup": ToolPrice.per_call("0.01")})
    meter = Meter(ledger="memory", catalog=catalog)
    tool = cached_function_tool(FunctionTool.from_defaults(lookup), ToolCache(ttl=600, meter=meter))
    usage = Usage(input_tokens=300, output_tokens=20)
    llm = ScriptedLLM(  # stands in for OpenAI(model="gpt-4o-mini")
        [
            Reply(tool_calls=[("lookup", {"query": "faremeter"})], usage=usage),
            Reply(tool_calls=[("lookup", {"query": "faremeter"})], usage=usage),
            Reply(text="faremeter prices agent runs.", usage=usage),
        ],
        model="gpt-4o-mini",
    )
    agent = FunctionAgent(tools=[tool], llm=llm, streaming=False)

    async def run() -> str:
        return str(await agent.run(user_msg="What is faremeter?"))

    with instrument(meter):
        answer = asyncio.run(run())
    meter.flush()
    tools = [s for s in meter.ledger.spans() if s.kind.value == "tool"]
    for span in tools:
        saved = f"  saved ${span.saved:f}" if span.saved is not None else ""
        print(f"tool {span.name} {span.status.value:6} ${span.cost.total:f}{saved}")
    print(answer)
    meter.close()
    return {"tools": tools}


if __name__ == "__main__":
    main()
