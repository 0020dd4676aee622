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
import itertools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faremeter.ledger.backfill import Database, backfill
from faremeter.ledger.codec import TRACE_COLUMNS, encode_span, rollup
from faremeter.ledger.hourly import rollup_deltas
from faremeter.ledger.hourly_sql import HourlySql, RollupQueries
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
_PAGE_SIZE = 16_384  # bytes per page of a new database file (SQLite's default: 4,096)
_WAL_CHECKPOINT_BYTES = 40 << 20  # WAL written between automatic checkpoints (default ~4 MB)
_WAL_LIMIT_BYTES = 64 << 20  # WAL file size kept after a checkpoint
_ROWS_PER_STMT = 50  # rows per multi-row INSERT (bounded by the variable limit too)


class SchemaVersionError(RuntimeError):
    """The database was written by a newer faremeter; writing would corrupt it."""


class _Conn(Database):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any]) -> Any:
        return self.conn.execute(sql, params)

    def run(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.execute(sql, params)


class SQLiteStore(RollupQueries):
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
        self.hourly = HourlySql(self.sql)
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrated = False
        self._upserts: dict[int, str] = {}
        self._statements: dict[tuple[str, int], str] = {}
        self._max_vars = 999  # SQLite's historical default; raised from the connection

    # -- connections -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA mmap_size = 1073741824")
            self._max_vars = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            if not self._migrated:
                self._migrate(conn)
                self._migrated = True
            # The default 2 MB page cache thrashes once the indexes outgrow it;
            # 64 MB per connection plus mmap'd reads keep 1M-span ledgers fast.
            # Set after _migrate: SQLite turns the size into a page count with
            # the page size of that moment, and a new file's changes there.
            conn.execute("PRAGMA cache_size = -65536")
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
        if version is None:
            # A new file: 16 KiB pages (before WAL, which fixes the size)
            # need a quarter of the page writes and syscalls per span of
            # 4 KiB ones. A no-op on a file another process already created.
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
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
                backfill(v, SQLITE, self.names, _Conn(conn))
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
        spans: dict[str, SpanRecord] = {}
        for span in batch:
            if span.span_id not in rows:
                rows[span.span_id] = encode_span(span)
                spans[span.span_id] = span
        if self._writer is None:
            self._writer = self._open_writer()
        conn = self._writer
        new = list(rows.values())
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Optimistic: insert everything (ON CONFLICT DO NOTHING). If every
            # row went in, all are new and the rollup takes them all. If not
            # (a retried batch, another process wrote some), undo and insert
            # only the rows whose ids are not stored yet, so the rollup never
            # counts a span twice.
            before = conn.total_changes
            self._insert(conn, new)
            if conn.total_changes - before != len(new):
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                new = self._unstored(conn, rows)
                if new:
                    self._insert(conn, new)
            if new:
                self._upsert(conn, [d.row() for d in rollup(new)])
                self._rollups(conn, [(spans[r[0]], r) for r in new])
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._drop_writer()
            raise
        return len(new)

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        # Checkpoint every ~40 MB of WAL instead of every 1,000 pages: hot
        # index and rollup pages are copied back once per checkpoint rather
        # than many times; the WAL file is cut back to 64 MB after one.
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA wal_autocheckpoint = {max(1000, _WAL_CHECKPOINT_BYTES // page)}")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT_BYTES}")
        return conn

    def _unstored(
        self, conn: sqlite3.Connection, rows: dict[str, tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """The rows whose span ids are not in the table yet."""
        rows = dict(rows)
        ids = list(rows)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for (existing,) in conn.execute(
                f"SELECT span_id FROM {self.names.spans} WHERE span_id IN ({marks})", chunk
            ):
                del rows[existing]
        return list(rows.values())

    def _insert(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert a batch of new span rows, leaving out all-NULL columns.

        Most spans leave a dozen of the 30 columns NULL (no error, no tags,
        unused attribute columns); binding a NULL is the slowest bind in
        ``sqlite3`` (it goes through the adapter lookup), so columns NULL in
        every row of the batch are left to their NULL default instead. The
        transposition and the per-column test run in C.
        """
        columns = list(zip(*rows, strict=True))
        n = len(rows)
        keep = tuple(i for i, col in enumerate(columns) if col.count(None) != n)
        if len(keep) < len(columns):
            rows = list(zip(*[columns[i] for i in keep], strict=True))
        self._many(conn, rows, len(keep), lambda k: self.sql.insert_span_columns(keep, k))

    def _upsert(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        self._many(conn, rows, len(TRACE_COLUMNS), self._upsert_sql)

    def _rollups(self, conn: sqlite3.Connection, items: list[tuple[SpanRecord, Any]]) -> None:
        """Add the new spans to the hourly, tool-arguments and prompt-prefix rollups."""
        h = self.hourly
        hours, args, prefixes = rollup_deltas(items)
        self._many(conn, hours, h.hourly_width, lambda k: self._cached(h.upsert_hourly, k))
        if args:
            self._many(conn, args, 4, lambda k: self._cached(h.upsert_tool_args, k))
        if prefixes:
            self._many(conn, prefixes, 4, lambda k: self._cached(h.upsert_prefixes, k))

    def _cached(self, upsert: str, k: int) -> str:
        key = (upsert, k)
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements[key] = upsert if k == 1 else self.hourly.many(upsert, k)
        return sql

    def _upsert_sql(self, k: int) -> str:
        sql = self._upserts.get(k)
        if sql is None:
            sql = self._upserts[k] = self.sql.upsert_trace_rows(k)
        return sql

    def _many(
        self,
        conn: sqlite3.Connection,
        rows: list[tuple[Any, ...]],
        width: int,
        sql_for: Callable[[int], str],
    ) -> None:
        """``executemany`` with up to :data:`_ROWS_PER_STMT` rows per statement.

        ``executemany`` steps once per row and releases the GIL around every
        step; each re-acquisition can wait out a busy application thread's
        whole switch interval (5 ms). Multi-row ``VALUES`` makes that one
        step (and one wait) per :data:`_ROWS_PER_STMT` rows, so SQLite's work
        overlaps the application's instead of queueing behind it. The tail
        (fewer rows than a full statement) uses the one-row statement.
        """
        per = max(1, min(_ROWS_PER_STMT, self._max_vars // max(width, 1)))
        full = len(rows) - len(rows) % per if per > 1 else 0
        if full:
            sql = sql_for(per)
            chain = itertools.chain.from_iterable
            for i in range(0, full, per):
                conn.execute(sql, tuple(chain(rows[i : i + per])))
        if full < len(rows):
            conn.executemany(sql_for(1), rows[full:])

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
