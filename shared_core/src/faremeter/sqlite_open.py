"""Opening a SQLite file that several threads and processes open at once.

The budget store and the cache backend each keep one file that many
connections open concurrently, usually at the same moment (a pool of workers
starting, a thread's first call racing the main thread's). Switching a new
file to WAL needs SQLite's exclusive lock, and a connection that finds the
file mid-switch or mid-recovery can get ``database is locked`` without its
busy handler running long enough — on a loaded host, past a short operation
timeout such as the budget store's 0.5 s. Set-up is therefore retried until
its own deadline, and only then does the connection take the caller's
operation timeout.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["open_wal"]

_RETRY_PAUSE_S = 0.01


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def open_wal(
    path: str | Path,
    *,
    busy_timeout: float,
    schema: Sequence[str] = (),
    setup_timeout: float = 10.0,
    synchronous: str = "NORMAL",
) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL on and ``schema`` applied.

    Args:
        path: The database file, or ``:memory:``.
        busy_timeout: Seconds an operation waits for another connection's lock.
        schema: Idempotent statements (``CREATE ... IF NOT EXISTS``) run once.
        setup_timeout: Seconds the set-up keeps retrying a locked file.
        synchronous: SQLite's ``synchronous`` setting.

    Raises:
        sqlite3.Error: The file cannot be opened or set up within
            ``setup_timeout`` (the caller turns this into its own error).
    """
    conn = sqlite3.connect(
        path,
        timeout=max(busy_timeout, setup_timeout),
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        deadline = time.monotonic() + setup_timeout
        while True:
            try:
                if str(path) != ":memory:":
                    # Reading the mode needs no lock; only a new file pays the switch.
                    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                    if str(mode).lower() != "wal":
                        conn.execute("PRAGMA journal_mode=WAL")
                for statement in schema:
                    conn.execute(statement)
                break
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(_RETRY_PAUSE_S)
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA busy_timeout={max(0, int(busy_timeout * 1000))}")
    except BaseException:
        conn.close()
        raise
    return conn
