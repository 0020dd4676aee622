"""The ``--paths`` and ``--outliers`` views of ``faremeter report``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from faremeter.cli._render import money
from faremeter.ledger import Ledger

__all__ = ["print_outliers", "print_paths"]

_MICRO = Decimal("0.000001")


def _round(amount: Decimal) -> Decimal:
    """Averages are exact fractions; a millionth of a dollar is enough on screen."""
    return amount.quantize(_MICRO)


def print_paths(console: Any, ledger: Ledger, since: datetime | None, top: int) -> None:
    """Most frequent and most expensive step/tool sequences."""
    from rich.table import Table

    from faremeter.analytics.paths import path_analysis

    report = path_analysis(ledger, top=top, since=since)
    if not report.traces:
        console.print("[yellow]No traces with steps or tools in this window.[/yellow]")
        return
    for title, rows in (
        ("Most frequent paths", report.most_frequent),
        ("Most expensive paths", report.most_expensive),
    ):
        t = Table(title=f"{title} ({report.traces} traces, {money(report.total)})")
        for col in ("path", "traces", "total", "mean", "max", "share"):
            t.add_column(col, justify="left" if col == "path" else "right")
        for p in rows:
            t.add_row(p.label, str(p.traces), money(p.total), money(_round(p.mean)), money(p.max),
                      f"{p.share:.1%}")  # fmt: skip
        console.print(t)


def print_outliers(
    console: Any, ledger: Ledger, since: datetime | None, by: str, factor: str, limit: int
) -> None:
    """Traces costing more than ``factor`` x their group's median, in red."""
    from rich.table import Table

    from faremeter.analytics.distribution import distribution

    rows = distribution(ledger, by=by, factor=factor, outlier_limit=limit, since=since)
    if not rows:
        console.print("[yellow]The ledger is empty: run `faremeter demo`.[/yellow]")
        return
    t = Table(title=f"Cost per trace by {by} (outlier: > {factor}x the median)")
    for col in (by, "traces", "p50", "p90", "p99", "max", "outliers"):
        t.add_column(col, justify="left" if col == by else "right")
    for r in rows:
        t.add_row("(none)" if r.key is None else r.key, str(r.traces), money(r.p50),
                  money(r.p90), money(r.p99), money(r.max), str(len(r.outliers)))  # fmt: skip
    console.print(t)
    found = [o for r in rows for o in r.outliers]
    if not found:
        console.print("No outliers.")
        return
    t = Table(title=f"Outlier traces (most expensive {len(found)})")
    for col in ("trace", by, "root", "cost", "median", "x median", "started (UTC)"):
        t.add_column(col)
    for o in sorted(found, key=lambda o: (-o.cost, o.trace_id)):
        t.add_row(o.trace_id, o.key or "(none)", o.root_name or "?", f"[red]{money(o.cost)}[/red]",
                  money(o.median), "-" if o.ratio is None else f"{o.ratio:.1f}",
                  o.started.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    console.print(t)
