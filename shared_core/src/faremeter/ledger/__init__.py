"""The cost ledger: record spans without blocking, query spend exactly.

``Ledger.from_url("sqlite:///.faremeter/ledger.db")`` (or ``memory``, or
``postgresql://...``) gives a ledger whose ``record()`` only enqueues; a
background thread writes batches. Queries return the frozen dataclasses
below with :class:`~decimal.Decimal` money.

psycopg is imported only when a PostgreSQL store is built, so importing
this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faremeter.ledger.core import Ledger
from faremeter.ledger.filters import PROMOTED
from faremeter.ledger.memory import MemoryStore
from faremeter.ledger.results import (
    CostRow,
    CostSplit,
    GroupRow,
    LedgerHealth,
    OutlierTrace,
    PercentileRow,
    PrefixGroup,
    RepeatGroup,
    TimeBucket,
    TopTrace,
    TotalRow,
    TracePath,
    UsageGroup,
    UsageTotal,
)
from faremeter.ledger.sqlite import SQLiteStore
from faremeter.ledger.store import LedgerStore

if TYPE_CHECKING:
    from faremeter.ledger.postgres import PostgresStore

__all__ = [
    "PROMOTED",
    "CostRow",
    "CostSplit",
    "GroupRow",
    "Ledger",
    "LedgerHealth",
    "LedgerStore",
    "MemoryStore",
    "OutlierTrace",
    "PercentileRow",
    "PostgresStore",
    "PrefixGroup",
    "RepeatGroup",
    "SQLiteStore",
    "TimeBucket",
    "TopTrace",
    "TotalRow",
    "TracePath",
    "UsageGroup",
    "UsageTotal",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from faremeter.ledger.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'faremeter.ledger' has no attribute {name!r}")
