"""``faremeter budgets``: limit, spent, in flight, remaining and projection per budget."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "budgets",
        help="show every budget: limit, spent, in flight, remaining, projected",
        description="Read the budgets of faremeter.toml ([[budgets]]) and their counters from"
        " the configured [budget_store] (SQLite or Redis; an in-process store has nothing"
        " to show from outside the process).",
    )
    p.add_argument("--config", metavar="FILE", help="faremeter.toml (default: ./faremeter.toml)")
    p.add_argument("--store", metavar="URL", help="override [budget_store] url")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _usd(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"${value.quantize(Decimal('0.0001')):,}"


def run(args: argparse.Namespace) -> int:
    """Print the status table (or JSON); exit 1 when there are no budgets."""
    from rich.console import Console
    from rich.table import Table

    from faremeter.budgets.config import load_budget_config
    from faremeter.budgets.manager import BudgetManager
    from faremeter.budgets.stores import StoreUnavailable

    budgets, store = load_budget_config(args.config)
    url = args.store or store.url
    console = Console()
    if not budgets:
        console.print("no budgets configured: add [[budgets]] to faremeter.toml", markup=False)
        return 1
    manager = BudgetManager(budgets, store=url, store_timeout_s=max(store.timeout_s, 2.0))
    try:
        rows = manager.status()
    except StoreUnavailable as exc:
        print(f"faremeter: error: budget store unavailable: {exc}", file=sys.stderr)
        return 2
    finally:
        manager.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    if url.strip() in ("memory", "memory://", "mem://"):
        console.print(
            "[yellow]budget store is in-process (memory): counters live inside the app;"
            " set [budget_store] url to sqlite:/// or redis:// to see them here[/]"
        )
    table = Table(title=f"Budgets ({url.split('?', 1)[0]})")
    for name, justify in (
        ("Budget", "left"),
        ("Subject", "left"),
        ("Action", "left"),
        ("Window", "left"),
        ("Limit", "right"),
        ("Spent", "right"),
        ("In flight", "right"),
        ("Remaining", "right"),
        ("Projected", "right"),
        ("Used", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        used = r.used_fraction
        style = "red" if used >= 1 else "yellow" if used >= Decimal("0.8") else ""
        over = r.projected is not None and r.projected > r.limit
        table.add_row(
            r.budget,
            r.subject or "-",
            r.action,
            r.window,
            _usd(r.limit),
            _usd(r.spent),
            _usd(r.reserved),
            _usd(r.remaining),
            f"[red]{_usd(r.projected)}[/]" if over else _usd(r.projected),
            f"{used:.0%}",
            style=style,
        )
    console.print(table)
    return 0
