"""Budget counters in SQLite: processes on one host share one file.

Every reservation is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's
write lock first, reads every matching budget's counters, and holds the money
against all of them or none, so concurrent processes cannot both fit under a
limit that has room for one. Settling is one more such transaction. WAL keeps
readers (``faremeter budgets``) from blocking writers; ``timeout`` bounds how
long a call waits for another process's lock before the store counts as
unavailable.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from faremeter.budgets.stores.base import Check, ReserveResult, StoreUnavailable
from faremeter.sqlite_open import open_wal

__all__ = ["SQLiteBudgetStore"]

_NS = 1_000_000_000
_SWEEP_EVERY = 4_096
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS faremeter_budget_counters ("
    " key TEXT PRIMARY KEY, amount INTEGER NOT NULL, expires_at INTEGER NOT NULL"
    ") WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS faremeter_budget_claims ("
    " key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID",
)
_UPSERT = (
    "INSERT INTO faremeter_budget_counters (key, amount, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT(key) DO UPDATE SET amount = max(0, amount + excluded.amount),"
    " expires_at = max(expires_at, excluded.expires_at)"
)


class SQLiteBudgetStore:
    """Counters in a SQLite file (created on first use).

    Args:
        path: Database file; parent directories are created.
        timeout_s: Longest wait for another process's lock, in seconds.
        clock: Nanoseconds since the epoch (expiry only); injectable.
    """

    prefix = ""

    def __init__(
        self,
        path: str | Path,
        *,
        timeout_s: float = 0.5,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._clock = clock or time.time_ns
        self._local = threading.local()
        self._ops = 0

    # ------------------------------------------------------------ connection

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = open_wal(self.path, busy_timeout=self.timeout_s, schema=_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"SQLite budget store {self.path}: {exc}") from exc
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn

    def _begin(self) -> sqlite3.Connection:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite budget store {self.path}: {exc}") from exc
        return conn

    # ------------------------------------------------------------ operations

    def reserve(self, checks: Sequence[Check], amount: int) -> ReserveResult:
        """One ``BEGIN IMMEDIATE`` transaction: read every check, hold all or none."""
        conn = self._begin()
        try:
            values = self._values(conn, checks)
            totals: list[tuple[int, int]] = []
            for index, check in enumerate(checks):
                spent = sum(values.get(k, 0) for k in check.spent_keys)
                reserved = max(values.get(check.reserved_key, 0), 0)
                totals.append((spent, reserved))
                if check.limit >= 0 and spent + reserved + amount > check.limit:
                    conn.execute("ROLLBACK")
                    return ReserveResult(index, totals)
            now = self._clock()
            conn.executemany(
                _UPSERT, [(c.reserved_key, amount, now + c.ttl_s * _NS) for c in checks]
            )
            self._maybe_sweep(conn, now)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StoreUnavailable(f"SQLite budget store {self.path}: {exc}") from exc
        return ReserveResult(-1, totals)

    def settle(self, checks: Sequence[Check], reserved: int, actual: int) -> None:
        """One transaction: release ``reserved`` and commit ``actual`` on every check."""
        conn = self._begin()
        try:
            now = self._clock()
            rows: list[tuple[str, int, int]] = []
            for c in checks:
                expires = now + c.ttl_s * _NS
                if reserved:
                    rows.append((c.reserved_key, -reserved, expires))
                if actual:
                    rows.append((c.commit_key, actual, expires))
            conn.executemany(_UPSERT, rows)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StoreUnavailable(f"SQLite budget store {self.path}: {exc}") from exc

    def read(self, checks: Sequence[Check]) -> list[tuple[int, int]]:
        """``(spent, reserved)`` per check (a read, no write lock)."""
        conn = self._conn()
        try:
            values = self._values(conn, checks)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite budget store {self.path}: {exc}") from exc
        return [
            (sum(values.get(k, 0) for k in c.spent_keys), max(values.get(c.reserved_key, 0), 0))
            for c in checks
        ]

    def scan(self, prefix: str) -> dict[str, int]:
        """Live counters whose key starts with ``prefix``."""
        conn = self._conn()
        try:
            rows = conn.execute(
                "SELECT key, amount FROM faremeter_budget_counters"
                " WHERE substr(key, 1, ?) = ? AND expires_at > ?",
                (len(prefix), prefix, self._clock()),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite budget store {self.path}: {exc}") from exc
        return {str(k): int(v) for k, v in rows}

    def claim(self, key: str, ttl_s: int) -> bool:
        """True the first time ``key`` is claimed until it expires (``INSERT OR IGNORE``)."""
        conn = self._begin()
        try:
            now = self._clock()
            conn.execute(
                "DELETE FROM faremeter_budget_claims WHERE key = ? AND expires_at <= ?", (key, now)
            )
            cursor = conn.execute(
                "INSERT OR IGNORE INTO faremeter_budget_claims (key, expires_at) VALUES (?, ?)",
                (key, now + ttl_s * _NS),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StoreUnavailable(f"SQLite budget store {self.path}: {exc}") from exc
        return cursor.rowcount == 1

    def close(self) -> None:
        """Close this thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _values(conn: sqlite3.Connection, checks: Sequence[Check]) -> dict[str, int]:
        keys: list[str] = []
        for c in checks:
            keys.extend(c.spent_keys)
            keys.append(c.reserved_key)
        marks = ",".join("?" * len(keys))
        rows = conn.execute(
            f"SELECT key, amount FROM faremeter_budget_counters WHERE key IN ({marks})",
            keys,
        ).fetchall()
        return {str(k): int(v) for k, v in rows}

    def _maybe_sweep(self, conn: sqlite3.Connection, now: int) -> None:
        # Window counters carry their window in the key, so an expired one is
        # never read again; deleting them only bounds the file's size.
        self._ops += 1
        if self._ops >= _SWEEP_EVERY:
            self._ops = 0
            conn.execute(
                "DELETE FROM faremeter_budget_counters WHERE expires_at <= ?"
                " AND (amount = 0 OR key NOT LIKE '%:r')",
                (now,),
            )

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
