"""PostgreSQL ledger store: one ledger shared by a fleet of processes.

psycopg 3 is imported only when this store is built, so ``import
faremeter.ledger`` stays cheap and the dependency stays optional
(``pip install 'faremeter[postgres]'``).

A batch is one transaction: the spans go in with a single
``INSERT ... SELECT FROM unnest(...) ON CONFLICT (span_id) DO NOTHING
RETURNING span_id``; only the spans that statement really inserted feed the
per-trace rollup upsert, so a retried batch (say, after the connection died
during ``COMMIT``) can neither duplicate a span nor double-count a trace.
Rollup rows are upserted in trace-id order so concurrent writers lock them
in the same order and do not deadlock (a deadlock would still just be retried).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from faremeter.ledger.backfill import Database, backfill
from faremeter.ledger.codec import SPAN_COLUMNS, encode_span, rollup
from faremeter.ledger.hourly import rollup_deltas
from faremeter.ledger.hourly_sql import HourlySql, RollupQueries
from faremeter.ledger.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    POSTGRES,
    make_names,
    newer_schema_message,
    schema_table_ddl,
)
from faremeter.ledger.sqlbuild import Sql
from faremeter.spans import SpanRecord

__all__ = ["PostgresStore", "import_psycopg"]

_ORPHANS: list[object] = []
"""Connections inherited over fork, kept referenced so the child never closes them."""

_PG_TYPES = {
    "start_ns": "bigint",
    "end_ns": "bigint",
    "input_tokens": "bigint",
    "output_tokens": "bigint",
    "cost_pico": "bigint",
    "attrs_str": "jsonb",
}


def import_psycopg() -> Any:
    """Import psycopg 3, or explain how to install it.

    Raises:
        ImportError: With the install command, when psycopg is missing.
    """
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the PostgreSQL ledger needs psycopg 3: pip install 'faremeter[postgres]'"
        ) from exc
    return psycopg


class _Conn(Database):
    """A psycopg connection inside the migration transaction."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any]) -> Any:
        # A named (server-side) cursor streams a big table instead of loading it.
        cur = self.conn.cursor(name="faremeter_backfill")
        cur.itersize = 10_000
        cur.execute(sql, params)
        return cur

    def run(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.execute(sql, params)


class PostgresStore(RollupQueries):
    """Spans in PostgreSQL tables (``{schema}.{prefix}spans`` / ``traces``).

    Args:
        conninfo: A libpq URL or keyword string (without faremeter's own options).
        schema: Schema to hold the tables (created if missing); ``None`` uses
            the connection's ``search_path`` (normally ``public``).
        prefix: Table name prefix.
    """

    backend = "postgresql"

    def __init__(self, conninfo: str, *, schema: str | None = None, prefix: str = "faremeter_"):
        self._pg: Any = import_psycopg()
        self.conninfo = conninfo
        self.names = make_names(prefix, schema)
        self.sql = Sql(POSTGRES, self.names)
        self.hourly = HourlySql(self.sql)
        casts = ", ".join(f"%s::{_PG_TYPES.get(c, 'text')}[]" for c in SPAN_COLUMNS)
        self._insert = (
            f"INSERT INTO {self.names.spans} ({', '.join(SPAN_COLUMNS)})"
            f" SELECT * FROM unnest({casts})"
            " ON CONFLICT (span_id) DO NOTHING RETURNING span_id"
        )
        self._writer: Any = None
        self._reader: Any = None
        self._read_lock = threading.Lock()
        self._migrated = False

    # -- connections -------------------------------------------------------

    def _connect(self) -> Any:
        conn: Any = self._pg.connect(self.conninfo, autocommit=True)
        try:
            if not self._migrated:
                self._migrate(conn)
                self._migrated = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: Any) -> None:
        """Create or upgrade the schema; an advisory lock serialises starters."""
        n = self.names
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"faremeter-ledger:{n.schema or ''}:{n.prefix}",),
            )
            if n.schema:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{n.schema}"')
            conn.execute(schema_table_ddl(POSTGRES, n))
            row = conn.execute(f"SELECT MAX(version) FROM {n.schema_table}").fetchone()
            version = 0 if row is None or row[0] is None else int(row[0])
            if version > LATEST_VERSION:
                raise RuntimeError(newer_schema_message(version, "PostgreSQL"))
            if version == LATEST_VERSION:
                return
            for v in range(version + 1, LATEST_VERSION + 1):
                for stmt in MIGRATIONS[v](POSTGRES, n):
                    conn.execute(stmt)
                backfill(v, POSTGRES, n, _Conn(conn))
            conn.execute(f"DELETE FROM {n.schema_table}")
            conn.execute(f"INSERT INTO {n.schema_table} (version) VALUES (%s)", (LATEST_VERSION,))

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._read_lock:
            if self._reader is None or self._reader.closed:
                self._reader = self._connect()
            try:
                return self._reader.execute(sql, params).fetchall()
            except (self._pg.OperationalError, self._pg.InterfaceError):
                self._reader.close()
                self._reader = None
                raise

    # -- writes ------------------------------------------------------------

    def write(self, batch: Sequence[SpanRecord]) -> int:
        """Insert new spans and their rollup in one transaction."""
        rows: dict[str, tuple[Any, ...]] = {}
        by_id: dict[str, SpanRecord] = {}
        for span in batch:
            if span.span_id not in rows:
                rows[span.span_id] = encode_span(span)
                by_id[span.span_id] = span
        ordered = [rows[k] for k in sorted(rows)]
        columns = [list(col) for col in zip(*ordered, strict=True)] if ordered else []
        if not ordered:
            return 0
        if self._writer is None or self._writer.closed:
            self._writer = self._connect()
        conn = self._writer
        with conn.transaction():
            cur = conn.execute(self._insert, columns)
            inserted = {r[0] for r in cur.fetchall()}
            new = [r for r in ordered if r[0] in inserted]
            if new:
                hours, args, prefixes = rollup_deltas([(by_id[r[0]], r) for r in new])
                with conn.cursor() as c:
                    c.executemany(self.sql.upsert_trace, [d.row() for d in rollup(new)])
                    c.executemany(self.hourly.upsert_hourly, hours)
                    if args:
                        c.executemany(self.hourly.upsert_tool_args, args)
                    if prefixes:
                        c.executemany(self.hourly.upsert_prefixes, prefixes)
        return len(new)

    def is_transient(self, exc: BaseException) -> bool:
        """Connection loss, deadlocks and server restarts may clear; bad data will not."""
        pg = self._pg
        if isinstance(exc, pg.OperationalError | pg.InterfaceError | OSError | RuntimeError):
            conn, self._writer = self._writer, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            return True
        return False

    def after_fork(self) -> None:
        """Forget (without closing) the parent's connections: closing would end its sessions."""
        _ORPHANS.extend([c for c in (self._writer, self._reader) if c is not None])
        self._writer = self._reader = None
        self._read_lock = threading.Lock()

    def close(self) -> None:
        """Close both connections."""
        for conn in (self._writer, self._reader):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self._writer = self._reader = None
