"""``faremeter outcomes``: cost per outcome (per resolved ticket, per report...)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from faremeter.cli._context import add_meter_options, open_meter
from faremeter.cli._render import money
from faremeter.cli._windows import WINDOWS

__all__ = ["register", "run"]

_MICRO = Decimal("0.000001")


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "outcomes", help="cost per recorded outcome, per workflow / agent / team"
    )
    p.add_argument("--outcome", help="only this outcome (default: every outcome)")
    p.add_argument("--by", default="workflow", help="group by (default: workflow)")
    p.add_argument("--since", choices=sorted(WINDOWS), help="only the last 1h / 24h / 7d / 30d")
    add_meter_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one row per (outcome, group)."""
    from rich.console import Console
    from rich.table import Table

    from faremeter.analytics.outcomes import cost_per_outcome

    since = datetime.now(UTC) - WINDOWS[args.since] if args.since else None
    meter = open_meter(args)
    try:
        rows = cost_per_outcome(meter.ledger, args.outcome, by=args.by, since=since)
    finally:
        meter.close()
    console = Console()
    if not rows:
        console.print(
            "[yellow]No outcomes recorded: call "
            "faremeter.analytics.record_outcome(meter, 'ticket_resolved', trace=t).[/yellow]"
        )
        return 0
    t = Table(title=f"Cost per outcome by {args.by}")
    for col in ("outcome", args.by, "outcomes", "spend", "per outcome"):
        t.add_column(col, justify="left" if col in ("outcome", args.by) else "right")
    for r in rows:
        unit = None if r.cost_per_outcome is None else r.cost_per_outcome.quantize(_MICRO)
        t.add_row(r.outcome, "(none)" if r.key is None else r.key, f"{r.outcomes:,}",
                  money(r.cost), money(unit))  # fmt: skip
    console.print(t)
    return 0
