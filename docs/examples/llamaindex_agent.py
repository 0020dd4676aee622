"""Price a LlamaIndex FunctionAgent and a RAG query with faremeter — runnable offline.

    uv run python docs/examples/llamaindex_agent.py

The model is faremeter_llamaindex.testing.ScriptedLLM, a function-calling LLM
that replays turns and reports their usage in ``ChatResponse.raw["usage"]``
exactly as llama-index-llms-openai does. Swap in ``OpenAI(model="gpt-4o")`` and
``OpenAIEmbedding()`` and nothing else changes.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.tools import FunctionTool

import faremeter
import faremeter_llamaindex
from faremeter import Meter, PriceCatalog, ToolPrice, Usage
from faremeter_llamaindex.testing import Reply, ScriptedLLM

# 1. A meter. Tool prices are per call; model prices come from the bundled catalog.
catalog = PriceCatalog.default().with_overrides(
    tools={"web_search": ToolPrice(price_per_call=Decimal("0.005"))}
)
meter = Meter(ledger="memory", catalog=catalog)

# 2. One call instruments every LlamaIndex component in the process.
instrumentation = faremeter_llamaindex.instrument(meter, environment="docs")


# 3. An ordinary LlamaIndex app: an agent with a tool that queries a RAG index.
index = VectorStoreIndex.from_documents(
    [Document(text="faremeter prices, attributes and caps what LLM agents cost.")],
    embed_model=MockEmbedding(embed_dim=8, model_name="text-embedding-3-small"),
)
rag = index.as_query_engine(  # pyright: ignore[reportUnknownMemberType]
    llm=ScriptedLLM(
        [Reply(text="It prices agent runs.", usage=Usage(input_tokens=900, output_tokens=40))]
    )
)


def web_search(query: str) -> str:
    """Search the web."""
    return "faremeter: see, cap and cut what LLM agents cost"


def docs_search(query: str) -> str:
    """Search the project documentation."""
    return str(rag.query(query))


llm = ScriptedLLM(
    [
        Reply(
            tool_calls=[("web_search", {"query": "faremeter"}), ("docs_search", {"query": "why?"})],
            usage=Usage(input_tokens=1_800, output_tokens=120),
        ),
        Reply(
            text="faremeter prices agent runs.",
            usage=Usage(input_tokens=2_400, output_tokens=200, cache_read_tokens=1_024),
        ),
    ],
    model="gpt-4o",
)
agent = FunctionAgent(
    name="researcher",
    tools=[FunctionTool.from_defaults(web_search), FunctionTool.from_defaults(docs_search)],
    llm=llm,
)


async def main() -> None:
    # 4. Attribute the run; stream its events as usual.
    with meter.trace("research", user_id="u1", workflow="deep") as t:
        handler = agent.run(user_msg="What does faremeter do?")  # pyright: ignore[reportDeprecated]
        async for _event in handler.stream_events():
            pass
        print(await handler)  # pyright: ignore[reportUnknownArgumentType]

    for depth, node in t.tree().walk():
        span = node.span
        tokens = f"{span.usage.input_tokens}/{span.usage.output_tokens}" if span.usage else ""
        indent = "  " * depth
        print(f"{indent}{span.kind.value:<9} {span.name:<28} {tokens:>10}  ${node.total_cost:.6f}")
    print(f"total ${t.cost:.6f}")


if __name__ == "__main__":
    with faremeter.attributes(team="docs"):
        asyncio.run(main())
