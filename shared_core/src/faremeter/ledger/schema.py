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

Column types differ only where the engines do (INTEGER vs BIGINT, TEXT vs
JSONB for the text-attribute map that PostgreSQL queries with ``->>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from faremeter.ledger.codec import SPAN_COLUMNS, TRACE_COLUMNS
from faremeter.ledger.filters import PROMOTED

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

    def rank(self) -> tuple[str, int]:
        """SQL for ``max(1, ceil(q * cnt))`` and how many times it binds ``q``.

        SQLite's ``ceil`` is an optional build feature, so it is spelled with
        a truncating cast there.
        """
        p = self.ph
        if self.name == "sqlite":
            return (
                f"MAX(1, CAST({p} * cnt AS INTEGER) + ({p} * cnt > CAST({p} * cnt AS INTEGER)))",
                3,
            )
        return f"GREATEST(1, CEIL({p}::float8 * cnt))", 1


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


MIGRATIONS: dict[int, Callable[[Dialect, Names], list[str]]] = {1: _v1, 2: _v2}
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
