"""Entry point the core ``faremeter demo`` command calls when this package is installed."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from faremeter import Meter
from faremeter_langchain.demo.hints import command_prefix, next_commands
from faremeter_langchain.demo.render import render_report
from faremeter_langchain.demo.report import DemoReport, build_report
from faremeter_langchain.demo.run import demo_budgets, demo_catalog, run_workload
from faremeter_langchain.demo.workload import DemoTask, make_tasks

__all__ = ["DEFAULT_SEED", "DEFAULT_TASKS", "DemoOptions", "main", "run_demo"]

DEFAULT_TASKS = 200
DEFAULT_SEED = 2026


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoOptions:
    """What to run."""

    tasks: int = DEFAULT_TASKS
    optimize: bool = True
    seed: int = DEFAULT_SEED


def run_demo(
    options: DemoOptions,
    *,
    meter: Meter,
    other: Meter,
    console: Console,
    hints: Sequence[tuple[str, str]] | Callable[[DemoReport], Sequence[tuple[str, str]]] = (),
    ledger: str = "the ledger",
) -> DemoReport:
    """Run the tasks both ways, record one run in ``meter``, print its report.

    Args:
        options: Tasks, seed, and which run is recorded (``optimize``).
        meter: Records the run reported on (the user's ledger).
        other: Records the comparison run (usually an in-memory meter).
        console: Where the progress bar and report go.
        hints: "Next:" commands, or a function of the report making them.
        ledger: How to name ``meter``'s ledger in the output.
    """
    tasks = make_tasks(options.tasks, seed=options.seed)
    label = "routed + cached" if options.optimize else "all gpt-4o, no cache"
    other_label = "all gpt-4o, no cache" if options.optimize else "routed + cached"
    with Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(f"running the agent ({label})", total=len(tasks))
        other_bar = progress.add_task(f"comparison run ({other_label})", total=len(tasks))

        def advance(which: TaskID) -> Callable[[DemoTask], None]:
            return lambda _task: progress.advance(which)

        result = run_workload(
            meter, tasks, optimize=options.optimize, seed=options.seed, on_task=advance(bar)
        )
        compared = run_workload(
            other, tasks, optimize=not options.optimize, seed=options.seed,
            on_task=advance(other_bar),
        )  # fmt: skip
    report = build_report(meter.ledger, result, other.ledger, compared)
    lines = hints(report) if callable(hints) else hints
    render_report(report, console, hints=lines, ledger=ledger)
    return report


def _console() -> Console:
    """A terminal's own width; 100 columns when piped (rich would assume 80)."""
    console = Console()
    return console if console.is_terminal else Console(width=100)


def main(args: argparse.Namespace) -> int:
    """``faremeter demo`` with LangGraph: the arguments come from the core CLI."""
    from faremeter.cli._context import ledger_url, load_cli_config, open_meter

    options = DemoOptions(tasks=args.tasks, optimize=not args.no_optimize, seed=args.seed)
    catalog = demo_catalog()
    meter = open_meter(args, must_exist=False, catalog=catalog, budgets=demo_budgets())
    other = Meter(ledger="memory", catalog=catalog, budgets=demo_budgets(), _register=False)
    url = ledger_url(args, load_cli_config(args))
    explicit = url if (getattr(args, "ledger", None) or getattr(args, "config", None)) else None
    prefix = command_prefix()
    try:
        report = run_demo(
            options,
            meter=meter,
            other=other,
            console=_console(),
            hints=lambda r: (
                []
                if url == "memory"
                else next_commands(
                    prefix, trace_id=r.top[0].trace_id if r.top else None, ledger=explicit
                )
            ),
            ledger=url,
        )
    finally:
        ok = meter.flush(timeout=60)
        meter.close()
        other.close()
    return 0 if ok and report.totals.total > 0 else 1
