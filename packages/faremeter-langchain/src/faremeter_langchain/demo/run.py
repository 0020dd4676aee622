"""Run the workload through the agent into a meter: one optimised or baseline run.

Everything is recorded by the real components — the LangChain callback
handler prices each model and tool run, the per-task budget denies the call
that would cross it, the tool cache records its hits — and every span carries
``demo_run`` so a report over a shared ledger reads exactly this run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from faremeter import Budget, BudgetExceeded, Meter
from faremeter.alerts import Alert
from faremeter.analytics import AnomalyMonitor, LoopDetector
from faremeter.caching import ToolCache
from faremeter.pricing import PriceCatalog, ToolPrice
from faremeter_langchain import DEFAULT_METADATA_KEYS, FaremeterCallbackHandler
from faremeter_langchain._cache import cached_tool
from faremeter_langchain.demo.agent import AgentSetup, build_graph, make_router
from faremeter_langchain.demo.fakes import make_tools
from faremeter_langchain.demo.profile import TASK_CAP, TOOL_PRICES
from faremeter_langchain.demo.workload import DemoTask

__all__ = [
    "RUN_ATTRIBUTE",
    "RunResult",
    "demo_budgets",
    "demo_catalog",
    "new_run_id",
    "run_workload",
]

RUN_ATTRIBUTE = "demo_run"
"""Span attribute naming the demo run a span belongs to."""

RECURSION_LIMIT = 200
"""LangGraph's step limit, far above any task: the budget, not this, stops runaways."""


# Expected, and reported in the summary instead: LangChain logs every callback
# exception (the budget's denial) and the budget alerts log each refused call.
_QUIET = ("langchain_core.callbacks.manager", "faremeter.alerts", "faremeter.budgets")


@contextmanager
def _quiet_logs() -> Generator[None]:
    loggers = [logging.getLogger(name) for name in _QUIET]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def demo_catalog(base: PriceCatalog | None = None) -> PriceCatalog:
    """The bundled prices plus the demo's tool prices (web_search $0.005, read_page $0.001)."""
    catalog = base or PriceCatalog.default()
    return catalog.with_overrides(
        tools={name: ToolPrice.per_call(price) for name, price in TOOL_PRICES.items()}
    )


def demo_budgets() -> list[Budget]:
    """The per-task cap: $0.50 per trace, denied before the call that would cross it."""
    return [Budget("task-cap", limit=TASK_CAP, window="trace", action="deny", warn_at=())]


def new_run_id() -> str:
    """A fresh ``demo_run`` value."""
    return f"demo-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResult:
    """What one run did, beyond what its spans say."""

    run_id: str
    optimized: bool
    tasks: int
    capped: tuple[str, ...]
    """Task ids stopped by a budget denial."""
    anomalies: tuple[Alert, ...]
    """Runaway loops the live anomaly monitor caught."""


def run_workload(
    meter: Meter,
    tasks: Sequence[DemoTask],
    *,
    optimize: bool,
    seed: int,
    run_id: str | None = None,
    on_task: Callable[[DemoTask], None] | None = None,
) -> RunResult:
    """Run every task through the agent, recording into ``meter``.

    Args:
        meter: Needs the demo's tool prices (:func:`demo_catalog`) and budgets
            (:func:`demo_budgets`) for the numbers to mean what the report says.
        tasks: The workload (:func:`~faremeter_langchain.demo.workload.make_tasks`).
        optimize: Route cheap steps to a cheap model and cache tool calls;
            otherwise every step is gpt-4o and every tool runs.
        seed: The token plan's seed (the same for runs that are compared).
        run_id: ``demo_run`` stamped on every span (default: a fresh one).
        on_task: Called after each task (a progress bar).
    """
    run_id = run_id or new_run_id()
    tools = make_tools()
    router = None
    if optimize:
        cache = ToolCache(ttl=None, meter=meter)
        tools = {name: cached_tool(t, cache) for name, t in tools.items()}
        router = make_router()
    graph = build_graph(AgentSetup(tools, router, seed=seed))
    handler = FaremeterCallbackHandler(
        meter, metadata_keys=(*DEFAULT_METADATA_KEYS, "task_id"), demo_run=run_id
    )
    found: list[Alert] = []
    monitor = AnomalyMonitor(alerts=found.append, loops=LoopDetector(), detectors=("loops",))
    remove = monitor.attach(meter)
    capped: list[str] = []
    try:
        with _quiet_logs():
            for task in tasks:
                if _run_task(graph, handler, task):
                    capped.append(task.task_id)
                monitor.process_pending()
                if on_task is not None:
                    on_task(task)
    finally:
        remove()
        monitor.process_pending()
    meter.flush(timeout=60)
    return RunResult(
        run_id=run_id,
        optimized=optimize,
        tasks=len(tasks),
        capped=tuple(capped),
        anomalies=tuple(found),
    )


def _run_task(graph: Any, handler: FaremeterCallbackHandler, task: DemoTask) -> bool:
    """Run one task; ``True`` when a budget denial stopped it."""
    config = {
        "callbacks": [handler],
        "recursion_limit": RECURSION_LIMIT,
        "metadata": {
            "user_id": task.user_id,
            "team": task.team,
            "workflow": task.workflow,
            "task_id": task.task_id,
        },
    }
    try:
        graph.invoke({"task": task, "round": 0}, config=config)
    except BudgetExceeded:
        return True
    return False
