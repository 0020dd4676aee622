"""Opening one SQLite file from many connections at once never fails on a lock."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from faremeter.sqlite_open import open_wal

SCHEMA = ("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)",)


def test_concurrent_first_opens_of_a_new_file_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    start = threading.Barrier(16)
    errors: list[BaseException] = []
    conns: list[sqlite3.Connection] = []
    lock = threading.Lock()

    def open_one() -> None:
        start.wait()
        try:
            conn = open_wal(path, busy_timeout=0.0, schema=SCHEMA)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                conns.append(conn)

    threads = [threading.Thread(target=open_one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(conns) == 16
    assert conns[0].execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The operation timeout is the caller's, not the set-up's.
    assert conns[0].execute("PRAGMA busy_timeout").fetchone()[0] == 0
    for conn in conns:
        conn.close()


def test_a_lock_released_during_set_up_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Event()

    def release_when_asked() -> None:
        released.wait()
        holder.execute("COMMIT")

    releaser = threading.Thread(target=release_when_asked)
    releaser.start()
    # The first attempts find the file locked; the release lands while set-up retries.
    threading.Timer(0.2, released.set).start()
    conn = open_wal(path, busy_timeout=0.0, schema=SCHEMA, setup_timeout=60.0)
    releaser.join()
    conn.execute("INSERT INTO t VALUES ('a', 1)")
    assert conn.execute("SELECT v FROM t").fetchone() == (1,)
    conn.close()
    holder.close()


def test_a_lock_held_past_the_set_up_deadline_raises(tmp_path: Path) -> None:
    path = tmp_path / "stuck.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        open_wal(path, busy_timeout=0.0, schema=SCHEMA, setup_timeout=0.05)
    holder.execute("COMMIT")
    holder.close()


def test_memory_database_is_set_up_without_wal() -> None:
    conn = open_wal(":memory:", busy_timeout=0.5, schema=SCHEMA)
    conn.execute("INSERT INTO t VALUES ('a', 1)")
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 500
    conn.close()
