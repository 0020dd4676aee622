# pyright: basic
"""A LangGraph agent on one routed chat model: each step on its rule's model, within budget.

Run: uv run python docs/examples/router_langchain.py   (offline: LangChain's fake chat
models stand in for ``ChatOpenAI(model=...)``; swap those in for real calls)
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import cycle
from typing import TypedDict

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph

import faremeter
from faremeter import BudgetExceeded
from faremeter.budgets import Budget
from faremeter.routing import Router
from faremeter.routing.savings import routed_report
from faremeter_langchain import FaremeterCallbackHandler, RoutedChatModel

meter = faremeter.Meter(ledger="memory")
handler = FaremeterCallbackHandler(meter)  # the chosen model's run is the priced span

router = Router(
    {"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]},
    steps={"parse": "gpt-4o-mini", "draft": "gpt-4o", "format": "gpt-4o-mini"},
    complexity=False,
)


def chat_model(name: str, input_tokens: int, output_tokens: int) -> GenericFakeChatModel:
    """Offline stand-in for ChatOpenAI(model=name): every answer reports this usage."""
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    reply = AIMessage(
        content=f"done by {name}", usage_metadata=usage, response_metadata={"model_name": name}
    )
    return GenericFakeChatModel(messages=cycle([reply]))


model = RoutedChatModel(
    router=router,
    models={
        "gpt-4o-mini": chat_model("gpt-4o-mini", 2_000, 300),
        "gpt-4o": chat_model("gpt-4o", 2_000, 300),
    },
)


class State(TypedDict):
    notes: list[str]


def step(name: str) -> Callable[[State], dict[str, list[str]]]:
    def node(state: State) -> dict[str, list[str]]:
        reply = model.invoke([HumanMessage(f"{name} the report")])
        return {"notes": [*state["notes"], f"{name}: {reply.content}"]}

    return node


graph = StateGraph(State)
previous = START
for name in ("parse", "draft", "format"):  # LangGraph's node name is the routing step
    graph.add_node(name, RunnableLambda(step(name)))
    graph.add_edge(previous, name)
    previous = name
graph.add_edge(previous, END)
agent = graph.compile()

with meter.trace("report") as trace:
    state = agent.invoke({"notes": []}, config={"callbacks": [handler]})
for note in state["notes"]:
    print(note)
print(f"trace cost: ${trace.cost}")

# A budget that cannot hold the call refuses it before any model is called.
tight = faremeter.Meter(ledger="memory", budgets=[Budget("tiny", limit="0.00001", window="trace")])
with tight.trace("too-big"):
    try:
        RoutedChatModel(router=router, models=model.models, meter=tight).invoke(
            "draft it", config={"metadata": {"step": "draft"}}, max_tokens=1_000
        )
    except BudgetExceeded as exc:
        print(f"denied before the call: {exc.budget}")

meter.flush()
report = routed_report(meter.ledger, meter.catalog)
print(f"routed calls: {report.calls}, cost ${report.cost}, all on gpt-4o ${report.baseline_cost}")
print(f"saved against the most expensive candidate: ${report.saved}")
