"""Where the money goes per task: percentiles and outliers per group.

Two views, both exact and answered by the ledger in one query each:

* per trace (``per="trace"``): the distribution of whole-task cost, grouped
  by the root's attribute (``workflow``, ``user_id``...), with the traces that
  cost more than ``factor`` x their group's median listed as outliers;
* per part (``per="part"``): for a span-level attribute such as ``step``, the
  distribution of what each task spent on each value ("summarize costs
  $0.016 per run at p50"), with the tasks that spent more than ``factor`` x
  the median on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from faremeter.ledger import Ledger, OutlierTrace

__all__ = ["DEFAULT_OUTLIER_FACTOR", "DistributionRow", "distribution"]

DEFAULT_OUTLIER_FACTOR = Decimal(2)
"""A trace is an outlier above this multiple of its group's median."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DistributionRow:
    """One group's cost distribution.

    Attributes:
        key: The group (attribute value; ``None``: without it).
        traces: Traces in the group.
        total: Their summed cost.
        mean: ``total / traces``.
        p50: Median (nearest rank: a real trace's cost).
        p90: 90th percentile.
        p99: 99th percentile.
        max: The most expensive.
        outlier_threshold: ``factor x p50``; costs above it are outliers.
        outliers: The outlier traces, most expensive first (for ``per="part"``
            their ``cost`` is what the trace spent on this value).
        unpriced_traces: Traces with at least one unpriced span.
    """

    key: str | None
    traces: int
    total: Decimal
    mean: Decimal
    p50: Decimal
    p90: Decimal
    p99: Decimal
    max: Decimal
    outlier_threshold: Decimal
    outliers: Sequence[OutlierTrace] = field(default=())
    unpriced_traces: int = 0


def distribution(
    ledger: Ledger,
    *,
    by: str | None = "workflow",
    per: Literal["trace", "part"] = "trace",
    factor: Decimal | int | str = DEFAULT_OUTLIER_FACTOR,
    outlier_limit: int = 100,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
) -> list[DistributionRow]:
    """p50/p90/p99 and outliers of per-trace cost for each value of ``by``.

    Args:
        ledger: Where the spans are.
        by: Root attribute (``per="trace"``) or span attribute (``per="part"``);
            ``None`` with ``per="trace"``: every trace in one group.
        per: ``trace`` for whole tasks, ``part`` for each task's spend on a
            span-level attribute value (``by="step"``).
        factor: The outlier rule: cost > ``factor`` x the group's median.
        outlier_limit: At most this many outliers in all.
        since: Window start (aware).
        until: Window end (exclusive, aware).
        where: Attribute filter.

    Raises:
        ValueError: For a ``per`` other than ``trace``/``part``, ``per="part"``
            without ``by``, or a bad factor.
    """
    fac = Decimal(str(factor))
    if fac <= 0:
        raise ValueError(f"factor must be > 0, got {factor!r}")
    if per == "trace":
        rows = ledger.percentiles(by=by, since=since, until=until, where=where)
        found = ledger.outliers(
            by=by, factor=fac, limit=outlier_limit, since=since, until=until, where=where
        )
    elif per == "part":
        if by is None:
            raise ValueError('per="part" needs a span attribute to group by')
        rows = ledger.part_percentiles(by=by, since=since, until=until, where=where)
        found = ledger.part_outliers(
            by=by, factor=fac, limit=outlier_limit, since=since, until=until, where=where,
            medians={r.key: r.quantiles[0.5] for r in rows},
        )  # fmt: skip
    else:
        raise ValueError(f"per must be 'trace' or 'part', got {per!r}")
    grouped: dict[str | None, list[OutlierTrace]] = {}
    for o in found:
        grouped.setdefault(o.key, []).append(o)
    out: list[DistributionRow] = []
    for r in rows:
        p50 = r.quantiles[0.5]
        out.append(
            DistributionRow(
                key=r.key,
                traces=r.traces,
                total=r.total,
                mean=r.total / r.traces if r.traces else Decimal(0),
                p50=p50,
                p90=r.quantiles[0.9],
                p99=r.quantiles[0.99],
                max=r.max,
                outlier_threshold=p50 * fac,
                outliers=tuple(grouped.get(r.key, ())),
                unpriced_traces=r.unpriced_traces,
            )
        )
    return out
