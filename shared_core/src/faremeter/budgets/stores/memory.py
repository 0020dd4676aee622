"""In-process budget counters: one lock, plain dicts.

Correct across threads and asyncio tasks of one process (the lock is held only
for dictionary arithmetic, never across an ``await``). For several processes
use SQLite; for several hosts, Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from faremeter.budgets.stores.base import Check, ReserveResult

__all__ = ["MemoryBudgetStore"]

_SWEEP_EVERY = 8_192
_NS = 1_000_000_000


class MemoryBudgetStore:
    """Counters in a dict; expired window counters are swept periodically.

    Args:
        clock: Nanoseconds since the epoch (expiry only); injectable for tests.
    """

    prefix = ""

    def __init__(self, *, clock: Callable[[], int] | None = None) -> None:
        self._clock = clock or time.time_ns
        self._values: dict[str, int] = {}
        self._expires: dict[str, int] = {}
        self._claims: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def reserve(self, checks: Sequence[Check], amount: int) -> ReserveResult:
        """Hold ``amount`` on every check under one lock, or on none."""
        values = self._values
        get = values.get
        totals: list[tuple[int, int]] = []
        with self._lock:
            for check in checks:
                keys, reserved_key, _, limit, _ = check
                spent = get(keys[0], 0) if len(keys) == 1 else sum(get(k, 0) for k in keys)
                reserved = get(reserved_key, 0)
                totals.append((spent, reserved))
                if limit >= 0 and spent + reserved + amount > limit:
                    return ReserveResult(len(totals) - 1, totals)
            for check in checks:
                key = check[1]
                held = get(key)
                if held is None:
                    values[key] = amount
                    self._expire(key, check[4])
                else:
                    values[key] = held + amount
            self._ops += 1
            if self._ops >= _SWEEP_EVERY:
                self._sweep()
        return ReserveResult(-1, totals)

    def settle(self, checks: Sequence[Check], reserved: int, actual: int) -> None:
        """Release ``reserved`` and commit ``actual`` on every check."""
        values = self._values
        get = values.get
        with self._lock:
            for check in checks:
                key = check[1]
                held = get(key, 0) - reserved
                values[key] = held if held > 0 else 0
                if actual:
                    key = check[2]
                    spent = get(key)
                    if spent is None:
                        values[key] = actual
                        self._expire(key, check[4])
                    else:
                        values[key] = spent + actual

    def read(self, checks: Sequence[Check]) -> list[tuple[int, int]]:
        """``(spent, reserved)`` per check."""
        values = self._values
        with self._lock:
            return [
                (sum(values.get(k, 0) for k in c.spent_keys), values.get(c.reserved_key, 0))
                for c in checks
            ]

    def scan(self, prefix: str) -> dict[str, int]:
        """Counters whose key starts with ``prefix``."""
        with self._lock:
            return {k: v for k, v in self._values.items() if k.startswith(prefix)}

    def claim(self, key: str, ttl_s: int) -> bool:
        """True the first time ``key`` is claimed until it expires."""
        now = self._clock()
        with self._lock:
            until = self._claims.get(key)
            if until is not None and until > now:
                return False
            self._claims[key] = now + ttl_s * _NS
            return True

    def close(self) -> None:
        """Nothing to release."""

    def _expire(self, key: str, ttl_s: int) -> None:
        self._expires[key] = self._clock() + ttl_s * _NS

    def _sweep(self) -> None:
        # Caller holds the lock. Window counters carry their window in the key,
        # so an expired counter is never read again: dropping it only frees memory.
        self._ops = 0
        now = self._clock()
        dead = [k for k, until in self._expires.items() if until <= now]
        for key in dead:
            if key.endswith(":r") and self._values.get(key, 0) > 0:
                self._expires[key] = now + 3_600 * _NS  # still in flight: keep
                continue
            self._expires.pop(key, None)
            self._values.pop(key, None)
        if len(self._claims) > 10_000:
            self._claims = {k: v for k, v in self._claims.items() if v > now}
