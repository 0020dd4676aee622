"""``faremeter demo``: price and record seed 001's research agent."""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from faremeter.cli._render import money


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="record a 10-step research agent run into the ledger and price it step by step",
    )
    p.add_argument(
        "--ledger", help="ledger url (default: FAREMETER_LEDGER_URL or .faremeter/ledger.db)"
    )
    p.add_argument("--model", default="gpt-4o", help="model the agent uses (default: gpt-4o)")
    p.add_argument("--user", default="demo-user", help="user_id to attribute the run to")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Record the run, then print a per-step table and totals."""
    from rich.console import Console
    from rich.table import Table

    from faremeter.demo import run_research_agent
    from faremeter.meter import Meter
    from faremeter.spans import SpanKind

    console = Console()
    meter = Meter(ledger=args.ledger)
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
