"""Real-service fixtures: SQLite files, PostgreSQL schemas, Redis.

Services are used for real; when one is unreachable the tests that need it
skip with a reason saying how to start it. Each PostgreSQL test gets its own
schema (unique per run and per test) and drops it afterwards, so parallel
runs and reruns never collide.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("FAREMETER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FAREMETER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_HOWTO = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
    " (trust auth, database `test`) or set FAREMETER_TEST_POSTGRES_URL"
)
REDIS_HOWTO = "start it with `redis-server --daemonize yes` or set FAREMETER_TEST_REDIS_URL"


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install 'faremeter[postgres]'"
    try:
        with psycopg.connect(PG_URL, connect_timeout=2):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}); {PG_HOWTO}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A ledger URL for a fresh SQLite file."""
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A ledger URL whose tables live in a schema of their own, dropped afterwards."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"fm_it_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def redis_url() -> str:
    """Redis for budget/cache tests; skips with how to start it."""
    host, port = "127.0.0.1", 6379
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}; {REDIS_HOWTO}")
    return REDIS_URL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of the test's own on a free port, for tests that stop or pause it.

    Yields its URL and process; the process is killed afterwards (resumed
    first if a test paused it with SIGSTOP).
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
        except OSError:
            time.sleep(0.01)
    else:
        proc.kill()
        pytest.fail("private redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0", proc
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
