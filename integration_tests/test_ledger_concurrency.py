"""8 threads x 4 asyncio tasks x 2 spawned processes -> one ledger, nothing lost.

The worker half of this file runs in the child processes: they execute this
very file with ``runpy`` (test modules are not importable by name under
``--import-mode=importlib``), with ``__name__ == "__ledger_worker__"``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import runpy
import threading
from decimal import Decimal
from typing import Any

import pytest

PROCS, THREADS, TASKS, TOTAL, CHAIN = 2, 8, 4, 100_000, 4
PRICE = Decimal("0.000001")


def task_sizes() -> dict[tuple[int, int, int], int]:
    keys = [(p, t, k) for p in range(PROCS) for t in range(THREADS) for k in range(TASKS)]
    base, extra = divmod(TOTAL, len(keys))
    return {key: base + (1 if i < extra else 0) for i, key in enumerate(keys)}


def ids(p: int, t: int, k: int, n: int) -> tuple[str, str, str | None]:
    """(trace_id, span_id, expected parent) of span n of one task: chains of CHAIN spans."""
    prefix = f"{p:02x}{t:02x}{k:02x}"
    chain, pos = divmod(n, CHAIN)
    span_id = f"{prefix}{n:010x}"
    parent = None if pos == 0 else f"{prefix}{n - 1:010x}"
    return f"{prefix}{chain:026x}", span_id, parent


def _worker(url: str, proc: int) -> None:  # runs in a child process
    from faremeter.cost import Cost
    from faremeter.ledger import Ledger
    from faremeter.spans import SpanKind, SpanRecord

    ledger = Ledger.from_url(url)
    sizes = task_sizes()

    async def task(t: int, k: int) -> None:
        for n in range(sizes[(proc, t, k)]):
            trace_id, span_id, parent = ids(proc, t, k, n)
            ledger.record(
                SpanRecord(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent,
                    name=f"step{n % CHAIN}",
                    kind=SpanKind.AGENT if parent is None else SpanKind.LLM,
                    start_ns=1_700_000_000_000_000_000 + n,
                    end_ns=1_700_000_000_000_000_500 + n,
                    cost=Cost(input=PRICE),
                    attributes={"workflow": f"w{proc}", "user_id": f"u{t}", "task": k},
                )
            )
            if n % CHAIN == CHAIN - 1:
                await asyncio.sleep(0)  # interleave the tasks of this thread

    async def thread_main(t: int) -> None:
        await asyncio.gather(*(task(t, k) for k in range(TASKS)))

    threads = [
        threading.Thread(target=lambda t=t: asyncio.run(thread_main(t))) for t in range(THREADS)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = ledger.flush(120)
    health = ledger.health()
    ledger.close()
    if not ok or health.dropped or health.rejected:
        raise SystemExit(f"flush={ok} health={health}")


def run_fleet(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=runpy.run_path,
            args=(__file__,),
            kwargs={"init_globals": {"WORKER_ARGS": (url, p)}, "run_name": "__ledger_worker__"},
        )
        for p in range(PROCS)
    ]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(300)
    assert [pr.exitcode for pr in procs] == [0] * PROCS


def check(url: str) -> None:
    from faremeter.ledger import Ledger

    ledger = Ledger.from_url(url)
    spans = ledger.spans()
    assert len(spans) == TOTAL
    assert len({s.span_id for s in spans}) == TOTAL  # none twice
    got = {s.span_id: (s.trace_id, s.parent_span_id) for s in spans}
    expected: dict[str, tuple[str, str | None]] = {}
    for (p, t, k), size in task_sizes().items():
        for n in range(size):
            trace_id, span_id, parent = ids(p, t, k, n)
            expected[span_id] = (trace_id, parent)
    assert got == expected  # every span present, each with the right parent and trace
    # The per-trace rollup, maintained by concurrent writers, adds up too.
    rows = ledger.percentiles(by="workflow")
    assert sum(r.traces for r in rows) == len({tid for tid, _ in expected.values()})
    assert sum((r.total for r in rows), Decimal(0)) == PRICE * TOTAL
    by_user = ledger.cost_by("user_id")
    assert sum(r.spans for r in by_user) == TOTAL
    assert sum((r.cost for r in by_user), Decimal(0)) == PRICE * TOTAL
    ledger.close()


@pytest.mark.slow
def test_fleet_into_one_sqlite_file(sqlite_url: str) -> None:
    run_fleet(sqlite_url)
    check(sqlite_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_fleet_into_postgres(postgres_url: str) -> None:
    run_fleet(postgres_url)
    check(postgres_url)


if __name__ == "__ledger_worker__":
    _args: Any = globals()["WORKER_ARGS"]
    _worker(*_args)
