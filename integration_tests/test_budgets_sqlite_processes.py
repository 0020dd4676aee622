"""200 concurrent $0.01 calls from 4 processes against one $1.00 budget in SQLite."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _budget_procs import run_workers

from faremeter.budgets import Budget, BudgetManager

FIXED_NS = 1_796_126_400_000_000_000


def test_four_processes_on_sqlite_run_exactly_100_calls(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/budgets.db"
    results = run_workers(url, procs=4, calls=50, directory=tmp_path)
    assert sum(r["ran"] for r in results) == 100
    assert sum(r["denied"] for r in results) == 100
    assert all(r["store_failures"] == 0 for r in results)
    manager = BudgetManager(
        [Budget("fleet-cap", limit="1.00", window="day")], store=url, clock=lambda: FIXED_NS
    )
    [row] = manager.status()
    assert (row.spent, row.reserved) == (Decimal("1.00"), Decimal(0))


def test_sqlite_store_threads_and_release(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from faremeter.errors import BudgetExceeded

    manager = BudgetManager(
        [Budget("cap", limit="0.50", per="user_id")],
        store=f"sqlite:///{tmp_path}/b.db",
        clock=lambda: FIXED_NS,
        store_timeout_s=30,
    )

    def call(i: int) -> str | None:
        try:
            res = manager.reserve(attributes={"user_id": f"u{i % 2}"}, amount=Decimal("0.01"))
        except BudgetExceeded:
            return None
        if i % 3 == 0:
            res.release()  # a failed call: nothing billed, money back
            return None
        res.settle(Decimal("0.01"))
        return f"u{i % 2}"

    with ThreadPoolExecutor(8) as pool:
        settled = list(pool.map(call, range(300)))
    rows = {r.subject: r for r in manager.status()}
    assert set(rows) == {"u0", "u1"}
    for subject, row in rows.items():
        assert row.spent == Decimal("0.01") * settled.count(subject) <= Decimal("0.50")
        assert row.reserved == 0


async def test_cancelled_while_a_remote_store_reserves_gives_the_money_back(
    tmp_path: Path,
) -> None:
    import asyncio

    manager = BudgetManager(
        [Budget("cap", limit="1")], store=f"sqlite:///{tmp_path}/b.db", clock=lambda: FIXED_NS
    )
    task = asyncio.create_task(manager.areserve(amount=Decimal("0.5")))
    await asyncio.sleep(0)  # the reservation is running in a worker thread
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        (await task).release()  # it finished before the cancel landed
    for _ in range(6_000):  # until the worker thread finished and the callback released
        if manager.status()[0].reserved == 0:
            break
        await asyncio.sleep(0.01)
    assert manager.status()[0].reserved == 0
