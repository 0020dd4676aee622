"""Budget enforcement: reserve + settle per call, in-process, SQLite and Redis, vs LiteLLM.

    uv run python integration_tests/benchmarks/bench_budgets.py

* In-process: median of ``reserve`` + ``settle`` (one budget; and three
  matching budgets: team, per-user daily, per-trace).
* SQLite (one file, WAL): the same; each is one ``BEGIN IMMEDIATE`` transaction.
* Redis (loopback; skipped when not running): ``reserve`` and ``settle`` timed
  separately, beside a redis-py ``PING`` (one round trip through the same
  client) and ``redis-benchmark``'s PING — each is one ``EVALSHA`` round trip.
* LiteLLM's ``litellm.BudgetManager`` (the library budget API; the proxy's
  budget hooks need a running proxy and a database): ``projected_cost`` check +
  ``update_cost`` per call. Then the race the issue names: 200 threads with a
  $1.00 budget and $0.01 calls where the request takes 1 ms between the check
  and the update; how many calls each library lets run.

Output is markdown, ready for BENCHMARKS.md.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

from _summary import report_summary

from faremeter.budgets import Budget, BudgetManager
from faremeter.budgets.stores.redis import RedisBudgetStore
from faremeter.errors import BudgetExceeded

REPEATS = 7
AMOUNT, ACTUAL = Decimal("0.0125"), Decimal("0.0110")
ATTRS = {"team": "sales", "user_id": "u1"}
REDIS_URL = os.environ.get("FAREMETER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def median_us(fn: Callable[[], object], number: int) -> float:
    fn()
    runs = timeit.repeat(fn, number=number, repeat=REPEATS)
    return statistics.median(runs) / number * 1e6


def budgets(n: int) -> list[Budget]:
    big = "1000000000"
    all_ = [
        Budget("team", limit=big, scope={"team": "sales"}),
        Budget("user-daily", limit=big, window="day", per="user_id"),
        Budget("task", limit=big, window="trace"),
    ]
    return all_[:n]


def cycle(manager: BudgetManager) -> Callable[[], None]:
    def run() -> None:
        manager.reserve(attributes=ATTRS, trace_id="t1", amount=AMOUNT).settle(ACTUAL)

    return run


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def redis_benchmark_ping() -> float | None:
    """µs per PING from redis-benchmark (one connection, no pipelining)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    out = subprocess.run(
        [binary, "-t", "ping", "-n", "50000", "-c", "1", "-q"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rates = [float(m) for m in re.findall(r"([\d.]+) requests per second", out)]
    return 1e6 / max(rates) if rates else None


def _untyped(module: str) -> Any:
    """A module whose API is untyped (litellm, redis-py): used dynamically here."""
    return importlib.import_module(module)


def litellm_race(calls: int = 200) -> int:
    manager = _untyped("litellm").BudgetManager(project_name="bench")
    manager.create_budget(total_budget=1.0, user="u")
    ran: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(calls)

    def call() -> None:
        barrier.wait()
        if manager.get_current_cost("u") + 0.01 <= manager.get_total_budget("u"):
            time.sleep(0.001)  # the request is in flight
            with lock:
                manager.user_dict["u"]["current_cost"] = manager.get_current_cost("u") + 0.01
                ran.append(True)

    threads = [threading.Thread(target=call) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(ran)


def faremeter_race(calls: int = 200) -> int:
    manager = BudgetManager([Budget("cap", limit="1.00")], sinks=[])
    ran: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(calls)

    def call() -> None:
        barrier.wait()
        try:
            res = manager.reserve(amount=Decimal("0.01"))
        except BudgetExceeded:
            return
        time.sleep(0.001)
        res.settle(Decimal("0.01"))
        with lock:
            ran.append(True)

    threads = [threading.Thread(target=call) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(ran)


def main() -> None:
    litellm = _untyped("litellm")
    print("## Budgets: reserve + settle\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()}, {platform.system()}."
        f" Date: {datetime.now(UTC).date().isoformat()}."
        f" litellm {_ver('litellm')}, redis-py {_ver('redis')}.\n"
    )
    print("Command: `uv run python integration_tests/benchmarks/bench_budgets.py`\n")
    print(f"Median of {REPEATS} runs; one call = reserve ${AMOUNT} then settle ${ACTUAL}.\n")
    print("| store | matching budgets | faremeter µs / call | note |")
    print("|---|---|---|---|")
    one = median_us(cycle(BudgetManager(budgets(1))), 20_000)
    three = median_us(cycle(BudgetManager(budgets(3))), 20_000)
    print(f"| in-process | 1 | {one:.2f} | target ≤ 10 µs |")
    print(f"| in-process | 3 | {three:.2f} | team + per-user daily + per-trace |")
    # Read by run_all.py for the targets table (stripped from BENCHMARKS.md).
    report_summary("budget_inproc_us", three, unit="µs")
    with tempfile.TemporaryDirectory() as tmp:
        sq = BudgetManager(budgets(3), store=f"sqlite:///{tmp}/b.db", store_timeout_s=5)
        sq_us = median_us(cycle(sq), 2_000)
        sq.close()
    print(f"| SQLite (WAL, one host) | 3 | {sq_us:.1f} | two transactions per call |")
    if redis_up():
        redis = _untyped("redis")
        prefix = f"fmbench:{uuid.uuid4().hex}:"
        sent = [0]

        def counting_send(self: Any, *args: Any, **kwargs: Any) -> Any:
            sent[0] += 1
            return redis.Connection.send_packed_command(self, *args, **kwargs)

        counting = type("CountingConnection", (redis.Connection,), {})
        counting.send_packed_command = counting_send
        pool = redis.ConnectionPool.from_url(REDIS_URL, connection_class=counting)
        store = RedisBudgetStore(prefix=prefix, client=redis.Redis(connection_pool=pool))
        rm = BudgetManager(budgets(3), store=store)
        client: Any = redis.Redis.from_url(REDIS_URL)
        ping = median_us(client.ping, 5_000)
        holder: list[Any] = []

        def reserve() -> None:
            holder.append(rm.reserve(attributes=ATTRS, trace_id="t1", amount=AMOUNT))

        reserve()  # loads the script (EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA) once
        holder.pop().settle(ACTUAL)
        before = sent[0]
        for _ in range(100):
            reserve()
        trips_reserve = (sent[0] - before) / 100
        before = sent[0]
        for res in holder:
            res.settle(ACTUAL)
        trips_settle = (sent[0] - before) / len(holder)
        holder.clear()
        reserve_us = median_us(reserve, 5_000)
        pending = list(holder)
        holder.clear()
        index = iter(pending)

        def settle() -> None:
            next(index).settle(ACTUAL)  # type: ignore[attr-defined]

        settle_us = (
            statistics.median(timeit.repeat(settle, number=len(pending) // REPEATS, repeat=REPEATS))
            / (len(pending) // REPEATS)
            * 1e6
        )
        bench_ping = redis_benchmark_ping()
        bp = f"{bench_ping:.1f}" if bench_ping else "n/a"
        print(
            f"| Redis (loopback) reserve | 3 | {reserve_us:.1f} | {trips_reserve:g} round trip;"
            f" {reserve_us / ping:.2f}× redis-py PING ({ping:.1f} µs);"
            f" redis-benchmark PING {bp} µs |"
        )
        print(
            f"| Redis (loopback) settle | 3 | {settle_us:.1f} | {trips_settle:g} round trip;"
            f" {settle_us / ping:.2f}× redis-py PING |"
        )
        for metric, trips in (("reserve", trips_reserve), ("settle", trips_settle)):
            report_summary(f"budget_redis_{metric}_trips", trips, note="counted on the socket")
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        rm.close()
    else:
        print("| Redis | – | skipped | Redis not running on 127.0.0.1:6379 |")
    print()

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # litellm.BudgetManager writes user_cost.json to the cwd
        try:
            ll = litellm.BudgetManager(project_name="bench")
            ll.create_budget(total_budget=1e9, user="u1")
            messages = [{"role": "user", "content": "hello"}]

            def ll_cycle() -> None:
                if ll.projected_cost("gpt-4o", messages, "u1") <= ll.get_total_budget("u1"):
                    ll.update_cost(user="u1", model="gpt-4o", input_text="hello", output_text="hi")

            ll_us = median_us(ll_cycle, 500)
            fm = BudgetManager(budgets(1))

            def fm_cycle() -> None:
                # The same work faremeter does per call, including its estimate.
                from faremeter.budgets import estimate_call_cost
                from faremeter.pricing import PriceCatalog

                amount = estimate_call_cost(PriceCatalog.default(), "gpt-4o", messages, 16)
                fm.reserve(attributes=ATTRS, amount=amount).settle(ACTUAL)

            fm_us = median_us(fm_cycle, 5_000)
            print("| check + record one call | µs | ratio |")
            print("|---|---|---|")
            print(
                f"| litellm.BudgetManager projected_cost + update_cost | {ll_us:.1f}"
                f" | {ll_us / fm_us:.1f}× faremeter |"
            )
            print(
                f"| faremeter estimate_call_cost + reserve + settle (in-process) | {fm_us:.1f}"
                " | 1× |"
            )
            print()
            print("| 200 threads, $1.00 budget, $0.01 calls, 1 ms in flight | calls that ran |")
            print("|---|---|")
            print(f"| litellm.BudgetManager (check, then record) | {litellm_race()} |")
            print(f"| faremeter reserve / settle | {faremeter_race()} |")
        finally:
            os.chdir(cwd)
            time.sleep(0.2)  # let litellm's save thread finish before the dir goes
    print()


def _ver(dist: str) -> str:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
