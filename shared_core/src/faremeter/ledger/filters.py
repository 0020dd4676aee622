"""Query arguments, validated once and shared by every store.

Attribute names arrive from users (``cost_by("user_id")``, ``where={...}``).
They are checked with :func:`faremeter.spans.validate_attribute_name` and then
resolved to either a column from a fixed whitelist or a *custom* key that the
SQL stores pass as a bound parameter — a name is never pasted into SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from faremeter.spans import SpanKind, validate_attribute_name

__all__ = [
    "PROMOTED",
    "SPAN_FIELDS",
    "AttrRef",
    "QueryFilter",
    "attr_text",
    "make_filter",
    "resolve",
    "to_ns",
]

PROMOTED: tuple[str, ...] = (
    "user_id",
    "team",
    "workflow",
    "feature",
    "step",
    "tenant",
    "environment",
    "agent",
)
"""Attributes stored in their own indexed column (the common attribution keys)."""

SPAN_FIELDS: tuple[str, ...] = ("model", "kind", "tool", "status", "provider")
"""Span fields ``cost_by`` and ``where`` accept besides attributes.

``tool`` is the name of ``tool`` spans (other spans have no tool). These names
win over custom attributes of the same name.
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

AttrKind = Literal["promoted", "field", "custom"]


@dataclass(frozen=True, slots=True)
class AttrRef:
    """A validated attribute: which column family holds it, and its name."""

    kind: AttrKind
    name: str


def resolve(name: str) -> AttrRef:
    """Validate ``name`` and say where it is stored.

    Raises:
        ValueError: For names that are not safe attribute names.
    """
    if name in SPAN_FIELDS:
        return AttrRef("field", name)
    validate_attribute_name(name)
    if name in PROMOTED:
        return AttrRef("promoted", name)
    return AttrRef("custom", name)


def attr_text(value: object) -> str:
    """The one text form of an attribute value used for grouping and filtering.

    Values keep their type in the stored span; grouping needs one
    representation all backends agree on (SQLite's JSON turns ``true`` into
    ``1``, PostgreSQL's into ``'true'``), so it is computed here, once.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_ns(value: datetime | None, what: str) -> int | None:
    """An aware datetime as integer epoch nanoseconds.

    Raises:
        ValueError: For naive datetimes, whose meaning depends on the machine.
    """
    if value is None:
        return None
    if not isinstance(value, datetime):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"{what} must be an aware datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}={value!r} is naive; pass an aware datetime (e.g. tzinfo=UTC)")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


@dataclass(frozen=True, slots=True)
class QueryFilter:
    """Which spans (or traces) a query looks at.

    Attributes:
        trace_id: Only this trace.
        since_ns: Start at or after (epoch ns).
        until_ns: Start strictly before (epoch ns).
        where: ``(attribute, text value or None)`` pairs, all must match;
            ``None`` matches spans without the attribute.
        kind: Only spans of this kind.
    """

    trace_id: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    where: tuple[tuple[AttrRef, str | None], ...] = ()
    kind: str | None = None


def make_filter(
    *,
    trace_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
    kind: SpanKind | str | None = None,
) -> QueryFilter:
    """Validate query arguments into a :class:`QueryFilter`.

    Raises:
        ValueError: For bad attribute names, naive datetimes or unknown kinds.
    """
    pairs: list[tuple[AttrRef, str | None]] = []
    for name, value in (where or {}).items():
        pairs.append((resolve(name), None if value is None else attr_text(value)))
    return QueryFilter(
        trace_id=trace_id,
        since_ns=to_ns(since, "since"),
        until_ns=to_ns(until, "until"),
        where=tuple(pairs),
        kind=None if kind is None else SpanKind(kind).value,
    )
