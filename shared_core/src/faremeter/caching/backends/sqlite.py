"""SQLite store (stdlib ``sqlite3``): survives restarts, shared by processes on one host."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from faremeter.sqlite_open import open_wal

__all__ = ["SQLiteBackend"]

_PURGE_EVERY = 1_000
"""Every this many writes, expired entries are deleted."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS faremeter_cache ("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL)",
    "CREATE TABLE IF NOT EXISTS faremeter_cache_locks ("
    " key TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL)",
)


class SQLiteBackend:
    """Entries in a SQLite file (WAL mode, so readers never wait for the writer).

    Expiry times are wall-clock seconds (``timer``) because the file outlives
    the process; inject ``timer`` in tests. Expired rows are ignored on read
    and purged by :meth:`purge_expired`.

    Args:
        path: The database file (created with its directory), or ``:memory:``.
        timer: Seconds since the epoch.
        busy_timeout: Seconds to wait for another process's write lock.
    """

    name = "sqlite"
    shared = True

    def __init__(
        self,
        path: str | Path,
        *,
        timer: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
    ) -> None:
        text = str(path)
        if text.startswith("sqlite:///"):
            text = text[len("sqlite:///") :]
        if text != ":memory:":
            Path(text).parent.mkdir(parents=True, exist_ok=True)
        self.path = text
        self._timer = timer
        self._busy_timeout = busy_timeout
        self._mutex = threading.Lock()
        self._sets = 0
        self._pid = os.getpid()
        self._conn = self._connect()
        ref = weakref.ref(self)

        def fresh_lock_in_child() -> None:  # a lock held by another thread at fork stays held
            backend = ref()
            if backend is not None:
                backend._mutex = threading.Lock()

        os.register_at_fork(after_in_child=fresh_lock_in_child)

    def _connect(self) -> sqlite3.Connection:
        return open_wal(self.path, busy_timeout=self._busy_timeout, schema=_SCHEMA)

    @property
    def _db(self) -> sqlite3.Connection:
        # A connection must not cross fork() (gunicorn/celery preload): the
        # child opens its own on first use and leaves the parent's alone.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._conn = self._connect()
        return self._conn

    def get(self, key: str) -> str | None:
        """See :meth:`CacheBackend.get`."""
        with self._mutex:
            row = self._db.execute(
                "SELECT value, expires FROM faremeter_cache WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        value, expires = row
        if expires is not None and expires <= self._timer():
            return None
        return str(value)

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """See :meth:`CacheBackend.set`."""
        expires = None if ttl is None else self._timer() + ttl
        with self._mutex:
            self._db.execute(
                "INSERT INTO faremeter_cache (key, value, expires) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET"
                " value = excluded.value, expires = excluded.expires",
                (key, value, expires),
            )
            self._sets += 1
            if self._sets % _PURGE_EVERY == 0:
                # Expired rows are never read again; drop them now and then so
                # the file does not grow with every key ever cached.
                self._db.execute(
                    "DELETE FROM faremeter_cache WHERE expires IS NOT NULL AND expires <= ?",
                    (self._timer(),),
                )

    def delete(self, key: str) -> None:
        """See :meth:`CacheBackend.delete`."""
        with self._mutex:
            self._db.execute("DELETE FROM faremeter_cache WHERE key = ?", (key,))

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        """See :meth:`CacheBackend.acquire`."""
        now = self._timer()
        with self._mutex:
            # One statement: insert, or take over a lapsed lock; atomic in SQLite.
            cur = self._db.execute(
                "INSERT INTO faremeter_cache_locks (key, token, expires) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET token = excluded.token, expires = excluded.expires"
                " WHERE faremeter_cache_locks.expires <= ? OR faremeter_cache_locks.token = ?",
                (key, token, now + ttl, now, token),
            )
            return cur.rowcount == 1

    def release(self, key: str, token: str) -> None:
        """See :meth:`CacheBackend.release`."""
        with self._mutex:
            self._db.execute(
                "DELETE FROM faremeter_cache_locks WHERE key = ? AND token = ?", (key, token)
            )

    def purge_expired(self) -> int:
        """Delete expired entries; returns how many went."""
        with self._mutex:
            cur = self._db.execute(
                "DELETE FROM faremeter_cache WHERE expires IS NOT NULL AND expires <= ?",
                (self._timer(),),
            )
            return cur.rowcount

    def clear(self) -> None:
        """See :meth:`CacheBackend.clear`."""
        with self._mutex:
            self._db.execute("DELETE FROM faremeter_cache")
            self._db.execute("DELETE FROM faremeter_cache_locks")

    def close(self) -> None:
        """See :meth:`CacheBackend.close`."""
        with self._mutex:
            if os.getpid() == self._pid:
                self._conn.close()
