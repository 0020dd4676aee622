"""The contract every ledger backend implements.

:class:`~faremeter.ledger.core.Ledger` owns the queue, the writer thread and
the fault handling; a store only knows how to write a batch idempotently and
answer queries. Keeping the protocol this small is what lets one test suite
hold memory, SQLite and PostgreSQL to identical answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from faremeter.ledger.filters import AttrRef, QueryFilter
from faremeter.ledger.results import (
    CostRow,
    CostSplit,
    GroupRow,
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
from faremeter.spans import SpanRecord

__all__ = ["LedgerStore"]


@runtime_checkable
class LedgerStore(Protocol):
    """Durable storage of spans plus the ledger's aggregate queries.

    ``write`` is called from the writer thread only; queries may be called
    from any thread. Implementations open their connections lazily so that a
    store that is down at start-up is a fault to retry, not a crash.
    """

    backend: str
    """``memory``, ``sqlite`` or ``postgresql`` (shown by ``health()``)."""

    def write(self, batch: Sequence[SpanRecord]) -> int:
        """Store ``batch`` atomically; spans already stored are skipped.

        Returns:
            How many spans were new.

        Raises:
            Exception: Any failure; the whole batch is then not stored, and the
                writer retries it (``is_transient``) or isolates the bad span.
        """
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` may go away on retry (locked, down, disconnected)."""
        ...

    def spans(self, flt: QueryFilter, limit: int | None) -> list[SpanRecord]:
        """Matching spans ordered by start time, then span id."""
        ...

    def cost_by(self, attr: AttrRef, flt: QueryFilter) -> list[CostRow]:
        """Spend grouped by one attribute or span field (any order)."""
        ...

    def percentiles(
        self, attr: AttrRef | None, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Per-trace total distribution grouped by the root's attribute (``None``: one group)."""
        ...

    def time_series(
        self, width_ns: int, attr: AttrRef | None, flt: QueryFilter
    ) -> list[TimeBucket]:
        """Spend per UTC bucket of ``width_ns`` (and per attribute value)."""
        ...

    def top_traces(self, n: int, flt: QueryFilter) -> list[TopTrace]:
        """The ``n`` most expensive traces (trace-level filter)."""
        ...

    def trace_ids(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` stored trace ids starting with ``prefix``, in order."""
        ...

    def cost_split(self, flt: QueryFilter) -> CostSplit:
        """LLM vs tool vs other spend."""
        ...

    def group_by(self, attrs: Sequence[AttrRef], flt: QueryFilter) -> list[GroupRow]:
        """Spend grouped by several attributes or span fields at once (any order)."""
        ...

    def part_percentiles(
        self, attr: AttrRef, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Distribution, per attribute value, of what each trace spent on spans with it."""
        ...

    def outliers(
        self, attr: AttrRef | None, num: int, den: int, flt: QueryFilter, limit: int
    ) -> list[OutlierTrace]:
        """Traces whose total exceeds ``num / den`` x their group's median (trace filter)."""
        ...

    def part_outliers(
        self,
        attr: AttrRef,
        medians: Sequence[tuple[str | None, int]],
        num: int,
        den: int,
        flt: QueryFilter,
        limit: int,
    ) -> list[OutlierTrace]:
        """Traces whose spend on a value exceeds ``num / den`` x that value's median.

        ``medians`` holds each value's median part in picodollars (values not
        listed are not judged).
        """
        ...

    def trace_paths(self, flt: QueryFilter) -> list[TracePath]:
        """Each trace's step/tool sequence in start order, runs collapsed (any order)."""
        ...

    def usage_groups(self, attr: AttrRef | None, flt: QueryFilter) -> list[UsageGroup]:
        """Matching spans grouped by (attribute, model, exact usage, status) (any order)."""
        ...

    def usage_totals(self, attr: AttrRef | None, flt: QueryFilter) -> list[UsageTotal]:
        """Summed usage per (attribute, model, status, priced, with usage or not) (any order)."""
        ...

    def totals(self, attrs: Sequence[AttrRef], flt: QueryFilter) -> list[TotalRow]:
        """Additive totals per combination of attributes (any order); ``tool`` keeps tool spans."""
        ...

    def repeated_tool_calls(self, flt: QueryFilter) -> list[RepeatGroup]:
        """Successful tool calls repeating their arguments, per tool and repeat count."""
        ...

    def repeated_prompt_prefixes(self, flt: QueryFilter) -> list[PrefixGroup]:
        """Prompt prefixes (model, hash, tokens) sent by two or more model calls."""
        ...

    def trace_histogram(self, num: int, den: int, flt: QueryFilter) -> dict[int, int]:
        """Traces per bin: ``trunc(total / (num / den picodollars))`` -> count (trace filter)."""
        ...

    def trace_ids_with(self, flt: QueryFilter, limit: int | None) -> list[str]:
        """Ids of traces with at least one matching span, ascending (at most ``limit``)."""
        ...

    def traces(self, trace_ids: Sequence[str]) -> list[TopTrace]:
        """The per-trace rollup rows of the given traces, by trace id (unknown ids left out)."""
        ...

    def spans_of(self, trace_ids: Sequence[str]) -> list[SpanRecord]:
        """Every span of the given traces, by trace id, start time, then span id."""
        ...

    def close(self) -> None:
        """Release connections; queries may reopen them."""
        ...
