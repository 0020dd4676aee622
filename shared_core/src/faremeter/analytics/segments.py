"""Segment analysis: spend by any attribute, with its share and cost per trace.

``cost_by`` answers "how much per team"; a segment report adds what a
product owner asks next — what share of the bill is that, and what does one
task of that segment cost on average.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from faremeter.ledger import Ledger

__all__ = ["Segment", "segments"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Segment:
    """Spend of one value of an attribute.

    Attributes:
        key: The attribute value (``None``: spans without it).
        cost: Sum of its spans' direct costs (the ledger's ``cost_by``).
        share: ``cost`` / total cost of every segment (``0`` when nothing was spent).
        traces: Distinct traces touching the segment.
        cost_per_trace: ``cost / traces``.
        spans: Spans in the segment.
        unpriced: Of those, spans without a price (not counted as $0).
        input_tokens: Input tokens.
        output_tokens: Output tokens.
    """

    key: str | None
    cost: Decimal
    share: Decimal
    traces: int
    cost_per_trace: Decimal
    spans: int
    unpriced: int
    input_tokens: int
    output_tokens: int


def segments(
    ledger: Ledger,
    by: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
) -> list[Segment]:
    """Spend per value of ``by`` (``feature``, ``tier``, ``team``, any attribute), largest first."""
    rows = ledger.cost_by(by, since=since, until=until, where=where)
    total = sum((r.cost for r in rows), Decimal(0))
    return [
        Segment(
            key=r.key,
            cost=r.cost,
            share=r.cost / total if total else Decimal(0),
            traces=r.traces,
            cost_per_trace=r.cost / r.traces if r.traces else Decimal(0),
            spans=r.spans,
            unpriced=r.unpriced,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
        )
        for r in rows
    ]
