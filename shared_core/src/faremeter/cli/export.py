"""``faremeter export``: spans out of the ledger as CSV, JSON lines or Parquet."""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from faremeter.cli._context import CliError, add_meter_options, open_meter, since
from faremeter.spans import SpanRecord

__all__ = ["register", "span_row"]

COLUMNS: tuple[str, ...] = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "status", "start", "end",
    "latency_ms", "model", "provider", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "usage_source", "cost_usd", "unpriced_reason",
    "saved_usd", "error_class", "attributes",
)  # fmt: skip


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "export", help="write spans as CSV, JSON lines or Parquet (for spreadsheets, BI, pandas)"
    )
    p.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
    p.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    p.add_argument("--since", metavar="WINDOW", help="only the last 90m / 24h / 7d / 2w …")
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only spans whose attribute KEY (model, kind, status, tool…) is VALUE",
    )
    add_meter_options(p)
    p.set_defaults(func=run)


def span_row(span: SpanRecord) -> dict[str, Any]:
    """One span as a flat row; money as exact decimal strings, unpriced as empty."""
    usage = span.usage
    total = span.cost.total
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id or "",
        "name": span.name,
        "kind": span.kind.value,
        "status": span.status.value,
        "start": span.start_time.isoformat(),
        "end": span.end_time.isoformat(),
        "latency_ms": round(span.latency_ms, 3),
        "model": span.model or "",
        "provider": span.provider or "",
        "input_tokens": usage.input_tokens if usage else "",
        "output_tokens": usage.output_tokens if usage else "",
        "cache_read_tokens": usage.cache_read_tokens if usage else "",
        "cache_write_tokens": usage.cache_write_tokens if usage else "",
        "reasoning_tokens": usage.reasoning_tokens if usage else "",
        "usage_source": usage.source if usage else "",
        "cost_usd": "" if total is None else f"{total:f}",
        "unpriced_reason": span.cost.unpriced_reason or "",
        "saved_usd": "" if span.saved is None else f"{span.saved:f}",
        "error_class": span.error_class or "",
        "attributes": json.dumps(dict(span.attributes), sort_keys=True),
    }


@contextmanager
def _open(output: str, binary: bool) -> Generator[IO[Any]]:
    if output == "-":
        yield sys.stdout.buffer if binary else sys.stdout
        return
    with Path(output).open("wb" if binary else "w", newline="" if not binary else None) as fh:
        yield fh


def _where(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--where takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    """Write every matching span."""
    where = _where(args.where)
    start = since(args.since)
    pa: Any = None
    pq: Any = None
    if args.format == "parquet":
        try:  # optional: imported by name so the core has no dependency on it
            pa = importlib.import_module("pyarrow")
            pq = importlib.import_module("pyarrow.parquet")
        except ImportError:
            raise CliError("--format parquet needs pyarrow: pip install pyarrow") from None
    meter = open_meter(args)
    try:
        spans = meter.ledger.spans(since=start, where=where or None)
    finally:
        meter.close()
    rows = [span_row(s) for s in spans]
    if args.format == "csv":
        with _open(args.output, binary=False) as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    elif args.format == "jsonl":
        with _open(args.output, binary=False) as fh:
            for row in rows:
                row["attributes"] = json.loads(row["attributes"])
                fh.write(json.dumps(row) + "\n")
    else:
        table = pa.Table.from_pylist(rows)
        with _open(args.output, binary=True) as fh:
            pq.write_table(table, fh)
    if args.output != "-":
        print(f"wrote {len(rows)} spans to {args.output}", file=sys.stderr)
    return 0
