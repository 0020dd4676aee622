"""The ``faremeter report --routed`` table (rich), kept beside the report it renders."""

from __future__ import annotations

from typing import Any

from faremeter.routing.savings import RoutedReport

__all__ = ["print_routed_report"]


def print_routed_report(console: Any, report: RoutedReport, window: str | None = None) -> None:
    """Print what the router chose per step and model, and the savings baseline."""
    from rich.table import Table

    from faremeter.cli._render import money

    if not report.rows:
        console.print(
            "[yellow]No routed calls in the ledger"
            + (f" for the last {window}" if window else "")
            + ": route calls with faremeter_llamaindex.RoutedLLM, faremeter_litellm's routed "
            "completion or its litellm.Router strategy.[/yellow]"
        )
        return
    title = "Routed calls: chosen model vs the route's most expensive candidate" + (
        f" (last {window})" if window else ""
    )
    table = Table(title=title)
    for col in ("step", "chosen", "called", "calls", "cost", "baseline", "baseline cost", "saved"):
        left = col in ("step", "chosen", "called", "baseline")
        table.add_column(col, justify="left" if left else "right")
    for r in report.rows:
        called = (r.model or "?") + (" (fallback)" if r.fallback else "")
        calls = str(r.calls) + (f" (+{r.unpriced} unpriced)" if r.unpriced else "")
        table.add_row(
            r.step or "(none)",
            r.chosen,
            called,
            calls,
            money(r.cost),
            r.baseline_model,
            money(r.baseline_cost),
            money(r.saved),
        )
    table.add_row(
        "[bold]total[/bold]",
        "",
        f"{report.fallback_calls} fallback" if report.fallback_calls else "",
        str(report.calls),
        money(report.cost),
        "",
        money(report.baseline_cost),
        f"[bold]{money(report.saved)}[/bold]",
    )
    console.print(table)
    console.print(
        "[dim]baseline = the same recorded usage priced on the route's most expensive capable "
        "candidate (a computed counterfactual, not a measured call)[/dim]"
    )
