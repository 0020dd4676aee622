"""Spend over time at any granularity, with empty buckets filled in.

The ledger returns only buckets that saw spans; charts and the spend-rate
detector need the zeros too (an hour with no spend is a data point, not a
gap), so :func:`spend_series` fills them from ``since`` to ``until``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from faremeter.ledger import Ledger, TimeBucket
from faremeter.ledger.core import Interval, interval_ns
from faremeter.ledger.filters import to_ns
from faremeter.ledger.memory import ns_to_datetime

__all__ = ["spend_series"]


def spend_series(
    ledger: Ledger,
    interval: Interval = "hour",
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
    fill: bool = True,
) -> list[TimeBucket]:
    """Total spend per bucket, oldest first, zero buckets included when ``fill``.

    Args:
        ledger: Where the spans are.
        interval: ``minute``/``hour``/``day``/``week`` or a ``timedelta``.
        since: First instant (aware); defaults to the first bucket with spend.
        until: End (exclusive, aware); defaults to the last bucket with spend.
        where: Attribute filter, as in :meth:`Ledger.cost_by`.
        fill: Insert $0 buckets where nothing was recorded.
    """
    width = interval_ns(interval)
    rows = ledger.time_series(interval, since=since, until=until, where=where)
    if not fill:
        return rows
    since_ns, until_ns = to_ns(since, "since"), to_ns(until, "until")
    if not rows and (since_ns is None or until_ns is None):
        return rows
    have = {_ns(b.start): b for b in rows}
    first = (since_ns // width) * width if since_ns is not None else min(have)
    last = ((until_ns - 1) // width) * width if until_ns is not None else max(have)
    out: list[TimeBucket] = []
    for start in range(first, last + 1, width):
        bucket = have.get(start)
        if bucket is None:
            bucket = TimeBucket(
                start=ns_to_datetime(start), key=None, cost=Decimal(0), spans=0, unpriced=0
            )
        out.append(bucket)
    return out


def _ns(value: datetime) -> int:
    ns = to_ns(value, "start")
    assert ns is not None
    return ns
