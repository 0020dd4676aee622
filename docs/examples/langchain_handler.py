"""Price a LangGraph agent with FaremeterCallbackHandler — runnable offline.

    uv run python docs/examples/langchain_handler.py

The model is LangChain's GenericFakeChatModel replaying messages that carry
``usage_metadata`` exactly as ChatOpenAI / ChatAnthropic report it; swap in a
real chat model and nothing else changes.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from faremeter import Meter, PriceCatalog, ToolPrice
from faremeter_langchain import FaremeterCallbackHandler


class FakeChatModel(GenericFakeChatModel):
    """Stands in for ChatOpenAI(model="gpt-4o"); tools are ignored by the fake."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeChatModel:  # type: ignore[override]
        return self


def usage(inp: int, out: int) -> dict[str, int]:
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


model = FakeChatModel(
    messages=iter(
        [
            AIMessage(
                content="",
                tool_calls=[{"name": "web_search", "args": {"query": "faremeter"}, "id": "c1"}],
                usage_metadata=usage(1_800, 120),
                response_metadata={"model_name": "gpt-4o-2024-08-06"},
            ),
            AIMessage(
                content="faremeter prices agent runs.",
                usage_metadata=usage(2_400, 200),
                response_metadata={"model_name": "gpt-4o-2024-08-06"},
            ),
        ]
    )
)


@tool
def web_search(query: str) -> str:
    """Search the web."""
    return "faremeter: see, cap and cut what LLM agents cost"


def build_agent() -> Any:
    bound = model.bind_tools([web_search])
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [bound.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([web_search]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile(name="research-agent")


# A real app uses Meter() (SQLite ledger at .faremeter/ledger.db); the example
# keeps everything in memory and prices the search tool at $0.005 per call.
catalog = PriceCatalog.default().with_overrides(tools={"web_search": ToolPrice.per_call("0.005")})
meter = Meter(ledger="memory", catalog=catalog)
handler = FaremeterCallbackHandler(meter, environment="docs")

build_agent().invoke(
    {"messages": [("user", "What is faremeter?")]},
    config={"callbacks": [handler], "metadata": {"user_id": "u-42", "workflow": "research"}},
)

meter.flush()
spans = meter.ledger.spans()
tree = meter.ledger.trace_tree(spans[0].trace_id)
for depth, node in tree.walk():
    span = node.span
    print(f"{'  ' * depth}{span.kind.value:<6} {span.name:<16} ${node.total_cost:.6f}")
print("total:", f"${tree.total_cost:.6f}", "| user:", spans[0].attributes["user_id"])
for row in meter.ledger.cost_by("step"):
    print(f"step {row.key!s:<8} ${row.cost:.6f}")
