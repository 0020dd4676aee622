"""SQLite ledger store: the zero-config default, shared by processes on one host.

WAL lets readers run while a writer commits; ``busy_timeout`` makes a writer
wait for another process's transaction instead of failing at once. Each
writing process has one connection (used only by its writer thread); query
threads get their own read connections. Every write is one ``BEGIN
IMMEDIATE`` transaction, so a batch and its rollup land together or not at all.

``synchronous=NORMAL`` (the WAL recommendation) means a committed batch
survives the process being killed; only an OS crash or power cut can lose the
last commits. Pass ``synchronous="FULL"`` for that too, at a throughput cost.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faremeter.ledger.codec import decode_span, encode_span, rollup
from faremeter.ledger.filters import AttrRef, QueryFilter
from faremeter.ledger.results import CostRow, CostSplit, PercentileRow, TimeBucket, TopTrace
from faremeter.ledger.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    SQLITE,
    make_names,
    newer_schema_message,
    schema_table_ddl,
)
from faremeter.ledger.sqlbuild import Sql
from faremeter.spans import SpanRecord

__all__ = ["SQLiteStore", "SchemaVersionError"]

_ORPHANS: list[object] = []
"""Connections inherited over fork: kept referenced so they are never closed in the child."""

_CHUNK = 500  # ids per "IN (...)" lookup, well under any SQLite variable limit


class SchemaVersionError(RuntimeError):
    """The database was written by a newer faremeter; writing would corrupt it."""


class SQLiteStore:
    """Spans in one SQLite file.

    Args:
        path: Database file; parent directories are created on first use.
        timeout: Seconds to wait for another connection's lock (``busy_timeout``).
        prefix: Table name prefix.
        synchronous: ``NORMAL`` (default) or ``FULL``.
    """

    backend = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 5.0,
        prefix: str = "faremeter_",
        synchronous: str = "NORMAL",
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "OFF", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.path = Path(path)
        self.timeout = timeout
        self.synchronous = synchronous.upper()
        self.names = make_names(prefix)
        self.sql = Sql(SQLITE, self.names)
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrated = False

    # -- connections -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # The default 2 MB page cache thrashes once a dozen indexes outgrow
            # it; 64 MB per connection plus mmap'd reads keep 1M-span ledgers fast.
            conn.execute("PRAGMA cache_size = -65536")
            conn.execute("PRAGMA mmap_size = 1073741824")
            if not self._migrated:
                self._migrate(conn)
                self._migrated = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create or upgrade the schema under the database write lock."""
        version = self._version(conn)
        if version == LATEST_VERSION:
            return
        if version is not None and version > LATEST_VERSION:
            raise SchemaVersionError(newer_schema_message(version, str(self.path)))
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(schema_table_ddl(SQLITE, self.names))
            version = self._version(conn) or 0
            if version > LATEST_VERSION:
                raise SchemaVersionError(newer_schema_message(version, str(self.path)))
            for v in range(version + 1, LATEST_VERSION + 1):
                for stmt in MIGRATIONS[v](SQLITE, self.names):
                    conn.execute(stmt)
            conn.execute(f"DELETE FROM {self.names.schema_table}")
            conn.execute(
                f"INSERT INTO {self.names.schema_table} (version) VALUES (?)", (LATEST_VERSION,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _version(self, conn: sqlite3.Connection) -> int | None:
        try:
            row = conn.execute(f"SELECT MAX(version) FROM {self.names.schema_table}").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return None if row is None or row[0] is None else int(row[0])

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._reader().execute(sql, params).fetchall()

    # -- writes ------------------------------------------------------------

    def write(self, batch: Sequence[SpanRecord]) -> int:
        """Insert the new spans and their rollup in one ``BEGIN IMMEDIATE``."""
        rows: dict[str, tuple[Any, ...]] = {}
        for span in batch:
            if span.span_id not in rows:
                rows[span.span_id] = encode_span(span)
        if self._writer is None:
            self._writer = self._connect()
        conn = self._writer
        spans_table = self.names.spans
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = list(rows)
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for (existing,) in conn.execute(
                    f"SELECT span_id FROM {spans_table} WHERE span_id IN ({marks})", chunk
                ):
                    del rows[existing]
            new = list(rows.values())
            if new:
                conn.executemany(self.sql.insert_span, new)
                conn.executemany(self.sql.upsert_trace, [d.row() for d in rollup(new)])
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._drop_writer()
            raise
        return len(new)

    def _drop_writer(self) -> None:
        conn, self._writer = self._writer, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def is_transient(self, exc: BaseException) -> bool:
        """Locked, busy, unopenable or I/O errors may clear; bad data will not."""
        if isinstance(exc, sqlite3.OperationalError | OSError):
            self._drop_writer()
            return True
        return isinstance(exc, SchemaVersionError | sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.ProgrammingError
        )

    def after_fork(self) -> None:
        """Forget (without closing) connections inherited from the parent process."""
        _ORPHANS.extend([c for c in (self._writer, *self._readers) if c is not None])
        self._writer = None
        self._readers = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the writer and every reader connection."""
        self._drop_writer()
        with self._lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # -- queries -----------------------------------------------------------

    def spans(self, flt: QueryFilter, limit: int | None) -> list[SpanRecord]:
        """Matching spans by start time, then span id."""
        return [decode_span(r) for r in self._query(*self.sql.spans(flt, limit))]

    def cost_by(self, attr: AttrRef, flt: QueryFilter) -> list[CostRow]:
        """Spend grouped by one attribute."""
        return self.sql.cost_rows(self._query(*self.sql.cost_by(attr, flt)))

    def cost_split(self, flt: QueryFilter) -> CostSplit:
        """LLM vs tool vs other."""
        return self.sql.split_result(self._query(*self.sql.cost_split(flt)))

    def time_series(
        self, width_ns: int, attr: AttrRef | None, flt: QueryFilter
    ) -> list[TimeBucket]:
        """Spend per bucket."""
        return self.sql.buckets(self._query(*self.sql.time_series(width_ns, attr, flt)))

    def percentiles(
        self, attr: AttrRef, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Per-trace total quantiles per root attribute."""
        rows = self._query(*self.sql.percentiles(attr, quantiles, flt))
        return self.sql.percentile_rows(rows, quantiles)

    def top_traces(self, n: int, flt: QueryFilter) -> list[TopTrace]:
        """Most expensive traces."""
        return self.sql.top_rows(self._query(*self.sql.top_traces(n, flt)))
