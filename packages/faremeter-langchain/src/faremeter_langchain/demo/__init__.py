"""``faremeter demo``: a LangGraph research agent over ~200 tasks, offline.

Fake chat models report the research agent's per-step token profile (with
realistic variation) for a dozen users in three teams; some tasks loop until
their per-task budget stops them, some calls hit a rate limit and fall back,
repeated searches hit the tool cache and the router sends simple steps to a
cheap model. The report is read back from the ledger, and the optimised run
is compared with the same tasks run unrouted and uncached.
"""

from __future__ import annotations

from faremeter_langchain.demo.cli import DemoOptions, main, run_demo
from faremeter_langchain.demo.report import DemoReport, build_report
from faremeter_langchain.demo.run import RunResult, demo_budgets, demo_catalog, run_workload
from faremeter_langchain.demo.workload import DemoTask, make_tasks

__all__ = [
    "DemoOptions",
    "DemoReport",
    "DemoTask",
    "RunResult",
    "build_report",
    "demo_budgets",
    "demo_catalog",
    "main",
    "make_tasks",
    "run_demo",
    "run_workload",
]
