"""`faremeter demo`'s workload: the full faremeter stack vs the same LangGraph agent bare.

    uv run python integration_tests/benchmarks/bench_demo.py [TASKS]

Both sides run the same tasks (runaway tasks left out: without a budget they
would loop to LangGraph's recursion limit, which is different work) through
the same compiled graph and fake chat models, each call through a
``FallbackChain``. "faremeter" adds what the demo adds: the callback handler
pricing every model and tool run into an in-memory ledger, the per-task
budget reserving and settling every call (counting the prompt's tokens), the
router, the tool cache and the live loop detector. "bare" is the agent with
no callbacks, no cache and no router. The ratio is the demo's whole overhead
on an agent whose models answer instantly — real model calls take seconds.
Output is markdown, ready for BENCHMARKS.md.
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import UTC, datetime

from faremeter import Meter
from faremeter_langchain.demo import demo_budgets, demo_catalog, make_tasks, run_workload
from faremeter_langchain.demo.agent import AgentSetup, build_graph
from faremeter_langchain.demo.fakes import make_tools
from faremeter_langchain.demo.workload import DemoTask

SEED = 2026


def faremeter_run(tasks: list[DemoTask]) -> tuple[float, int]:
    meter = Meter(ledger="memory", catalog=demo_catalog(), budgets=demo_budgets(), _register=False)
    start = time.perf_counter()
    run_workload(meter, tasks, optimize=True, seed=SEED)
    elapsed = time.perf_counter() - start
    spans = len(meter.ledger.spans())
    meter.close()
    return elapsed, spans


def bare_run(tasks: list[DemoTask]) -> float:
    graph = build_graph(AgentSetup(make_tools(), None, seed=SEED))
    start = time.perf_counter()
    for task in tasks:
        graph.invoke({"task": task, "round": 0})
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    tasks = [t for t in make_tasks(n, seed=SEED) if not t.runaway]
    faremeter_run(tasks[:5])  # warm imports and caches
    bare_run(tasks[:5])
    ours = min(faremeter_run(tasks)[0] for _ in range(3))
    spans = faremeter_run(tasks)[1]
    peer = min(bare_run(tasks) for _ in range(3))
    print(f"# demo workload — {datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()}")
    print()
    print(f"{len(tasks)} tasks (runaways left out), {spans:,} spans recorded; best of 3")
    print()
    print("| | total | per task | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| faremeter (handler, budget, router, cache, loop detector) | {ours:.2f} s | "
          f"{ours / len(tasks) * 1000:.1f} ms | {ours / peer:.2f}x |")  # fmt: skip
    print(f"| bare LangGraph agent (no callbacks) | {peer:.2f} s | "
          f"{peer / len(tasks) * 1000:.1f} ms | 1.00x |")  # fmt: skip


if __name__ == "__main__":
    main()
