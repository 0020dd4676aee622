"""A real process records spans and goes away: every span is in the SQLite ledger.

(a) normal exit without flush -> the atexit hook drains the queue;
(b) SIGTERM while the writer still holds queued spans (the test keeps the
    database locked so they cannot be written yet) -> the handler flushes,
    then the process dies by SIGTERM as it would have without faremeter;
(c)/(d) an application's own SIGTERM handler, installed before or after the
    ledger, keeps working.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from faremeter.ledger import Ledger

N = 20_000
# How long a child may take to flush and exit once told to. Generous: a busy
# disk can make the (bounded, 20 s) flush slow. The children sleep far longer
# (600 s), so a signal that is not handled still fails rather than passing late.
EXIT_TIMEOUT = 150

PRELUDE = textwrap.dedent(
    """
    import os, signal, sys, time
    from decimal import Decimal
    from faremeter.cost import Cost
    from faremeter.ledger import Ledger
    from faremeter.spans import SpanKind, SpanRecord

    def spans(n):
        for i in range(n):
            yield SpanRecord(
                trace_id=f"{i // 10:032x}", span_id=f"{i:016x}",
                parent_span_id=None if i % 10 == 0 else f"{i - 1:016x}",
                name="s", kind=SpanKind.LLM, start_ns=1_700_000_000_000_000_000 + i,
                end_ns=1_700_000_000_000_000_001 + i, cost=Cost(input=Decimal("0.001")))
    """
)


def start(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM faremeter_spans").fetchone()[0]


def prepare_and_lock(path: Path) -> sqlite3.Connection:
    """Create the schema, then hold the write lock so the child's spans stay queued."""
    Ledger.from_url(f"sqlite:///{path}").close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    return locker


def wait_for_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(prefix), (line, proc.stderr.read() if proc.stderr else "")
    return line


def test_normal_exit_without_flush_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    proc = start(
        f"""
        led = Ledger.from_url("sqlite:///{path}")
        for s in spans({N}):
            led.record(s)
        print("queued", led.health().queued, flush=True)
        """
    )
    _, err = proc.communicate(timeout=EXIT_TIMEOUT)
    assert proc.returncode == 0, err
    assert stored(path) == N


@pytest.mark.slow
def test_sigterm_with_queued_spans_flushes_then_dies_by_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    locker = prepare_and_lock(path)
    try:
        proc = start(
            f"""
            led = Ledger.from_url("sqlite:///{path}?timeout=0.05")
            for s in spans({N}):
                led.record(s)
            while led.health().write_failures == 0:
                time.sleep(0.01)
            print("queued", led.health().queued, flush=True)
            time.sleep(600)
            print("not killed", flush=True)
            """
        )
        line = wait_for_line(proc, "queued")
        assert int(line.split()[1]) > 0  # the writer really still had spans
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # still flushing: the data is not written yet
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    assert proc.returncode == -signal.SIGTERM, (out, err)  # 143 in a shell
    assert "not killed" not in out
    assert stored(path) == N


def test_sigterm_chains_to_handler_installed_before(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    proc = start(
        f"""
        def mine(signum, frame):
            print("app handler", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, mine)
        led = Ledger.from_url("sqlite:///{path}")
        for s in spans(5000):
            led.record(s)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    assert proc.returncode == 7, err
    assert "app handler" in out
    assert stored(path) == 5000


def test_handler_installed_after_still_works_and_atexit_flushes(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    proc = start(
        f"""
        led = Ledger.from_url("sqlite:///{path}")
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(3))
        for s in spans(5000):
            led.record(s)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=EXIT_TIMEOUT)
    assert proc.returncode == 3, err
    assert stored(path) == 5000


def test_ignored_sigterm_stays_ignored(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    proc = start(
        f"""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        led = Ledger.from_url("sqlite:///{path}")
        print("ready", flush=True)
        time.sleep(1.0)
        print("survived", flush=True)
        """
    )
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "survived" in out
