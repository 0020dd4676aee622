"""Outcomes and unit economics: what one resolved ticket, one report, one sale costs.

An outcome is recorded as a zero-cost ``chain`` span named
``outcome:<name>`` with the attributes ``outcome`` (the name) and
``outcome_value`` (how many), parented to the trace's root. Being an
ordinary span, it is stored and queried the same way by every ledger
backend, carries the trace's attribution (workflow, team, agent...) and
never changes a trace's cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from faremeter.cost import Cost, to_decimal
from faremeter.spans import SpanKind, SpanRecord, SpanStatus, build_record, validate_attribute_name

if TYPE_CHECKING:
    from faremeter.ledger import Ledger
    from faremeter.meter import Meter
    from faremeter.open_span import OpenSpan

__all__ = ["OUTCOME_PREFIX", "OutcomeRow", "cost_per_outcome", "outcome_span", "record_outcome"]

OUTCOME_PREFIX = "outcome:"
"""Outcome spans are named ``outcome:<name>``."""

_ZERO_COST = Cost()


@dataclass(frozen=True, kw_only=True, slots=True)
class OutcomeRow:
    """Unit economics of one outcome for one group.

    Attributes:
        outcome: The outcome name (``ticket_resolved``).
        key: The group's attribute value (``None``: without it).
        outcomes: Sum of the outcome values recorded in the window.
        cost: Everything the group spent in the window (``cost_by``).
        cost_per_outcome: ``cost / outcomes`` (``None`` when there were none).
        traces: Traces that recorded the outcome.
    """

    outcome: str
    key: str | None
    outcomes: Decimal
    cost: Decimal
    cost_per_outcome: Decimal | None
    traces: int


def record_outcome(
    meter: Meter,
    name: str,
    value: int | float | Decimal | str = 1,
    *,
    trace: Any = None,
    **attributes: Any,
) -> SpanRecord | None:
    """Record that a task achieved ``name`` (``value`` times), at no cost.

    Args:
        meter: The meter whose ledger records it.
        name: The outcome (``ticket_resolved``); letters, digits, ``_.-``.
        value: How many (or how much) — counted by :func:`cost_per_outcome`.
        trace: The trace it belongs to: a ``meter.trace(...)`` handle, an open
            span of the trace, or a trace id (then pass the attribution, e.g.
            ``workflow=``, yourself). Default: the current span's trace.
        **attributes: Extra attribution for the outcome span.

    Returns:
        The recorded span, or ``None`` when faremeter failed internally (logged).

    Raises:
        ValueError: For an invalid name or a value that is not a finite number.
    """
    amount = _amount(name, value)
    trace_id, parent_id, inherited = _locate(trace)
    try:
        merged: dict[str, Any] = dict(meter.default_attributes)
        merged.update(inherited)
        merged.update(attributes)
        now = meter.clock()
        record = outcome_span(
            trace_id=trace_id,
            span_id=meter.ids.span_id(),
            parent_span_id=parent_id,
            name=name,
            value=amount,
            at_ns=now,
            attributes=merged,
        )
        meter.ledger.record(record)
        return record
    except Exception:  # never break the host app
        import logging

        logging.getLogger("faremeter.analytics").exception(
            "faremeter: failed to record outcome %r", name
        )
        return None


def outcome_span(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    name: str,
    value: int | float | Decimal | str = 1,
    at_ns: int,
    attributes: Mapping[str, Any] | None = None,
) -> SpanRecord:
    """The span that stands for an outcome (what :func:`record_outcome` records).

    Raises:
        ValueError: For an invalid name or a value that is not a finite number.
    """
    from faremeter.context import clean_attributes

    amount = _amount(name, value)
    merged = dict(attributes or {})
    merged["outcome"] = name
    merged["outcome_value"] = int(amount) if amount == amount.to_integral_value() else float(amount)
    return build_record(
        trace_id, span_id, parent_span_id, f"{OUTCOME_PREFIX}{name}", SpanKind.CHAIN,
        SpanStatus.OK, at_ns, at_ns, None, None, None, _ZERO_COST, None, None,
        clean_attributes(merged), (), None, None, None,
    )  # fmt: skip


def _amount(name: str, value: int | float | Decimal | str) -> Decimal:
    validate_attribute_name(name)
    amount = to_decimal(value)
    if not amount.is_finite():
        raise ValueError(f"outcome value must be a finite number, got {value!r}")
    return amount


def _locate(trace: Any) -> tuple[str, str | None, Mapping[str, Any]]:
    """``(trace_id, root span id or None, root attributes)`` of what the caller passed."""
    from faremeter.context import current_span

    if isinstance(trace, str):
        return trace, None, {}
    span: OpenSpan | None
    if trace is None:
        span = current_span()
        if span is None:
            raise ValueError("record_outcome needs trace= outside a trace")
    else:
        span = getattr(trace, "span", trace)
    assert span is not None
    root_id = _root_id(span)
    return span.trace.trace_id, root_id, dict(span.attributes)


def _root_id(span: OpenSpan) -> str:
    """The id of the trace's root span (open, or already finished in this process)."""
    root = span.trace.root
    if root is not None:
        return root.span_id
    for record in span.trace.records:
        if record.parent_span_id is None:
            return record.span_id
    return span.span_id if span.parent_span_id is None else span.parent_span_id


def cost_per_outcome(
    ledger: Ledger,
    outcome: str | None = None,
    *,
    by: str = "workflow",
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
) -> list[OutcomeRow]:
    """Spend per outcome for each value of ``by`` over a window.

    The cost is everything the group spent in the window (the same number
    as ``ledger.cost_by(by)``), divided by the sum of the outcome values it
    recorded: "$1.20 per resolved ticket" for ``workflow=support``.

    Args:
        ledger: Where spans and outcomes are.
        outcome: One outcome name, or ``None`` for every recorded outcome.
        by: ``workflow``, ``agent``, ``team`` or any attribute.
        since: Window start (aware).
        until: Window end (exclusive, aware).
        where: More attribute filters (applied to spend and outcomes alike).
    """
    flt: dict[str, object] = dict(where or {})
    if outcome is not None:
        validate_attribute_name(outcome)
        flt["outcome"] = outcome
    # Two aggregate scans instead of decoding outcome spans: values summed per
    # (group, outcome, value), traces counted per (group, outcome).
    flt["kind"] = SpanKind.CHAIN.value
    counts: dict[tuple[str, str | None], list[Any]] = {}
    for row in ledger.group_by(by, "outcome", "outcome_value", where=flt, since=since, until=until):
        key, name, value = row.keys
        if name is None:
            continue
        a = counts.setdefault((name, key), [Decimal(0), 0])
        a[0] += to_decimal(value if value is not None else 1) * row.spans
    for row in ledger.group_by(by, "outcome", where=flt, since=since, until=until):
        key, name = row.keys
        if name is not None:
            counts[(name, key)][1] = row.traces
    spend = {r.key: r.cost for r in ledger.cost_by(by, since=since, until=until, where=where)}
    rows: list[OutcomeRow] = []
    for (name, key), (n, traces) in counts.items():
        cost = spend.get(key, Decimal(0))
        rows.append(
            OutcomeRow(
                outcome=name,
                key=key,
                outcomes=n,
                cost=cost,
                cost_per_outcome=cost / n if n else None,
                traces=traces,
            )
        )
    return sorted(rows, key=lambda r: (r.outcome, r.key is None, r.key or ""))
