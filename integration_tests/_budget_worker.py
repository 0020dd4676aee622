"""One worker process of the cross-process budget tests (run as a script).

    python integration_tests/_budget_worker.py STORE_URL WORKER_ID CALLS DIR

Starts ``CALLS`` threads that each reserve $0.01 against a $1.00 ``deny``
budget and settle $0.01; all workers start together (the parent creates
``DIR/go`` once every worker has written ``DIR/ready-<id>``). Prints a JSON
line: how many calls ran and how many were refused.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from faremeter.budgets import Budget, BudgetManager
from faremeter.errors import BudgetExceeded

FIXED_NS = 1_796_126_400_000_000_000  # 2026-12-01T12:00:00Z: no wall-clock dependence
CENT = Decimal("0.01")


def main() -> None:
    url, worker, calls, directory = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    manager = BudgetManager(
        [Budget("fleet-cap", limit="1.00", window="day")],
        store=url,
        clock=lambda: FIXED_NS,
        fail="closed",
        store_timeout_s=30,
    )
    ran: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(calls)

    def call() -> None:
        barrier.wait()
        try:
            res = manager.reserve(attributes={"user_id": f"w{worker}"}, amount=CENT)
        except BudgetExceeded as exc:
            if exc.reason != "limit":
                raise
            ok = False
        else:
            res.settle(CENT)
            ok = True
        with lock:
            ran.append(ok)

    threads = [threading.Thread(target=call) for _ in range(calls)]
    (directory / f"ready-{worker}").touch()
    while not (directory / "go").exists():
        time.sleep(0.001)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    health = manager.health()
    print(
        json.dumps(
            {
                "ran": ran.count(True),
                "denied": ran.count(False),
                "store_failures": health.store_failures,
            }
        )
    )


if __name__ == "__main__":
    main()
