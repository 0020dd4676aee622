"""Ledger benchmarks: hot path, sustained SQLite throughput, 1M-span queries, memory.

Run: ``uv run python integration_tests/benchmarks/bench_ledger.py [--spans 1000000]
[--parts hot,sustained,queries]`` (``queries`` needs ``sustained``: it reads
the file that run wrote).
Prints markdown tables (copied into BENCHMARKS.md). Nothing here asserts times.

What is measured:
- ``record()`` hot path: median of per-call times (calls timed in groups of
  100 to keep the timer out of the number), against ``deque.append`` and
  ``queue.Queue.put`` as floors for "just enqueue".
- Sustained: N spans recorded through the queue into a SQLite file, timed
  from the first ``record()`` to ``flush()`` returning; the peer is plain
  ``sqlite3.executemany`` of the same pre-encoded rows into an identical
  table (no queue, no encoding, no rollup): the floor.
- Memory: process RSS while recording those N spans (the queue is bounded).
- Queries on that same N-span file (written through the queue, not bypassed):
  ``cost_by("user_id")`` and ``percentiles(by="workflow")``, best of 3.
"""

from __future__ import annotations

import argparse
import os
import queue
import sqlite3
import statistics
import tempfile
import time
from collections import deque
from decimal import Decimal
from pathlib import Path

from _summary import report_summary

from faremeter.cost import Cost
from faremeter.ledger import Ledger
from faremeter.ledger.codec import SPAN_COLUMNS, encode_span
from faremeter.spans import SpanKind, SpanRecord
from faremeter.usage import Usage

USAGE = Usage(input_tokens=1200, output_tokens=300)
COST = Cost(input=Decimal("0.003"), output=Decimal("0.003"))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_span(i: int) -> SpanRecord:
    trace = i // 10
    return SpanRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{i:016x}",
        parent_span_id=None if i % 10 == 0 else f"{trace * 10:016x}",
        name="call",
        kind=SpanKind.LLM,
        start_ns=1_735_689_600_000_000_000 + i * 1_000_000,
        end_ns=1_735_689_600_000_000_000 + i * 1_000_000 + 500,
        model="gpt-4o",
        usage=USAGE,
        cost=COST,
        attributes={
            "user_id": f"u{trace % 1000}",
            "workflow": f"w{trace % 20}",
            "team": f"t{trace % 7}",
            "step": f"s{i % 10}",
        },
    )


def median_ns_per_call(fn: object, items: list[SpanRecord], group: int = 100) -> float:
    call = fn  # type: ignore[assignment]
    samples: list[float] = []
    for g in range(0, len(items) - group + 1, group):
        chunk = items[g : g + group]
        t0 = time.perf_counter_ns()
        for s in chunk:
            call(s)  # type: ignore[operator]
        samples.append((time.perf_counter_ns() - t0) / group)
    return statistics.median(samples)


def bench_hot_path(tmp: Path) -> list[tuple[str, float]]:
    items = [make_span(i) for i in range(100_000)]
    led = Ledger.from_url(f"sqlite:///{tmp}/hot.db", queue_size=200_000)
    ours = median_ns_per_call(led.record, items)
    led.flush()
    led.close()
    mem = Ledger.from_url("memory", queue_size=200_000)
    ours_mem = median_ns_per_call(mem.record, items)
    mem.close()
    dq: deque[SpanRecord] = deque()
    q: queue.Queue[SpanRecord] = queue.Queue(maxsize=200_000)
    return [
        ("`Ledger.record()` (SQLite ledger)", ours),
        ("`Ledger.record()` (memory ledger)", ours_mem),
        ("floor: `collections.deque.append`", median_ns_per_call(dq.append, items)),
        ("peer: `queue.Queue(maxsize).put`", median_ns_per_call(q.put, items)),
    ]


