"""``faremeter suggest``: optimisation suggestions with evidence and dollar impact."""

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
        "suggest", help="what to change, computed from the ledger, largest saving first"
    )
    p.add_argument("--since", choices=sorted(WINDOWS), help="only the last 1h / 24h / 7d / 30d")
    p.add_argument("--workflow", help="only this workflow")
    p.add_argument(
        "--cheaper", action="append", default=[], metavar="MODEL=CHEAPER",
        help="also consider moving MODEL's calls to CHEAPER (repeatable)",
    )  # fmt: skip
    add_meter_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one row per suggestion."""
    from rich.console import Console
    from rich.table import Table

    from faremeter.analytics.suggestions import suggest

    cheaper: dict[str, str] = {}
    for pair in args.cheaper:
        model, sep, target = pair.partition("=")
        if not sep or not model or not target:
            raise ValueError(f"--cheaper expects MODEL=CHEAPER, got {pair!r}")
        cheaper[model] = target
    since = datetime.now(UTC) - WINDOWS[args.since] if args.since else None
    where = {"workflow": args.workflow} if args.workflow else None
    meter = open_meter(args)
    try:
        found = suggest(meter.ledger, meter.catalog, since=since, where=where, cheaper=cheaper)
    finally:
        meter.close()
    console = Console()
    if not found:
        console.print("[green]Nothing to suggest for this window.[/green]")
        return 0
    t = Table(title="Suggestions (impact: what it would have saved in the window)")
    for col in ("impact", "kind", "suggestion"):
        t.add_column(col, justify="right" if col == "impact" else "left")
    for s in found:
        t.add_row(money(s.impact), s.kind, s.title)
    console.print(t)
    return 0
