"""``faremeter whatif``: recorded LLM calls repriced on another model."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from faremeter.cli._context import add_meter_options, open_meter
from faremeter.cli._render import money
from faremeter.cli._windows import WINDOWS

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "whatif", help="what recorded calls would have cost on another model"
    )
    p.add_argument("--model", required=True, help="the model to reprice the calls at")
    p.add_argument("--step", help="only calls of this step")
    p.add_argument("--from-model", help="only calls recorded on this model")
    p.add_argument("--workflow", help="only this workflow")
    p.add_argument("--since", choices=sorted(WINDOWS), help="only the last 1h / 24h / 7d / 30d")
    add_meter_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print recorded vs what-if cost, split by recorded model."""
    from rich.console import Console
    from rich.table import Table

    from faremeter.analytics.whatif import what_if

    since = datetime.now(UTC) - WINDOWS[args.since] if args.since else None
    where = {"workflow": args.workflow} if args.workflow else None
    meter = open_meter(args)
    try:
        w = what_if(
            meter.ledger, meter.catalog, model=args.model, step=args.step,
            from_model=args.from_model, since=since, where=where,
        )  # fmt: skip
    finally:
        meter.close()
    console = Console()
    scope = f" of step {args.step}" if args.step else ""
    if w.calls == 0:
        console.print(f"[yellow]No priced LLM calls{scope} to reprice.[/yellow]")
        return 0
    t = Table(title=f"What if the LLM calls{scope} had used {args.model}")
    for col in ("recorded model", "calls", "recorded", f"on {args.model}", "difference"):
        t.add_column(col, justify="left" if col == "recorded model" else "right")
    for r in w.rows:
        t.add_row(r.model, str(r.calls), money(r.recorded), money(r.what_if),
                  money(r.recorded - r.what_if))  # fmt: skip
    t.add_row("total", str(w.calls), money(w.recorded), money(w.what_if), money(w.savings))
    console.print(t)
    verb = "saved" if w.savings >= 0 else "cost an extra"
    console.print(
        f"{args.model} would have {verb} {money(abs(w.savings))} "
        f"({abs(w.savings_ratio):.0%}) on {w.calls} calls"
        + (f"; {w.skipped} calls could not be repriced" if w.skipped else "")
    )
    return 0