def bench_sustained(tmp: Path, n: int) -> tuple[float, list[tuple[int, float]], Path, float]:
    path = tmp / "ledger.db"
    led = Ledger.from_url(f"sqlite:///{path}")
    marks: list[tuple[int, float]] = [(0, rss_mb())]
    step = n // 4
    t0 = time.perf_counter()
    for i in range(n):
        led.record(make_span(i))
        if (i + 1) % step == 0:
            marks.append((i + 1, rss_mb()))
    assert led.flush()
    elapsed = time.perf_counter() - t0
    h = led.health()
    assert h.written == n and h.dropped == 0, h
    led.close()
    # Generating the SpanRecords is part of the loop above; measure it alone too.
    g0 = time.perf_counter()
    for i in range(n):
        make_span(i)
    gen = time.perf_counter() - g0
    return elapsed, marks, path, gen


def bench_floor(tmp: Path, n: int) -> float:
    rows = [encode_span(make_span(i)) for i in range(n)]
    conn = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    cols = ", ".join(SPAN_COLUMNS)
    conn.execute(f"CREATE TABLE spans ({cols}, PRIMARY KEY (span_id))")
    sql = f"INSERT INTO spans VALUES ({', '.join('?' * len(SPAN_COLUMNS))})"
    t0 = time.perf_counter()
    for i in range(0, n, 2000):
        conn.execute("BEGIN")
        conn.executemany(sql, rows[i : i + 2000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def best_of(fn: object, times: int = 3) -> float:
    out: list[float] = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument(
        "--parts", default="hot,sustained,queries", help="comma-separated subset to run"
    )
    args = parser.parse_args()
    n: int = args.spans
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "hot" in parts:
            hot = bench_hot_path(tmp)
            print("| hot path (median per call) | ns |\n|---|---:|")
            for name, v in hot:
                print(f"| {name} | {v:,.0f} |")
            # Read by run_all.py for the targets table (stripped from BENCHMARKS.md).
            report_summary(
                "record_us",
                hot[0][1] / 1000,
                unit="µs",
                peer="`queue.Queue.put`",
                peer_value=hot[3][1] / 1000,
            )
        if "sustained" not in parts:
            return

        elapsed, marks, path, gen = bench_sustained(tmp, n)
        floor_n = min(n, 200_000)
        floor = bench_floor(tmp, floor_n)
        print(f"\n| sustained into SQLite ({n:,} spans) | spans/s |\n|---|---:|")
        print(f"| faremeter: record() → flush() done (incl. building spans) | {n / elapsed:,.0f} |")
        print(
            f"| faremeter, excluding span construction ({gen:.1f}s) | {n / (elapsed - gen):,.0f} |"
        )
        print(
            f"| floor: plain `sqlite3.executemany`, pre-encoded rows, no indexes/rollup "
            f"({floor_n:,}) | {floor_n / floor:,.0f} |"
        )
        report_summary(
            "sqlite_spans_per_s",
            n / elapsed,
            peer="plain `executemany` floor",
            peer_value=floor_n / floor,
            note=f"{n:,} spans",
        )
        print("\n| spans recorded | RSS (MB) |\n|---:|---:|")
        for count, mb in marks:
            print(f"| {count:,} | {mb:.1f} |")

        if "queries" not in parts:
            return
        led = Ledger.from_url(f"sqlite:///{path}")
        by_user = best_of(lambda: led.cost_by("user_id"))
        pct = best_of(lambda: led.percentiles(by="workflow"))
        top = best_of(lambda: led.top_traces(10))
        day = best_of(lambda: led.time_series("hour"))
        rows = led.cost_by("user_id")
        assert sum(r.spans for r in rows) == n
        led.close()
        size = path.stat().st_size / 2**20
        print(f"\n| query on {n:,} spans / {n // 10:,} traces in SQLite ({size:.0f} MB) | s |")
        print("|---|---:|")
        print(f'| `cost_by("user_id")` (1,000 users) | {by_user:.3f} |')
        print(f'| `percentiles(by="workflow")` (20 workflows, p50/p90/p99) | {pct:.3f} |')
        print(f"| `top_traces(10)` | {top:.3f} |")
        print(f'| `time_series("hour")` | {day:.3f} |')
        for metric, value in (("cost_by_user_s", by_user), ("percentiles_s", pct)):
            report_summary(metric, value, note=f"{n:,} spans")


if __name__ == "__main__":
    main()
