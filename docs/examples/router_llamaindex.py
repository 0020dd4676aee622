"""A LlamaIndex FunctionAgent on a routed LLM: cheapest capable model per step, with fallback.

Run: uv run python docs/examples/router_llamaindex.py   (offline: scripted LLMs stand in
for OpenAI; swap in ``llama_index.llms.openai.OpenAI(model=...)`` for real calls)
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

import faremeter
import faremeter_llamaindex
from faremeter import Usage
from faremeter.fallback import RetryPolicy
from faremeter.routing import Router
from faremeter.routing.savings import routed_report
from faremeter_llamaindex import RoutedLLM
from faremeter_llamaindex.testing import Reply, ScriptedLLM

meter = faremeter.Meter(ledger="memory")
faremeter_llamaindex.instrument(meter)  # the chosen LLM's call is the priced span

router = Router(
    {"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]},
    steps={"lookup": "gpt-4o-mini", "write": "gpt-4o"},
    complexity=False,
)
TOOL_TURN = Usage(input_tokens=900, output_tokens=9)
cheap = ScriptedLLM(
    [
        Reply(tool_calls=[("add", {"a": 2, "b": 3})], usage=TOOL_TURN),
        Reply(text="2 + 3 = 5", usage=Usage(input_tokens=950, output_tokens=12)),
        Reply(error=TimeoutError("gpt-4o-mini timed out")),  # the third call fails...
    ],
    model="gpt-4o-mini",
)
strong = ScriptedLLM(
    [
        Reply(text="looked up by gpt-4o", usage=Usage(input_tokens=600, output_tokens=20)),
        Reply(text="A short report.", usage=Usage(input_tokens=1200, output_tokens=400)),
    ],
    model="gpt-4o",
)
llm = RoutedLLM(
    router,
    {"gpt-4o-mini": cheap, "gpt-4o": strong},
    meter=meter,
    retry=RetryPolicy(retries={}),  # move on at once (no retry of the same model)
)


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


agent = FunctionAgent(tools=[FunctionTool.from_defaults(add)], llm=llm)


async def lookup() -> str:
    handler: Any = agent.run(user_msg="what is 2 + 3?")  # pyright: ignore[reportDeprecated]
    return str(await handler)


with meter.trace("report-job") as t:
    with faremeter.attributes(step="lookup"):
        print("agent:", asyncio.run(lookup()))
    with faremeter.attributes(step="lookup"):  # ...so this call falls back to gpt-4o
        reply = llm.chat([ChatMessage(role="user", content="one more lookup")])
        print("fallback:", reply.message.content)
    with faremeter.attributes(step="write"):
        print("write:", llm.chat([ChatMessage(role="user", content="write it up")]).message.content)
meter.flush()

for span in meter.ledger.spans(kind="chain"):
    if span.name == "llamaindex.route":
        a = span.attributes
        print(f"route {a['route.model']:11} used {a['fallback.model']:11} {a['route.reason']}")
print(f"trace cost: ${t.cost}")

report = routed_report(meter.ledger, meter.catalog)
for row in report.rows:
    print(f"{row.step:7} chose {row.chosen:11} called {row.model:11} calls={row.calls} "
          f"cost=${row.cost} baseline({row.baseline_model})=${row.baseline_cost}")  # fmt: skip
print(f"saved against the most expensive candidate: ${report.saved}")
