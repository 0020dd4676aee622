"""Hot path, overflow policy, flush/close and real storage faults."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from faremeter.cost import Cost
from faremeter.errors import ConfigError
from faremeter.ledger import Ledger, MemoryStore, SQLiteStore
from faremeter.ledger.schema import LATEST_VERSION
from faremeter.spans import SpanKind, SpanRecord


def mk(i: int, trace: int = 0, parent: int | None = None) -> SpanRecord:
    return SpanRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{i:016x}",
        parent_span_id=None if parent is None else f"{parent:016x}",
        name="call",
        kind=SpanKind.LLM,
        start_ns=1_700_000_000_000_000_000 + i,
        end_ns=1_700_000_000_000_000_100 + i,
        cost=Cost(input=Decimal("0.001")),
        attributes={"user_id": "u"},
    )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "mysql://x",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///a.db?bogus=1",
        "redis://localhost",
    ],
)
def test_bad_url_is_a_config_error_naming_forms(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        Ledger.from_url(url)
    assert repr(url) in str(err.value) and "sqlite:///" in str(err.value)


def test_sqlite_urls_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = Ledger.from_url("sqlite:///deep/dir/l.db")
    rel.record(mk(1))
    assert rel.flush(5)
    rel.close()
    assert (tmp_path / "deep/dir/l.db").exists()
    absolute = Ledger.from_url(f"sqlite:///{tmp_path}/abs/l.db")  # sqlite:////tmp/...
    assert isinstance(absolute.store, SQLiteStore) and absolute.store.path.is_absolute()
    absolute.close()


def test_import_is_cheap_and_psycopg_is_lazy() -> None:
    code = (
        "import sys, faremeter.ledger as L; assert 'psycopg' not in sys.modules;"
        "L.Ledger.from_url('memory').close(); assert 'psycopg' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_record_never_raises_and_counts_internal_faults() -> None:
    class Broken(MemoryStore):
        pass

    led = Ledger(Broken())
    led.record("not a span")  # type: ignore[arg-type]
    led.record(None)  # type: ignore[arg-type]
    assert led.flush(5)
    h = led.health()
    assert h.dropped + h.rejected >= 1
    led.close()


class SlowStore(MemoryStore):
    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def write(self, batch: Sequence[SpanRecord]) -> int:
        self.gate.wait()
        return super().write(batch)


def test_drop_policy_counts_and_logs_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    led = Ledger(SlowStore(gate), queue_size=10, overflow="drop", max_batch=5)
    with caplog.at_level(logging.WARNING, "faremeter.ledger"):
        for i in range(200):
            led.record(mk(i))
    gate.set()
    assert led.flush(5)
    h = led.health()
    stored = len(led.spans())
    assert h.dropped > 0 and stored + h.dropped == 200
    dropping = [r for r in caplog.records if "dropping spans" in r.getMessage()]
    assert len(dropping) == 1
    led.close()


def test_block_policy_loses_nothing() -> None:
    gate = threading.Event()
    led = Ledger(SlowStore(gate), queue_size=10, overflow="block", max_batch=5)
    threading.Timer(0.3, gate.set).start()
    for i in range(500):
        led.record(mk(i))
    assert led.flush(10)
    h = led.health()
    assert h.dropped == 0 and h.blocked > 0 and len(led.spans()) == 500
    led.close()


def test_flush_false_while_down_and_record_after_close_is_counted() -> None:
    gate = threading.Event()
    led = Ledger(SlowStore(gate))
    led.record(mk(1))
    assert led.flush(0.2) is False
    gate.set()
    assert led.flush(5) is True
    led.close()
    led.record(mk(2))
    assert led.health().dropped == 1
    led.close()  # idempotent


def test_malformed_span_is_rejected_alone(tmp_path: Path) -> None:
    led = Ledger.from_url(f"sqlite:///{tmp_path}/l.db")
    bad = SpanRecord(**{**{f: getattr(mk(2), f) for f in mk(2).__slots__}, "start_ns": "soon"})  # type: ignore[arg-type]
    for s in (mk(1), bad, mk(3)):
        led.record(s)
    assert led.flush(5)
    h = led.health()
    assert h.rejected == 1 and h.ok
    assert [s.span_id[-1] for s in led.spans()] == ["1", "3"]
    led.close()


def test_sqlite_locked_past_timeout_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.db"
    led = Ledger.from_url(f"sqlite:///{path}?timeout=0.05")
    led.record(mk(0))
    assert led.flush(5)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.WARNING, "faremeter.ledger"):
        for i in range(1, 1001):
            led.record(mk(i))  # never raises, never blocks
        deadline = time.monotonic() + 5
        while led.health().write_failures < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        h = led.health()
        assert not h.ok and h.write_failures >= 3 and "locked" in (h.last_error or "")
        assert h.queued == 1000 and h.last_error_at is not None
        assert led.flush(0.1) is False
        locker.execute("ROLLBACK")
        locker.close()
        assert led.flush(10)
    h = led.health()
    assert h.ok and h.written == 1001 and h.dropped == 0
    assert len(led.spans()) == 1001
    episodes = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(episodes) == 1  # once per episode, not per span or retry
    led.close()


def test_postgres_down_is_reported_not_raised() -> None:
    pytest.importorskip("psycopg")
    led = Ledger.from_url("postgresql://postgres@127.0.0.1:1/test?connect_timeout=1")
    for i in range(100):
        led.record(mk(i))
    deadline = time.monotonic() + 5
    while led.health().write_failures < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    h = led.health()
    assert not h.ok and h.backend == "postgresql" and h.queued == 100
    assert h.last_error and "OperationalError" in h.last_error
    led.close(timeout=0.5)
    h = led.health()
    assert h.dropped == 100  # counted and logged, never silent


def test_unwritable_path_is_reported_not_raised() -> None:
    led = Ledger.from_url("sqlite:////dev/null/x/ledger.db")
    led.record(mk(1))
    deadline = time.monotonic() + 5
    while led.health().write_failures < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    h = led.health()
    assert not h.ok and h.queued == 1 and h.last_error
    led.close(timeout=0.2)
    assert led.health().dropped == 1


def test_schema_is_versioned_and_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    led = Ledger.from_url(f"sqlite:///{path}")
    led.record(mk(1))
    assert led.flush(5)
    led.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM faremeter_schema").fetchall() == [(LATEST_VERSION,)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("UPDATE faremeter_schema SET version = 99")
    conn.commit()
    conn.close()
    led = Ledger.from_url(f"sqlite:///{path}")
    led.record(mk(2))
    deadline = time.monotonic() + 30  # the writer's first attempt; bounded, not timed
    while not led.health().last_error and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "newer than this faremeter" in (led.health().last_error or "")
    led.close(timeout=0.1)


def test_version_1_ledger_migrates_forward_keeping_its_data(tmp_path: Path) -> None:
    from faremeter.ledger.schema import MIGRATIONS

    assert LATEST_VERSION >= 2 and 1 in MIGRATIONS
    path = tmp_path / "v1.db"
    ledger = Ledger.from_url(f"sqlite:///{path}")
    ledger.record(_span_for_migration())
    assert ledger.flush(10)
    ledger.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE faremeter_schema SET version = 1")
    conn.commit()
    conn.close()
    reopened = Ledger.from_url(f"sqlite:///{path}")
    assert [s.span_id for s in reopened.spans()] == ["00000000000000aa"]
    reopened.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM faremeter_schema").fetchall() == [(LATEST_VERSION,)]
    conn.close()


def _span_for_migration() -> SpanRecord:
    return SpanRecord(
        trace_id="a" * 32,
        span_id="00000000000000aa",
        name="x",
        kind=SpanKind.LLM,
        start_ns=1,
        end_ns=2,
        attributes={"user_id": "u1"},
    )
