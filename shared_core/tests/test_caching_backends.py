"""One contract for every cache store: memory and SQLite here, Redis in integration_tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from faremeter.caching import MemoryBackend, SQLiteBackend, backend_from_url
from faremeter.caching.backends import CacheBackend
from faremeter.caching.contract import check_backend_contract


class Timer:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_backend_contract(kind: str, tmp_path: Path) -> None:
    timer = Timer()

    def advance(seconds: float) -> None:
        timer.now += seconds

    backend: CacheBackend = (
        MemoryBackend(timer=timer)
        if kind == "memory"
        else SQLiteBackend(tmp_path / "c.db", timer=timer)
    )
    check_backend_contract(backend, advance)
    backend.close()


def test_memory_backend_is_a_bounded_lru() -> None:
    backend = MemoryBackend(maxsize=2)
    backend.set("a", "1", None)
    backend.set("b", "2", None)
    assert backend.get("a") == "1"  # a is now the most recently used
    backend.set("c", "3", None)
    assert (backend.get("a"), backend.get("b"), backend.get("c")) == ("1", None, "3")
    assert len(backend) == 2
    with pytest.raises(ValueError, match="maxsize"):
        MemoryBackend(maxsize=0)


def test_sqlite_purges_expired_rows_as_it_writes(tmp_path: Path) -> None:
    import sqlite3

    timer = Timer()
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'c.db'}", timer=timer)
    for i in range(500):
        backend.set(f"old{i}", "x", 1)
    timer.now += 2
    for i in range(500):
        backend.set(f"new{i}", "x", None)  # the 1000th write purges the expired 500
    rows = sqlite3.connect(tmp_path / "c.db").execute("SELECT count(*) FROM faremeter_cache")
    assert rows.fetchone()[0] == 500
    assert backend.purge_expired() == 0


def test_backend_from_url(tmp_path: Path) -> None:
    assert isinstance(backend_from_url("memory"), MemoryBackend)
    assert isinstance(backend_from_url(f"sqlite:///{tmp_path}/x.db"), SQLiteBackend)
    with pytest.raises(ValueError, match="redis://"):
        backend_from_url("memcached://x")
