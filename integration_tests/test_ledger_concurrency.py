"""8 threads x 4 asyncio tasks x 2 spawned processes -> one ledger, nothing lost.

Each task records traces of four nested spans through ``Meter`` (trace → span →
span → LLM call), so the parent of every span comes from contextvars alone.

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

PROCS, THREADS, TASKS, CHAIN = 2, 8, 4, 4
CHAINS = 25_000  # traces of CHAIN nested spans each: 100,000 spans in all
TOTAL = CHAINS * CHAIN
MODEL = "gpt-4o"
USAGE_IN, USAGE_OUT = 100, 10


def task_chains() -> dict[tuple[int, int, int], int]:
    """How many traces each (process, thread, task) records."""
    keys = [(p, t, k) for p in range(PROCS) for t in range(THREADS) for k in range(TASKS)]
    base, extra = divmod(CHAINS, len(keys))
    return {key: base + (1 if i < extra else 0) for i, key in enumerate(keys)}


def _worker(url: str, proc: int) -> None:  # runs in a child process
    """Record through the public Meter API: parents come from contextvars alone."""
    from faremeter import Meter, Usage

    meter = Meter(ledger=url)
    chains = task_chains()
    usage = Usage(input_tokens=USAGE_IN, output_tokens=USAGE_OUT)

    async def task(t: int, k: int) -> None:
        for c in range(chains[(proc, t, k)]):
            async with meter.trace("step0", user_id=f"u{t}", task=f"{proc}-{t}-{k}", chain=c):
                await asyncio.sleep(0)  # let sibling tasks of this thread interleave
                with meter.span("step1", kind="agent"):
                    await asyncio.sleep(0)
                    with meter.span("step2", kind="chain"):
                        await asyncio.sleep(0)
                        meter.record_llm(MODEL, usage, name="step3")

    async def thread_main(t: int) -> None:
        await asyncio.gather(*(task(t, k) for k in range(TASKS)))

    threads = [
        threading.Thread(target=lambda t=t: asyncio.run(thread_main(t))) for t in range(THREADS)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = meter.flush(120)
    health = meter.health()
    meter.close()
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
    from faremeter import PriceCatalog, Usage
    from faremeter.ledger import Ledger

    ledger = Ledger.from_url(url)
    spans = ledger.spans()
    assert len(spans) == TOTAL
    assert len({s.span_id for s in spans}) == TOTAL  # none twice
    by_trace: dict[str, dict[str, Any]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, {})[s.name] = s
    assert len(by_trace) == CHAINS
    seen: dict[str, set[int]] = {}
    for trace in by_trace.values():
        assert sorted(trace) == [f"step{i}" for i in range(CHAIN)]  # one chain per trace
        assert trace["step0"].parent_span_id is None
        for i in range(1, CHAIN):  # every parent is the span that enclosed it
            assert trace[f"step{i}"].parent_span_id == trace[f"step{i - 1}"].span_id
        owner = {(s.attributes["task"], s.attributes["user_id"]) for s in trace.values()}
        assert len(owner) == 1  # no attribution leaked between tasks or threads
        seen.setdefault(str(trace["step0"].attributes["task"]), set()).add(
            int(trace["step0"].attributes["chain"])
        )
    expected = {f"{p}-{t}-{k}": set(range(n)) for (p, t, k), n in task_chains().items()}
    assert seen == expected
    per_call = (
        PriceCatalog.default()
        .cost(MODEL, Usage(input_tokens=USAGE_IN, output_tokens=USAGE_OUT))
        .total
    )
    assert per_call is not None
    rows = ledger.percentiles(by="user_id")
    assert sum(r.traces for r in rows) == CHAINS
    assert sum((r.total for r in rows), Decimal(0)) == per_call * CHAINS
    by_user = ledger.cost_by("user_id")
    assert sum(r.spans for r in by_user) == TOTAL
    assert sum((r.cost for r in by_user), Decimal(0)) == per_call * CHAINS
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
