"""Per-trace distributions that walk an index of trace totals instead of sorting them.

A quantile under the nearest-rank rule is "the n-th smallest total"; with an
index ordered by total (``(total_pico, started_ns, unpriced)``, and
``(workflow, total_pico)`` per workflow) that is ``ORDER BY total_pico
LIMIT 1 OFFSET n - 1``, a walk of n index entries, and the outliers above a
threshold are an index range read from the top. On a 100k-trace ledger this
is a few milliseconds where fetching every total and ranking it costs a
hundred or more.

It applies to one group of every trace (``by=None``, any filter: the total
index also holds the start time) and to groups by ``workflow`` when nothing
but a workflow is filtered on (other filters would make each step of the
walk a table lookup). Everything else is ranked in Python from one narrow
read of the rollup (:class:`~faremeter.ledger.sqlbuild.SqlQueries`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from faremeter.ledger.codec import from_pico
from faremeter.ledger.filters import AttrRef, QueryFilter
from faremeter.ledger.memory import nearest_rank, outlier_row
from faremeter.ledger.results import OutlierTrace, PercentileRow
from faremeter.ledger.sqlbuild import Sql

__all__ = ["WORKFLOW", "indexed", "indexed_outliers", "indexed_percentiles"]

WORKFLOW = AttrRef("promoted", "workflow")
"""The root attribute the rollup table is indexed by (with the total)."""

Run = Callable[[str, Sequence[Any]], list[Any]]


def indexed(attr: AttrRef | None, flt: QueryFilter) -> bool:
    """Whether ``attr`` / ``flt`` can be answered by index walks."""
    if attr is None:
        return True
    return (
        attr == WORKFLOW
        and flt.since_ns is None
        and flt.until_ns is None
        and flt.trace_id is None
        and all(a == WORKFLOW for a, _ in flt.where)
    )


def _groups(run: Run, sql: Sql, attr: AttrRef | None, flt: QueryFilter) -> list[Sequence[Any]]:
    """``(key, traces, total, max, unpriced traces, filter of the group)`` per group."""
    if attr is None:
        rows = [(None, *r) for r in run(*sql.trace_summary(flt))]
    else:
        rows = run(*sql.trace_groups(attr, flt))
    out: list[Sequence[Any]] = []
    for key, n, total, top, unpriced in rows:
        if not n:
            continue
        group = flt if attr is None else replace(flt, where=(*flt.where, (attr, key)))
        out.append((None if key is None else str(key), int(n), total, top, unpriced, group))
    return out


def _nth(run: Run, sql: Sql, flt: QueryFilter, rank: int) -> int:
    ((value,),) = run(*sql.nth_total(flt, rank))
    return int(value)


def indexed_percentiles(
    run: Run, sql: Sql, attr: AttrRef | None, quantiles: Sequence[float], flt: QueryFilter
) -> list[PercentileRow]:
    """Nearest-rank quantiles per group: one aggregate, then one index walk per quantile."""
    out: list[PercentileRow] = []
    for key, n, total, top, unpriced, group in _groups(run, sql, attr, flt):
        values = {q: _nth(run, sql, group, nearest_rank(q, n)) for q in quantiles}
        out.append(
            PercentileRow(
                key=key,
                traces=n,
                total=from_pico(total),
                max=from_pico(top),
                quantiles={q: from_pico(v) for q, v in values.items()},
                unpriced_traces=int(unpriced or 0),
            )
        )
    return out


def indexed_outliers(
    run: Run, sql: Sql, attr: AttrRef | None, num: int, den: int, flt: QueryFilter, limit: int
) -> list[OutlierTrace]:
    """Per group, the median by an index walk and the traces above the rule by an index range."""
    if limit == 0:
        return []
    found: list[OutlierTrace] = []
    for key, n, _, _, _, group in _groups(run, sql, attr, flt):
        median = _nth(run, sql, group, nearest_rank(0.5, n))
        # total * den > median * num  <=>  total > floor(median * num / den)
        for tid, name, total, spans, unpriced, started in run(
            *sql.above(group, (median * num) // den, limit)
        ):
            found.append(outlier_row(str(tid), key, name, int(total), median, int(spans),
                                     int(unpriced), int(started)))  # fmt: skip
    found.sort(key=lambda o: (-o.cost, o.trace_id))
    return found[:limit]
