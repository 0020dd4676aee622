"""``faremeter demo``: the LangGraph research agent over ~200 tasks, or the one-task fallback.

The full demo lives in the LangChain adapter (the core never imports a
framework): with ``faremeter[demo]`` installed, this command runs
``faremeter_langchain.demo``. Without it, it says how to get it and records
the framework-free single-task demo instead, so ``faremeter demo`` always
shows something real.
"""

from __future__ import annotations

import argparse
import importlib
from decimal import Decimal
from typing import Any

from faremeter.cli._render import money

__all__ = ["register", "run"]

DEFAULT_TASKS = 200
DEFAULT_SEED = 2026


def _tasks(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of tasks, got {text!r}"
        ) from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"--tasks must be between 1 and 10000, got {value}")
    return value


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    from faremeter.cli._context import add_meter_options

    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run a LangGraph research agent over ~200 tasks offline and report what it cost",
        description=(
            "Runs a 10-step research agent on fake chat models (offline) for ~200 tasks of "
            "several users, teams and workflows, records it to the ledger and prints the "
            "report: cost per task and user and step, cache and routing savings (computed "
            "against the same tasks run unoptimised), budget denials and anomalies."
        ),
    )
    add_meter_options(p)
    p.add_argument(
        "--tasks", type=_tasks, default=DEFAULT_TASKS, metavar="N",
        help=f"how many tasks to run (default: {DEFAULT_TASKS})",
    )  # fmt: skip
    p.add_argument(
        "--no-optimize", action="store_true",
        help="record the same tasks unrouted (all gpt-4o) and uncached; the optimised run "
        "becomes the comparison",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="workload seed (default: 2026)")
    p.add_argument(
        "--single", action="store_true",
        help="record one task of the framework-free agent instead (what runs without "
        "faremeter[demo]) and print its per-step table",
    )  # fmt: skip
    p.add_argument(
        "--model", default="gpt-4o", help="model of the single-task demo (default: gpt-4o)"
    )
    p.add_argument("--user", default="demo-user", help="user_id of the single-task demo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the LangGraph demo when installed, else the single-task one."""
    if args.single:
        return run_single(args)
    try:
        demo = importlib.import_module("faremeter_langchain.demo")
    except ImportError as exc:
        missing = exc.name or "faremeter_langchain"
        if not missing.startswith(("faremeter_langchain", "langgraph", "langchain")):
            raise
        print(
            f"The LangGraph demo needs faremeter-langchain and langgraph ({missing} is missing): "
            "pip install 'faremeter[demo]'. Showing the single-task demo instead."
        )
        return run_single(args)
    return int(demo.main(args))


def run_single(args: argparse.Namespace) -> int:
    """Record one run of the framework-free agent, then print a per-step table and totals."""
    from rich.console import Console
    from rich.table import Table

    from faremeter.cli._context import open_meter
    from faremeter.demo import run_research_agent
    from faremeter.spans import SpanKind

    console = Console()
    meter = open_meter(args, must_exist=False)
    trace = run_research_agent(meter, model=args.model, user_id=args.user)
    ok = meter.flush(timeout=30)
    tree = trace.tree()

    table = Table(title=f"Research agent on {args.model} — trace {trace.trace_id}")
    for col in ("step", "in tok", "out tok", "LLM", "tool", "total"):
        left = col in ("step", "tool")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    llm_total = tool_total = Decimal(0)
    rows: dict[str, dict[str, Any]] = {}
    for _, node in tree.walk():
        span = node.span
        step = str(span.attributes.get("step", ""))
        if not step:
            continue
        row = rows.setdefault(
            step, {"in": 0, "out": 0, "llm": Decimal(0), "tool": "", "tc": Decimal(0)}
        )
        cost = span.cost.total or Decimal(0)
        if span.kind is SpanKind.LLM and span.usage is not None:
            row["in"] += span.usage.input_tokens
            row["out"] += span.usage.output_tokens
            row["llm"] += cost
            llm_total += cost
        elif span.kind is SpanKind.TOOL:
            row["tool"] = span.name
            row["tc"] += cost
            tool_total += cost
    for step, r in rows.items():
        table.add_row(
            step, f"{r['in']:,}", f"{r['out']:,}", money(r["llm"]),
            f"{r['tool']} {money(r['tc'])}" if r["tool"] else "-", money(r["llm"] + r["tc"]),
        )  # fmt: skip
    table.add_section()
    table.add_row(
        "total",
        f"{sum(r['in'] for r in rows.values()):,}",
        f"{sum(r['out'] for r in rows.values()):,}",
        money(llm_total), money(tool_total), money(llm_total + tool_total),
    )  # fmt: skip
    console.print(table)
    console.print(
        f"LLM {money(llm_total)} + tools {money(tool_total)} = [bold]{money(trace.cost)}[/bold]"
        f" per task; recorded to the ledger{'' if ok else ' (flush timed out!)'}."
    )
    console.print(
        "Next: [cyan]faremeter report --by step[/cyan] · "
        f"[cyan]faremeter trace {trace.trace_id}[/cyan]"
    )
    meter.close()
    return 0 if ok else 1
