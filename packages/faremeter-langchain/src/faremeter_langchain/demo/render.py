"""The demo report on a terminal: rich tables that fit 100 columns."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from rich.columns import Columns
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from faremeter_langchain.demo.profile import BASELINE_MODEL, TASK_CAP
from faremeter_langchain.demo.report import DemoReport
from faremeter_langchain.demo.workload import USERS

__all__ = ["render_report", "usd"]

_CENT = Decimal("0.01")
_TENTH_CENT = Decimal("0.0001")


def usd(amount: Decimal) -> str:
    """Dollars for reading: cents from $1 up, four decimals below (sub-cent task costs)."""
    places = _CENT if abs(amount) >= 1 else _TENTH_CENT
    return f"${amount.quantize(places, rounding=ROUND_HALF_UP):,}"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _pct(part: Decimal, whole: Decimal) -> str:
    return f"{(part / whole * 100):.0f}%" if whole else "-"


def render_report(
    report: DemoReport, console: Console, *, hints: Sequence[tuple[str, str]], ledger: str
) -> None:
    """Print the report and the commands to run next."""
    t = report.totals
    mode = (
        "optimised: router + tool cache" if t.optimized else "not optimised: all gpt-4o, no cache"
    )
    teams = {USERS.get(str(r.key), ("?",))[0] for r in report.by_user}
    console.print()
    console.print(
        f"[bold]Research agent on LangGraph[/bold] · {_n(report.tasks, 'task')} · "
        f"{_n(len(report.by_user), 'user')} in {_n(len(teams), 'team')} · {mode}"
    )
    console.print(f"Recorded {report.spans:,} spans to {ledger} (demo_run={t.run_id})")
    console.print(f"[bold]Total {usd(t.total)}[/bold] = LLM {usd(t.llm)} + tools {usd(t.tool)}")
    console.print(
        "Per task: "
        + "  ".join(f"p{round(q * 100)} {usd(v)}" for q, v in sorted(report.per_task.items()))
        + f"  (mean {usd(t.total / report.tasks)})"
    )

    users = Table(title="Cost by user", title_justify="left", box=None, pad_edge=False)
    for col, just in (("user", "left"), ("team", "left"), ("tasks", "right"), ("cost", "right")):
        users.add_column(col, justify=just, no_wrap=True)  # pyright: ignore[reportArgumentType]
    for row in report.by_user:
        team = USERS.get(str(row.key), ("?", "?"))[0]
        users.add_row(str(row.key), team, str(row.traces), usd(row.cost))
    steps = Table(title="Cost by step", title_justify="left", box=None, pad_edge=False)
    for col, just in (("step", "left"), ("calls", "right"), ("cost", "right"), ("share", "right")):
        steps.add_column(col, justify=just, no_wrap=True)  # pyright: ignore[reportArgumentType]
    for row in report.by_step:
        steps.add_row(str(row.key), f"{row.spans:,}", usd(row.cost), _pct(row.cost, t.total))
    console.print()
    console.print(Columns([users, steps], padding=(0, 6)))

    top = Table(title="Five most expensive traces", title_justify="left", box=None, pad_edge=False)
    for col, just in (("trace", "left"), ("task", "left"), ("user", "left"), ("cost", "right"),
                      ("", "left")):  # fmt: skip
        top.add_column(col, justify=just, no_wrap=True)  # pyright: ignore[reportArgumentType]
    for line in report.top:
        note = "[red]runaway, capped[/red]" if line.capped else ""
        top.add_row(line.trace_id, line.task_id, line.user_id, usd(line.cost), note)
    console.print()
    console.print(top)

    c = report.comparison
    console.print()
    console.print("[bold]Savings[/bold] (both runs: the same tasks and tokens)")
    console.print(
        f"  all {BASELINE_MODEL}, no cache {usd(c.baseline.total)} → routed + cached "
        f"{usd(c.optimized.total)}: [bold green]saved {usd(c.saved)}[/bold green] "
        f"({c.saved_fraction * 100:.1f}%)"
    )
    console.print(
        f"  routing: LLM {usd(c.baseline.llm)} → {usd(c.optimized.llm)} "
        f"(saved {usd(c.saved_routing)} vs all-{BASELINE_MODEL})"
    )
    if t.optimized:
        console.print(
            f"  tool cache: {report.cache_hits:,} of {report.tool_calls:,} calls hit "
            f"({report.cache_hit_rate:.0%}), {usd(report.cache_saved)} saved; "
            f"tools {usd(c.baseline.tool)} → {usd(c.optimized.tool)}"
        )
    else:
        console.print(
            f"  tool cache: off in this run; the cached run's tools cost {usd(c.optimized.tool)} "
            f"instead of {usd(c.baseline.tool)}"
        )

    console.print("[bold]Guardrails[/bold]")
    fell_back = ", ".join(f"{m} ×{n}" for m, n in sorted(report.fallback_models.items()))
    console.print(
        f"  rate limits: {_n(report.rate_limited, 'call')} got a 429 and fell back"
        + (f" to {fell_back}" if fell_back else "")
    )
    console.print(
        f"  budget denials: {_n(report.denials, 'call')} refused: "
        f"{_n(len(report.capped), 'runaway task')} stopped by the ${TASK_CAP} per-task cap"
    )
    looping = {a.subject for a in report.anomalies if a.kind == "anomaly.runaway_loop"}
    console.print(
        f"  anomalies caught: {_n(len(report.anomalies), 'runaway-loop alert')} in "
        f"{_n(len(looping), 'trace')} (same tool, same arguments, 5 times)"
    )

    console.print()
    if not hints:
        console.print(
            "Next: this run lived in memory; record to a file to explore it afterwards, "
            "e.g. [cyan]--ledger sqlite:///demo.db[/cyan]"
        )
        return
    console.print("[bold]Next:[/bold]")
    for command, what in hints:
        # Commands contain extras like faremeter[dashboard]: escape them, or
        # rich reads the brackets as markup and drops them.
        console.print(f"  [cyan]{escape(command)}[/cyan]", soft_wrap=True)
        console.print(f"      {escape(what)}")
