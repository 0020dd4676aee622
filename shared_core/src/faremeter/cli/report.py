"""``faremeter report``: cost by any attribute, per-trace percentiles, top traces."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from decimal import Decimal
from typing import Any

from faremeter.cli._context import (
    CliError,
    add_meter_options,
    open_meter,
    parse_window,
    positive_int,
    since,
)
from faremeter.cli._render import money
from faremeter.spans import ATTRIBUTION_KEYS

_SPAN_FIELDS = ("model", "kind", "status", "provider", "tool")


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
    p.add_argument("--since", metavar="WINDOW", help="only the last 90m / 24h / 7d / 2w …")
    p.add_argument("--top", type=positive_int, default=5,
                   help="how many expensive traces to list (default: 5)")  # fmt: skip
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as JSON")
    output.add_argument("--csv", action="store_true", help="print the cost-by table as CSV")
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
    add_meter_options(p)
    p.set_defaults(func=run)


def _known_attributes(ledger: Any) -> list[str]:
    custom: set[str] = set()
    for span in ledger.spans(limit=2000):
        custom.update(span.attributes)
    builtin = [*ATTRIBUTION_KEYS, *_SPAN_FIELDS]
    return builtin + sorted(custom - set(builtin))


def _check_attribute(ledger: Any, attribute: str, rows: list[Any]) -> None:
    """An attribute no span carries is a typo, not a report with one "(none)" row."""
    if attribute in _SPAN_FIELDS or not rows or any(r.key is not None for r in rows):
        return
    known = ", ".join(_known_attributes(ledger))
    raise CliError(f"no span in this ledger has the attribute {attribute!r}; known: {known}")


def _str(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount:f}"


def run(args: argparse.Namespace) -> int:
    """Print the report (validating everything before the first line of output)."""
    from rich.console import Console
    from rich.table import Table

    parse_window(args.since)
    try:
        factor = Decimal(str(args.factor))
    except ArithmeticError:
        raise CliError(f"--factor must be a number, got {args.factor!r}") from None
    if factor <= 0:
        raise CliError(f"--factor must be > 0, got {args.factor}")
    start = since(args.since)
    meter = open_meter(args)
    ledger = meter.ledger
    # A narrow pipe still gets whole trace ids and step names.
    console = Console(width=max(Console().width, 120))
    try:
        if args.cache:
            from faremeter.caching.report import cache_report
            from faremeter.caching.report_table import print_cache_report

            print_cache_report(console, cache_report(ledger, since=start), args.since)
            return 0
        if args.routed:
            from faremeter.routing.savings import routed_report
            from faremeter.routing.savings_table import print_routed_report

            routed = routed_report(ledger, meter.catalog, since=start)
            print_routed_report(console, routed, args.since)
            return 0
        if args.paths or args.outliers:
            from faremeter.cli._report_analytics import print_outliers, print_paths

            if args.paths:
                print_paths(console, ledger, start, args.top)
            if args.outliers:
                print_outliers(console, ledger, start, args.percentiles_by, args.factor, args.top)
            return 0

        rows = ledger.cost_by(args.by, since=start)
        _check_attribute(ledger, args.by, rows)
        # Spans without the attribute that cost nothing (a run's root, plumbing) are
        # structure, not spend: a "(none) $0" row would only be noise.
        rows = [r for r in rows if r.key is not None or r.cost or r.unpriced]
        pct = ledger.percentiles(by=args.percentiles_by, since=start)
        top = ledger.top_traces(args.top, since=start)
        if args.json:
            print(json.dumps({
                "by": args.by,
                "since": args.since,
                "rows": [{"key": r.key, "cost": _str(r.cost), "unpriced": r.unpriced,
                          "spans": r.spans, "traces": r.traces, "input_tokens": r.input_tokens,
                          "output_tokens": r.output_tokens} for r in rows],
                "percentiles": [{"key": p.key, "traces": p.traces,
                                 "p50": _str(p.quantiles.get(0.5)),
                                 "p90": _str(p.quantiles.get(0.9)),
                                 "p99": _str(p.quantiles.get(0.99)), "max": _str(p.max),
                                 "total": _str(p.total)} for p in pct],
                "top_traces": [{"trace_id": t.trace_id, "root": t.root_name, "cost": _str(t.cost),
                                "spans": t.spans, "unpriced": t.unpriced,
                                "started": t.started.isoformat()} for t in top],
            }, indent=2))  # fmt: skip
            return 0
        if args.csv:
            writer = csv.writer(sys.stdout)
            writer.writerow([args.by, "cost_usd", "unpriced", "spans", "traces",
                             "input_tokens", "output_tokens"])  # fmt: skip
            for r in rows:
                writer.writerow([r.key or "", _str(r.cost) or "", r.unpriced, r.spans, r.traces,
                                 r.input_tokens, r.output_tokens])  # fmt: skip
            return 0
        if not rows:
            console.print(
                "[yellow]Nothing recorded yet in this window: run `faremeter demo`.[/yellow]"
            )
            return 0
        window = f" (last {args.since})" if args.since else ""
        t = Table(title=f"Cost by {args.by}{window}")
        for col in (args.by, "cost", "spans", "traces", "unpriced", "input tok", "output tok"):
            t.add_column(col, justify="left" if col == args.by else "right", no_wrap=True)
        for r in rows:
            # An unpriced span is never shown as $0: its count sits beside the cost.
            cost = money(r.cost) + (" +?" if r.unpriced else "")
            t.add_row(
                f"(no {args.by})" if r.key is None else str(r.key), cost, str(r.spans),
                str(r.traces), str(r.unpriced) if r.unpriced else "", f"{r.input_tokens:,}",
                f"{r.output_tokens:,}",
            )  # fmt: skip
        console.print(t)
        if any(r.unpriced for r in rows):
            console.print(
                "[dim]+? : the row also has unpriced spans (unknown price), not in the cost[/dim]"
            )
        if pct:
            t = Table(title=f"Cost per trace by {args.percentiles_by}")
            for col in (args.percentiles_by, "traces", "p50", "p90", "p99", "max", "total"):
                t.add_column(col, justify="left" if col == args.percentiles_by else "right",
                             no_wrap=True)  # fmt: skip
            for p in pct:
                q = p.quantiles
                t.add_row(
                    f"(no {args.percentiles_by})" if p.key is None else str(p.key), str(p.traces),
                    money(q.get(0.5)), money(q.get(0.9)), money(q.get(0.99)), money(p.max),
                    money(p.total),
                )  # fmt: skip
            console.print(t)
        if top:
            t = Table(title=f"Top {len(top)} traces (faremeter trace <id or prefix>)")
            for col in ("trace", "root", "cost", "spans", "started (UTC)"):
                t.add_column(
                    col, no_wrap=True, justify="right" if col in ("cost", "spans") else "left"
                )
            for tr in top:
                t.add_row(tr.trace_id, tr.root_name or "?", money(tr.cost), str(tr.spans),
                          tr.started.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
            console.print(t)
        return 0
    finally:
        meter.close()
