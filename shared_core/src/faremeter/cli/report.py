"""``faremeter report``: cost by any attribute, per-trace percentiles, top traces."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from faremeter.cli._render import money

_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
            "30d": timedelta(days=30)}  # fmt: skip


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "report", help="cost by an attribute, per-trace p50/p90/p99 and the top traces"
    )
    p.add_argument("--by", default="user_id",
                   help="attribute to group by: user_id, team, workflow, step, model, tool, "
                        "kind, status or any custom key (default: user_id)")  # fmt: skip
    p.add_argument("--percentiles-by", default="workflow",
                   help="root attribute for per-trace percentiles (default: workflow)")  # fmt: skip
    p.add_argument("--since", choices=sorted(_WINDOWS), help="only the last 1h / 24h / 7d / 30d")
    p.add_argument("--top", type=int, default=5, help="how many expensive traces to list")
    p.add_argument("--cache", action="store_true",
                   help="cache hit rate and saved per tool/model + TTL suggestions")  # fmt: skip
    p.add_argument("--paths", action="store_true",
                   help="most frequent and most expensive step/tool paths")  # fmt: skip
    p.add_argument("--outliers", action="store_true",
                   help="per-trace p50/p90/p99 by --percentiles-by and traces above --factor x "
                        "the median")  # fmt: skip
    p.add_argument("--factor", default="2", help="outlier rule: cost > FACTOR x median (default 2)")
    p.add_argument("--routed", action="store_true",
                   help="what the router chose per step/model and the saving against each "
                        "route's most expensive candidate")  # fmt: skip
    p.add_argument(
        "--ledger", help="ledger url (default: FAREMETER_LEDGER_URL or .faremeter/ledger.db)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the three tables."""
    from rich.console import Console
    from rich.table import Table

    from faremeter.meter import Meter

    console = Console()
    since = datetime.now(UTC) - _WINDOWS[args.since] if args.since else None
    meter = Meter(ledger=args.ledger)
    ledger = meter.ledger
    if getattr(args, "cache", False):
        from faremeter.caching.report import cache_report
        from faremeter.caching.report_table import print_cache_report

        print_cache_report(console, cache_report(ledger, since=since), args.since)
        meter.close()
        return 0
    if getattr(args, "routed", False):
        from faremeter.routing.savings import routed_report
        from faremeter.routing.savings_table import print_routed_report

        print_routed_report(console, routed_report(ledger, meter.catalog, since=since), args.since)
        meter.close()
        return 0
    if getattr(args, "paths", False) or getattr(args, "outliers", False):
        from faremeter.cli._report_analytics import print_outliers, print_paths

        if args.paths:
            print_paths(console, ledger, since, args.top)
        if args.outliers:
            print_outliers(console, ledger, since, args.percentiles_by, args.factor, args.top)
        meter.close()
        return 0

    rows = ledger.cost_by(args.by, since=since)
    t = Table(title=f"Cost by {args.by}" + (f" (last {args.since})" if args.since else ""))
    for col in (args.by, "cost", "spans", "traces", "unpriced", "input tok", "output tok"):
        t.add_column(col, justify="left" if col == args.by else "right")
    for r in rows:
        t.add_row(
            "(none)" if r.key is None else r.key, money(r.cost), str(r.spans), str(r.traces),
            str(r.unpriced) if r.unpriced else "", f"{r.input_tokens:,}", f"{r.output_tokens:,}",
        )  # fmt: skip
    console.print(t if rows else "[yellow]The ledger is empty: run `faremeter demo`.[/yellow]")

    pct = ledger.percentiles(by=args.percentiles_by, since=since)
    if pct:
        t = Table(title=f"Cost per trace by {args.percentiles_by}")
        for col in (args.percentiles_by, "traces", "p50", "p90", "p99", "max", "total"):
            t.add_column(col, justify="left" if col == args.percentiles_by else "right")
        for p in pct:
            q = p.quantiles
            t.add_row(
                "(none)" if p.key is None else p.key, str(p.traces), money(q.get(0.5)),
                money(q.get(0.9)), money(q.get(0.99)), money(p.max), money(p.total),
            )  # fmt: skip
        console.print(t)

    top = ledger.top_traces(args.top, since=since)
    if top:
        t = Table(title=f"Top {len(top)} traces")
        for col in ("trace", "root", "cost", "spans", "started (UTC)"):
            t.add_column(col)
        for tr in top:
            t.add_row(tr.trace_id, tr.root_name or "?", money(tr.cost), str(tr.spans),
                      tr.started.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
        console.print(t)
    meter.close()
    return 0
