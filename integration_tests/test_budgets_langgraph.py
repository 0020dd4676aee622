"""Budgets enforced through the LangChain/LangGraph handler, before the model runs.

The fake model is priced at a known cost per call: input is free and 1,000
output tokens at $10/M cost exactly $0.01 — so the reservation (its worst case
at ``max_tokens=1000``) and the settled cost are the same $0.01.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool

from faremeter import Budget, BudgetExceeded, Meter, SpanKind, SpanStatus, Usage
from faremeter.budgets import BudgetManager
from faremeter.pricing import ModelPrice, PriceCatalog
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_langchain import FaremeterCallbackHandler

sys.path.insert(0, str(Path(__file__).parents[1] / "packages/faremeter-langchain/tests"))
from lc_fakes import ToolFake, ai, make_agent

MODEL = "fake-cent"
CALL = Usage(input_tokens=0, output_tokens=1000)
CENT = Decimal("0.01")


def priced_meter(*budgets: Budget) -> Meter:
    catalog = PriceCatalog.default().with_overrides(
        models={MODEL: ModelPrice(input_per_mtok=0, output_per_mtok=10)}
    )
    return make_test_meter(catalog=catalog, budgets=BudgetManager(list(budgets)))


class CentFake(ToolFake):
    """A chat model whose every call costs exactly one cent, capped at 1,000 output tokens."""

    model: str = MODEL
    max_tokens: int = 1000

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens}

    def _get_invocation_params(self, stop: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {
            **super()._get_invocation_params(stop=stop, **kwargs),
            "max_tokens": self.max_tokens,
        }


@tool
def web_search(query: str) -> str:
    """Search the web."""
    return "more to read"


def test_200_concurrent_graph_runs_against_a_one_dollar_budget() -> None:
    meter = priced_meter(Budget("global", limit="1.00", action="deny"))
    handler = FaremeterCallbackHandler(meter)
    model = CentFake(messages=itertools.repeat(ai(CALL, MODEL, "done")))
    graph = make_agent(model, [])

    async def one() -> str:
        try:
            await graph.ainvoke({"messages": [("user", "hi")]}, config={"callbacks": [handler]})
        except BudgetExceeded:
            return "denied"
        return "ran"

    async def main() -> list[str]:
        return list(await asyncio.gather(*(one() for _ in range(200))))

    outcomes = asyncio.run(main())
    assert outcomes.count("ran") == 100 and outcomes.count("denied") == 100
    spans = recorded_spans(meter)
    charged = [s for s in spans if s.kind is SpanKind.LLM and s.status is SpanStatus.OK]
    spent = sum((s.cost.total or Decimal(0) for s in charged), Decimal(0))
    assert len(charged) == 100 and spent == Decimal("1.00")
    assert (
        len([s for s in spans if s.status is SpanStatus.DENIED and s.kind is SpanKind.LLM]) == 100
    )
    [status] = meter.budgets.status()
    assert status.spent == Decimal("1.00") and status.reserved == 0


def test_a_trace_cap_stops_a_looping_agent_at_the_call_that_would_cross_it() -> None:
    meter = priced_meter(Budget("task-cap", limit="0.05", window="trace", action="deny"))
    # A runaway: the model asks for web_search forever.
    model = CentFake(
        messages=(ai(CALL, MODEL, tool="web_search", call_id=f"c{i}") for i in itertools.count())
    )
    graph = make_agent(model, [web_search])
    with pytest.raises(BudgetExceeded) as info:
        graph.invoke(
            {"messages": [("user", "research everything")]},
            config={"callbacks": [FaremeterCallbackHandler(meter)], "recursion_limit": 100},
        )
    assert info.value.budget == "task-cap"
    spans = recorded_spans(meter)
    llm = [s for s in spans if s.kind is SpanKind.LLM]
    paid = [s for s in llm if s.status is SpanStatus.OK]
    denied = [s for s in llm if s.status is SpanStatus.DENIED]
    assert len(paid) == 5 and len(denied) == 1, [s.status for s in llm]
    assert sum((s.cost.total or Decimal(0) for s in spans), Decimal(0)) == Decimal("0.05")
    assert denied[0].error_class == "budget" and denied[0].cost.total == 0
    assert len({s.trace_id for s in spans}) == 1
