"""Analytics benchmarks: each analysis on a 1M-span SQLite ledger; live anomaly detection cost.

Run: ``uv run python integration_tests/benchmarks/bench_analytics.py [--spans 1000000]
[--db PATH] [--parts queries,live]`` (``--db`` reuses a file an earlier run filled).
Prints markdown tables (copied into BENCHMARKS.md). Nothing here asserts times.

What is measured:
- Queries: the sample workload (``faremeter.analytics.sample``: two workflows,
  ~5.8 spans per trace, tools, outcomes, denials, retries) recorded through
  the ledger's queue into SQLite, then each analysis best of 3. The peer
  is what a team does without it: ``SELECT`` the needed columns of every
  span with ``sqlite3`` into a polars DataFrame and compute the same answer
  there (load + compute, best of 3; the load alone is shown too).
- Live: ``meter.record_llm`` per call with and without an attached
  :class:`~faremeter.analytics.AnomalyMonitor` (median of 200 batches of 100
  calls; the difference is what detection adds on the recording thread), and
  the monitor's off-path evaluation rate (spans/s through ``process_pending``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _summary import report_summary

from faremeter import analytics
from faremeter.analytics.sample import sample_workload
from faremeter.ledger import Ledger
from faremeter.pricing import PriceCatalog
from faremeter.usage import Usage

CATALOG = PriceCatalog.default()
SPANS_PER_TRACE = 5.8


def fill(path: Path, spans: int) -> None:
    traces = int(spans / SPANS_PER_TRACE)
    t0 = time.perf_counter()
    n = 0
    with Ledger.from_url(f"sqlite:///{path}") as led:
        for s in sample_workload(CATALOG, traces=traces, gap_s=3):
            led.record(s)
            n += 1
        led.flush()
    elapsed = time.perf_counter() - t0  # progress on stderr: stdout is the markdown
    print(f"filled {path} with {n:,} spans / {traces:,} traces in {elapsed:.1f}s", file=sys.stderr)


def best(fn: Callable[[], Any], runs: int = 3) -> float:
    times: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def polars_frame(path: Path) -> Any:
    import polars as pl

    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT trace_id, parent_span_id, span_id, kind, name, step, user_id, workflow,"
        " cost_pico, start_ns FROM faremeter_spans"
    ).fetchall()
    conn.close()
    cols = ["trace_id", "parent", "span_id", "kind", "name", "step", "user_id", "workflow",
            "cost_pico", "start_ns"]  # fmt: skip
    return pl.DataFrame(rows, schema=cols, orient="row")


def peers(path: Path) -> dict[str, Callable[[], Any]]:
    import polars as pl

    def totals(df: Any) -> Any:
        roots = df.filter(pl.col("parent").is_null()).select("trace_id", "workflow")
        sums = df.group_by("trace_id").agg(pl.col("cost_pico").sum().alias("total"))
        return sums.join(roots, on="trace_id", how="left")

    def cost_by_user() -> Any:
        return polars_frame(path).group_by("user_id").agg(pl.col("cost_pico").sum())

    def step_pct() -> Any:
        df = polars_frame(path)
        per = df.group_by("step", "trace_id").agg(pl.col("cost_pico").sum().alias("c"))
        return per.group_by("step").agg(
            [pl.col("c").quantile(q, "higher").alias(str(q)) for q in (0.5, 0.9, 0.99)]
        )

    def outliers() -> Any:
        t = totals(polars_frame(path))
        med = t.group_by("workflow").agg(pl.col("total").quantile(0.5, "lower").alias("m"))
        return t.join(med, on="workflow").filter(pl.col("total") > 2 * pl.col("m"))

    def paths() -> Any:
        df = (
            polars_frame(path)
            .with_columns(
                pl.when(pl.col("kind") == "tool")
                .then(pl.col("name"))
                .otherwise(pl.col("step"))
                .alias("e")
            )
            .filter(pl.col("e").is_not_null())
            .sort("trace_id", "start_ns", "span_id")
        )
        p = df.group_by("trace_id", maintain_order=True).agg(pl.col("e").str.join(">"))
        return p.group_by("e").len().sort("len", descending=True)

    def series() -> Any:
        df = polars_frame(path)
        return df.group_by(pl.col("start_ns") // 3_600_000_000_000).agg(pl.col("cost_pico").sum())

    return {
        "cost_by": cost_by_user,
        "part_percentiles": step_pct,
        "distribution": outliers,
        "paths": paths,
        "time_series": series,
        "load": lambda: polars_frame(path),
    }


def queries(path: Path) -> None:
    led = Ledger.from_url(f"sqlite:///{path}")
    size = os.path.getsize(path) / 2**20
    cases: list[tuple[str, str, Callable[[], Any]]] = [
        ("cost_by", '`ledger.cost_by("user_id")`', lambda: led.cost_by("user_id")),
        ("distribution", '`distribution(by="workflow")` (p50/p90/p99 + >2x-median outliers)',
         lambda: analytics.distribution(led, by="workflow")),
        ("part_percentiles", '`distribution(by="step", per="part")`',
         lambda: analytics.distribution(led, by="step", per="part")),
        ("paths", "`path_analysis(top=10)`", lambda: analytics.path_analysis(led)),
        ("time_series", '`spend_series("hour")`', lambda: analytics.spend_series(led, "hour")),
        ("", '`segments("feature")`', lambda: analytics.segments(led, "feature")),
        ("", '`group_by("step", "model")`', lambda: led.group_by("step", "model")),
        ("", "`top_traces(10)`", lambda: led.top_traces(10)),
        ("", '`cost_per_outcome(by="workflow")`', lambda: analytics.cost_per_outcome(led)),
        ("", '`what_if(model="gpt-4o-mini", step="plan")`',
         lambda: analytics.what_if(led, CATALOG, model="gpt-4o-mini", step="plan")),
        ("", "`suggest()` (all five checks)", lambda: analytics.suggest(led, CATALOG)),
    ]  # fmt: skip
    peer = peers(path)
    load = best(peer["load"], 2)
    (n,) = sqlite3.connect(path).execute("SELECT COUNT(*) FROM faremeter_spans").fetchone()
    print(f"\n| analysis on {n:,} spans in SQLite ({size:.0f} MB) | faremeter s | "
          f"peer: sqlite3 → polars s | ratio |")  # fmt: skip
    print("|---|---:|---:|---:|")
    for key, label, fn in cases:
        ours = best(fn)
        if key:
            theirs = best(peer[key], 2)
            print(f"| {label} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f}× |")
        else:
            print(f"| {label} | {ours:.3f} | — | |")
    print(f"| (peer's load of the columns alone) | | {load:.3f} | |")
    led.close()


def live() -> None:
    from faremeter.analytics import AnomalyMonitor
    from faremeter.testing import make_test_meter

    usage = Usage(input_tokens=1_200, output_tokens=300)

    def per_call(meter: Any) -> float:
        samples: list[float] = []
        with meter.trace("bench"):
            for _ in range(200):
                t = time.perf_counter_ns()
                for _ in range(100):
                    meter.record_llm("gpt-4o", usage)
                samples.append((time.perf_counter_ns() - t) / 100)
        return statistics.median(samples)

    results: dict[str, list[float]] = {"plain": [], "monitored": []}
    monitor = AnomalyMonitor(alerts=lambda a: None, max_pending=10**7)
    for _ in range(5):  # alternate to share the machine's noise
        plain = make_test_meter(deterministic=False)
        results["plain"].append(per_call(plain))
        plain.close()
        watched = make_test_meter(deterministic=False)
        monitor.attach(watched)
        results["monitored"].append(per_call(watched))
        watched.close()
    pending = monitor.pending
    t = time.perf_counter()
    monitor.process_pending()
    rate = pending / (time.perf_counter() - t)

    from collections import deque

    q: deque[object] = deque(maxlen=10**6)
    append = q.append
    item = object()
    t = time.perf_counter_ns()
    for _ in itertools.repeat(None, 1_000_000):
        append(item)
    listener_ns = (time.perf_counter_ns() - t) / 1_000_000
    plain_ns = statistics.median(results["plain"])
    watched_ns = statistics.median(results["monitored"])
    print("\n| live anomaly detection | value |")
    print("|---|---:|")
    print(f"| `record_llm` per call, no monitor (median) | {plain_ns / 1000:.2f} µs |")
    print(f"| `record_llm` per call, monitor attached (median) | {watched_ns / 1000:.2f} µs |")
    print(f"| added per recorded span | {(watched_ns - plain_ns) / 1000:.2f} µs "
          f"({watched_ns / plain_ns:.2f}×) |")  # fmt: skip
    print(f"| the listener itself (`deque.append`) | {listener_ns:.0f} ns |")
    print(f"| off-path evaluation (`process_pending`) | {rate:,.0f} spans/s |")
    # Read by run_all.py for the targets table (stripped from BENCHMARKS.md).
    report_summary(
        "anomaly_us",
        (watched_ns - plain_ns) / 1000,
        unit="µs",
        note=f"{watched_ns / plain_ns:.2f}× a plain record_llm",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, help="ledger file to reuse (filled when missing)")
    ap.add_argument("--parts", default="queries,live")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if "queries" in parts:
        path = args.db or Path(tempfile.mkdtemp()) / "analytics.db"
        if not path.exists():
            fill(path, args.spans)
        queries(path)
    if "live" in parts:
        live()


if __name__ == "__main__":
    main()
