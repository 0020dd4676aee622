"""The research agent as a LangGraph graph, optimised or not.

Ten nodes in a line (parse → plan → search → read ×2 → summarise → fact-check
search → read the source → draft → format); a task whose fact-check never
converges goes back from ``read_source`` to ``fact_check`` with a longer
conversation each round, until its per-task budget denies the next call.

Each node makes one model call and, for the search and reading steps, one
tool call. When optimised, the model comes from the router (a cheap model for
the simple steps) and the tools go through a :class:`~faremeter.caching.ToolCache`;
otherwise every call is gpt-4o and every tool runs. Either way the call goes
down a :class:`~faremeter.fallback.FallbackChain`, so a 429 moves on to the
next model.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Protocol, TypedDict

from langchain_core.messages import HumanMessage
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph

from faremeter.analytics import tool_args_hash
from faremeter.context import attributes
from faremeter.fallback import FallbackChain, RetryPolicy
from faremeter.fallback.policy import DEFAULT_ACTIONS, DEFAULT_RETRIES
from faremeter.routing import Router, RouteRequest
from faremeter_langchain.demo.fakes import DemoChatModel, prompt_text
from faremeter_langchain.demo.profile import (
    BASELINE_MODEL,
    FALLBACK_MODEL,
    ROUTING_STEPS,
    STEPS,
    TIERS,
    DemoStep,
)
from faremeter_langchain.demo.workload import DemoTask, step_plan

__all__ = ["AgentSetup", "ResearchState", "build_graph", "make_router", "tool_arguments"]

RETRY = RetryPolicy(
    retries={**DEFAULT_RETRIES, "rate_limit": 0},
    actions={**DEFAULT_ACTIONS, "budget": "raise"},
    jitter_s=0,
)
"""A 429 moves to the next model at once; a budget denial stops the task (a runaway
must not be continued on a cheaper model)."""


def _no_sleep(_: float) -> None:
    """The demo never waits: with no retries of the same model nothing would."""


class ResearchState(TypedDict):
    """What flows between the nodes."""

    task: DemoTask
    round: int


def tool_arguments(task: DemoTask, step: DemoStep) -> dict[str, str]:
    """The tool call a step makes: same topic, same query and pages."""
    if step.name == "web_search":
        return {"query": task.topic}
    if step.name == "fact_check":
        return {"query": f"fact check: {task.topic}"}
    if step.name == "read_page_1":
        return {"url": task.pages[0]}
    if step.name == "read_page_2":
        return {"url": task.pages[1]}
    return {"url": task.source}


class AgentSetup:
    """Models, tools and routing of one demo run.

    Args:
        tools: ``web_search`` and ``read_page`` (cached copies when optimising).
        router: Picks the model per step; ``None`` runs every step on gpt-4o.
        seed: Seeds the token plan (must match the other run's to compare).
    """

    def __init__(self, tools: Mapping[str, BaseTool], router: Router | None, *, seed: int) -> None:
        self.tools = tools
        self.router = router
        self.seed = seed
        self._chains: dict[tuple[str, ...], FallbackChain] = {}
        self._baseline = self._chain((BASELINE_MODEL, FALLBACK_MODEL))

    def _chain(self, models: tuple[str, ...]) -> FallbackChain:
        chain = self._chains.get(models)
        if chain is None:
            chain = self._chains[models] = FallbackChain(
                list(models), retry=RETRY, sleep=_no_sleep, deadline_s=None, max_attempts=3
            )
        return chain

    def call_model(self, task: DemoTask, step: DemoStep, round_: int) -> None:
        """One model call of ``step``: routed (or not), through the fallback chain."""
        plan = step_plan(task, step, round_, seed=self.seed)
        route: dict[str, Any] = {}
        chain = self._baseline
        if self.router is not None:
            decision = self.router.route(
                RouteRequest(
                    input_tokens=plan.input_tokens,
                    max_tokens=step.max_tokens,
                    attributes={"step": step.name},
                )
            )
            route = decision.as_attributes()
            chain = self._chain((decision.model, *decision.alternatives))
        prompt = [HumanMessage(prompt_text(plan.input_tokens))]
        first = True

        def call(model: str) -> Any:
            nonlocal first
            limited, first = first and step.name in task.rate_limited, False
            llm = DemoChatModel(
                model=model,
                max_tokens=step.max_tokens,
                input_tokens=plan.input_tokens,
                output_tokens=plan.output_tokens,
                rate_limited=limited,
            )
            return llm.invoke(prompt)

        with attributes(**route):
            chain.call(call, input_tokens=plan.input_tokens)

    def call_tool(self, task: DemoTask, step: DemoStep) -> None:
        """The step's tool call, stamped with its arguments' hash for loop detection."""
        if step.tool is None:
            return
        args = tool_arguments(task, step)
        with attributes(tool_args_hash=tool_args_hash(args)):
            self.tools[step.tool].invoke(args)


class _Node(Protocol):
    def __call__(self, state: ResearchState) -> dict[str, Any]: ...


def _node(setup: AgentSetup, step: DemoStep) -> _Node:
    def run(state: ResearchState) -> dict[str, Any]:
        task, round_ = state["task"], state["round"]
        setup.call_model(task, step, round_)
        setup.call_tool(task, step)
        if step.name == "read_source" and task.runaway:
            return {"round": round_ + 1}  # not verified: check again, with more context
        return {}

    return run


def _after_source(state: ResearchState) -> str:
    return "fact_check" if state["task"].runaway else "write_report"


def build_graph(setup: AgentSetup) -> Any:
    """The compiled LangGraph agent (named ``research-agent``: the root span's name)."""
    graph = StateGraph(ResearchState)
    for step in STEPS:
        # langgraph's own overloads mention CachePolicy[Unknown]
        graph.add_node(step.name, _node(setup, step))  # pyright: ignore[reportUnknownMemberType]
    names = [s.name for s in STEPS]
    graph.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        if a != "read_source":
            graph.add_edge(a, b)
    graph.add_conditional_edges("read_source", _after_source, ["fact_check", "write_report"])
    graph.add_edge(names[-1], END)
    return graph.compile(name="research-agent")  # pyright: ignore[reportUnknownMemberType]


def make_router() -> Router:
    """The seed's MODEL_ROUTING as a router: step rules only, no complexity scoring."""
    return Router(TIERS, steps=ROUTING_STEPS, default_tier="standard", complexity=False)
