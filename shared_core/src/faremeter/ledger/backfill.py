"""Filling a new rollup from the spans a ledger already holds.

A migration that adds a rollup (schema version 3: the hourly, tool-arguments
and prompt-prefix rollups) runs inside the store's migration transaction, so a
ledger is either on the old version with no rollup or on the new one with a
complete rollup; a concurrent writer waits for the lock and then adds to
the filled rollup. Re-running is harmless: the migration empties the tables
first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from faremeter.ledger.hourly import DIMS, SUMS, Grouped, hour_rows
from faremeter.ledger.hourly_sql import (
    backfill_select,
    prefixes_backfill,
    span_groups,
    tool_args_backfill,
)
from faremeter.ledger.schema import Dialect, Names

__all__ = ["Database", "backfill"]

_VARIABLES = 900
"""Bound parameters per insert (under SQLite's historical limit of 999)."""


class Database:
    """What a backfill needs from a connection inside the migration transaction."""

    def rows(self, sql: str, params: Sequence[Any]) -> Iterable[Sequence[Any]]:
        """Stream the rows of a query."""
        raise NotImplementedError

    def run(self, sql: str, params: Sequence[Any]) -> None:
        """Execute one statement."""
        raise NotImplementedError


def backfill(version: int, d: Dialect, n: Names, db: Database) -> None:
    """Fill what migration ``version`` added (a no-op for versions that add no rollup)."""
    if version != 3:
        return
    grouped: Grouped = {}
    span_groups(list(db.rows(*backfill_select(d, n))), 1 + len(DIMS), grouped)
    rows = hour_rows(grouped)
    cols = ("bucket_ns", "dkey", *DIMS, *SUMS)
    one = f"({', '.join([d.ph] * len(cols))})"
    per = _VARIABLES // len(cols)
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        values = ", ".join([one] * len(chunk))
        params = [v for r in chunk for v in r]
        db.run(f"INSERT INTO {n.hourly} ({', '.join(cols)}) VALUES {values}", params)
    db.run(*tool_args_backfill(d, n))
    db.run(*prefixes_backfill(d, n))
