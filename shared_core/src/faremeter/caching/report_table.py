"""The ``faremeter report --cache`` tables (rich), kept beside the report they render."""

from __future__ import annotations

from typing import Any

from faremeter.caching.report import CacheReport

__all__ = ["print_cache_report"]


def print_cache_report(console: Any, report: CacheReport, window: str | None = None) -> None:
    """Print hit rate and saved per tool and model, then the TTL suggestions."""
    from rich.table import Table

    from faremeter.cli._render import money

    if not report.rows:
        console.print(
            "[yellow]No cache activity in the ledger"
            + (f" for the last {window}" if window else "")
            + ": wrap tools with faremeter.ToolCache or models with ResponseCache.[/yellow]"
        )
        return
    title = "Cache hit rate and savings" + (f" (last {window})" if window else "")
    table = Table(title=title)
    for col in ("kind", "tool / model", "lookups", "hits", "hit rate", "saved", "repeated misses"):
        table.add_column(col, justify="left" if col in ("kind", "tool / model") else "right")
    for r in report.rows:
        saved = money(r.saved) + (f" (+{r.unpriced_hits} unpriced)" if r.unpriced_hits else "")
        table.add_row(
            r.kind,
            r.name,
            str(r.lookups),
            str(r.hits),
            f"{r.hit_rate:.0%}",
            saved,
            str(r.repeated_misses) if r.repeated_misses else "",
        )
    table.add_row(
        "", "total", "", str(report.hits), f"{report.hit_rate:.0%}", money(report.saved), ""
    )
    console.print(table)
    for s in report.suggestions:
        console.print(f"[bold]Suggestion:[/bold] {s.message}")
