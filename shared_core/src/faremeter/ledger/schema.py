"""One versioned schema for both SQL backends.

Tables (``prefix`` defaults to ``faremeter_``):

- ``{prefix}schema`` — one row, the schema ``version``. Stores create it on
  start and apply every migration above the stored version, in order, inside
  one transaction that holds the database's write lock (``BEGIN IMMEDIATE`` on
  SQLite, a transaction-scoped advisory lock on PostgreSQL), so processes that
  start together never race. A database *newer* than this code is refused.
- ``{prefix}spans`` — one row per span (columns: :data:`~faremeter.ledger.codec.SPAN_COLUMNS`),
  primary key ``span_id`` so a retried batch never duplicates.
- ``{prefix}traces`` — a per-trace rollup maintained on write (total, span
  count, unpriced count, first start, earliest root's name and attributes) so
  percentiles and top-N read one row per trace instead of scanning spans.
- ``{prefix}hourly`` (version 3) — additive sums per UTC hour and low-cardinality
  key (:mod:`faremeter.ledger.hourly`), maintained on write, so spend over
  time, by kind, status, model, tool or step reads a few rows per hour.
- ``{prefix}tool_args`` (version 3) — successful tool calls and their cost per
  (tool, arguments hash), so repeated calls over the whole ledger are one
  read of it; ``{prefix}prompt_prefixes`` likewise counts model calls per
  (model, prompt-prefix hash, prefix tokens). A version-3 migration fills the
  three rollups from the stored spans.

Column types differ only where the engines do (INTEGER vs BIGINT, TEXT vs
JSONB for the text-attribute map that PostgreSQL queries with ``->>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from faremeter.ledger.codec import SPAN_COLUMNS, TRACE_COLUMNS
from faremeter.ledger.filters import PROMOTED
from faremeter.ledger.hourly import DIMS, SUMS

__all__ = ["LATEST_VERSION", "MIGRATIONS", "POSTGRES", "SQLITE", "Dialect", "Names", "make_names"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")

_INT_COLUMNS = frozenset(
    {"start_ns", "end_ns", "input_tokens", "output_tokens", "cost_pico"}
    | {"spans", "unpriced", "total_pico", "started_ns", "ended_ns", "root_start_ns"}
)
_NOT_NULL = frozenset(
    {"trace_id", "name", "kind", "status", "start_ns", "end_ns", "cost", "attributes"}
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between SQLite and PostgreSQL SQL."""

    name: str
    ph: str
    int_type: str
    json_type: str
    least: str
    greatest: str

    def custom_attr(self, column: str) -> str:
        """SQL reading one key (a bound parameter) of a text-attribute JSON column."""
        if self.name == "sqlite":
            return f"json_extract({column}, {self.ph})"
        return f"({column} ->> {self.ph})"

    def custom_param(self, key: str) -> str:
        """The bound value that names ``key`` for :meth:`custom_attr`."""
        # Keys are validated ([A-Za-z0-9_.-]) so quoting them in a JSON path is safe.
        return f'$."{key}"' if self.name == "sqlite" else key


SQLITE = Dialect("sqlite", "?", "INTEGER", "TEXT", "MIN", "MAX")
POSTGRES = Dialect("postgresql", "%s", "BIGINT", "JSONB", "LEAST", "GREATEST")


@dataclass(frozen=True, slots=True)
class Names:
    """Quoted, possibly schema-qualified table names."""

    schema_table: str
    spans: str
    traces: str
    prefix: str
    schema: str | None
    hourly: str = ""
    tool_args: str = ""
    prompt_prefixes: str = ""


def make_names(prefix: str, schema: str | None = None) -> Names:
    """Validate a table prefix (and PostgreSQL schema) and build table names.

    Raises:
        ValueError: For prefixes or schemas that are not plain lower-case identifiers.
    """
    if not _IDENT.match(prefix):
        raise ValueError(f"table prefix {prefix!r} must match {_IDENT.pattern}")
    if schema is not None and not _IDENT.match(schema):
        raise ValueError(f"schema {schema!r} must match {_IDENT.pattern}")
    q = f'"{schema}".' if schema else ""
    return Names(
        schema_table=f'{q}"{prefix}schema"',
        spans=f'{q}"{prefix}spans"',
        traces=f'{q}"{prefix}traces"',
        prefix=prefix,
        schema=schema,
        hourly=f'{q}"{prefix}hourly"',
        tool_args=f'{q}"{prefix}tool_args"',
        prompt_prefixes=f'{q}"{prefix}prompt_prefixes"',
    )


def _type(d: Dialect, column: str) -> str:
    if column in _INT_COLUMNS:
        base = d.int_type
    elif column == "attrs_str":
        base = d.json_type
    else:
        base = "TEXT"
    return f"{base} NOT NULL" if column in _NOT_NULL else base


def _v1(d: Dialect, n: Names) -> list[str]:
    p = n.prefix
    spans_cols = ",\n  ".join(
        f"{c} TEXT PRIMARY KEY" if c == "span_id" else f"{c} {_type(d, c)}" for c in SPAN_COLUMNS
    )
    trace_cols = ",\n  ".join(
        f"{c} TEXT PRIMARY KEY" if c == "trace_id" else f"{c} {_type(d, c)}" for c in TRACE_COLUMNS
    )
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {n.spans} (\n  {spans_cols}\n)",
        f"CREATE TABLE IF NOT EXISTS {n.traces} (\n  {trace_cols}\n)",
        f"CREATE INDEX IF NOT EXISTS {p}spans_trace ON {n.spans} (trace_id)",
        f"CREATE INDEX IF NOT EXISTS {p}spans_start ON {n.spans} (start_ns)",
        f"CREATE INDEX IF NOT EXISTS {p}traces_started ON {n.traces} (started_ns)",
        f"CREATE INDEX IF NOT EXISTS {p}traces_workflow ON {n.traces} (workflow, total_pico)",
    ]
    stmts += [f"CREATE INDEX IF NOT EXISTS {p}spans_{c} ON {n.spans} ({c})" for c in PROMOTED]
    return stmts


KEPT_ATTR_INDEXES: tuple[str, ...] = ("user_id",)
"""Promoted attributes whose span index survives version 2."""


def _v2(d: Dialect, n: Names) -> list[str]:
    """Drop the per-attribute span indexes except ``user_id``'s.

    Every insert paid for eight of them (a third of the write cost). Grouping
    by an attribute scans all spans anyway; the index only pays off for the
    biggest grouping, per-user spend on a large ledger (``cost_by("user_id")``
    on 1M spans: ~0.5 s through the index, ~1 s sorting without it), so that
    one stays. Per-trace queries read the rollup table, whose
    ``(workflow, total_pico)`` index stays too.
    """
    del d
    return [
        f"DROP INDEX IF EXISTS {_qualified(n, f'{n.prefix}spans_{c}')}"
        for c in PROMOTED
        if c not in KEPT_ATTR_INDEXES
    ]


def _qualified(n: Names, index: str) -> str:
    return f'"{n.schema}"."{index}"' if n.schema else f'"{index}"'


_FLAG_DIMS = frozenset({"stamped", "priced", "has_usage"})


def _v3(d: Dialect, n: Names) -> list[str]:
    """Add the hourly, tool-arguments and prompt-prefix rollups and two indexes.

    The rollups start empty here; :func:`faremeter.ledger.backfill.backfill`
    fills them from the stored spans in the same transaction. The status
    index holds only spans that did not end ``ok`` (errors, denials, cache
    hits: a small share), so finding them costs no scan and most inserts
    never touch it. The trace-total index makes the distribution of every
    trace (the dashboard's) an index walk per quantile and its outliers an
    index range, where they sorted every trace.
    """
    i = d.int_type
    dims = [f"{c} {i} NOT NULL" if c in _FLAG_DIMS else f"{c} TEXT" for c in DIMS]
    sums = [f"{c} {i} NOT NULL" for c in SUMS]
    cols = ",\n  ".join([f"bucket_ns {i} NOT NULL", "dkey TEXT NOT NULL", *dims, *sums])
    clustered = " WITHOUT ROWID" if d.name == "sqlite" else ""
    return [
        f"CREATE TABLE IF NOT EXISTS {n.hourly} (\n  {cols},\n  PRIMARY KEY (bucket_ns, dkey)\n)"
        f"{clustered}",
        f"CREATE TABLE IF NOT EXISTS {n.tool_args} (tool TEXT NOT NULL, args TEXT NOT NULL,"
        f" calls {i} NOT NULL, cost_pico {i} NOT NULL, PRIMARY KEY (tool, args)){clustered}",
        f"CREATE TABLE IF NOT EXISTS {n.prompt_prefixes} (model TEXT NOT NULL,"
        f" prefix_hash TEXT NOT NULL, prefix_tokens TEXT NOT NULL, calls {i} NOT NULL,"
        f" PRIMARY KEY (model, prefix_hash, prefix_tokens)){clustered}",
        f"CREATE INDEX IF NOT EXISTS {n.prefix}spans_status ON {n.spans} (status, start_ns)"
        " WHERE status <> 'ok'",
        f"CREATE INDEX IF NOT EXISTS {n.prefix}traces_total"
        f" ON {n.traces} (total_pico, started_ns, unpriced)",
        f"DELETE FROM {n.hourly}",
        f"DELETE FROM {n.tool_args}",
        f"DELETE FROM {n.prompt_prefixes}",
    ]


MIGRATIONS: dict[int, Callable[[Dialect, Names], list[str]]] = {1: _v1, 2: _v2, 3: _v3}
"""Version → statements that bring the previous version to it."""

LATEST_VERSION = max(MIGRATIONS)


def schema_table_ddl(d: Dialect, n: Names) -> str:
    """The version table; created before anything else."""
    return f"CREATE TABLE IF NOT EXISTS {n.schema_table} (version {d.int_type} NOT NULL)"


def newer_schema_message(found: int, where: str) -> str:
    """Why a store refuses a database written by a newer faremeter."""
    return (
        f"ledger schema version {found} in {where} is newer than this faremeter supports"
        f" ({LATEST_VERSION}); upgrade faremeter or point the ledger elsewhere"
    )
