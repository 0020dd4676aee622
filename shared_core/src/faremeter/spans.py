"""The span: one priced (or structural) thing an agent did.

A finished span is an immutable :class:`SpanRecord`; it is what the ledger
stores, what exporters read and what the contract suite asserts on. Times are
integer nanoseconds since the epoch (UTC) because building ``datetime``
objects on the hot path costs more than the rest of recording.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from random import randbytes
from types import MappingProxyType
from typing import Any

from faremeter.cost import Cost
from faremeter.usage import Usage

__all__ = [
    "ATTRIBUTE_NAME",
    "ATTRIBUTION_KEYS",
    "AttributeValue",
    "SpanKind",
    "SpanRecord",
    "SpanStatus",
    "new_span_id",
    "new_trace_id",
    "validate_attribute_name",
]

AttributeValue = str | int | float | bool
"""What an attribute may hold; anything else is stringified at the boundary."""

ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
"""Attribute names users may use: they end up as SQL identifiers and JSON keys."""

ATTRIBUTION_KEYS: tuple[str, ...] = (
    "user_id",
    "team",
    "workflow",
    "feature",
    "step",
    "tenant",
    "environment",
    "agent",
    "session_id",
)
"""Well-known attribution keys adapters copy from a framework's run metadata.

Other metadata stays private unless the user lists it: run metadata often
carries things (documents, ids of other systems) that do not belong in a ledger.
"""

_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})


def validate_attribute_name(name: str) -> str:
    """Return ``name`` if it is a safe attribute name.

    Raises:
        ValueError: With the offending name, so a typo is easy to find.
    """
    if not isinstance(name, str) or not ATTRIBUTE_NAME.match(name):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(
            f"invalid attribute name {name!r}: use letters, digits, '_', '.', '-'"
            " (at most 64, starting with a letter or '_')"
        )
    return name


class SpanKind(StrEnum):
    """What a span stands for."""

    AGENT = "agent"
    CHAIN = "chain"
    LLM = "llm"
    TOOL = "tool"
    RETRIEVAL = "retrieval"
    EMBEDDING = "embedding"


class SpanStatus(StrEnum):
    """How a span ended."""

    OK = "ok"
    ERROR = "error"
    CACHED = "cached"
    FALLBACK = "fallback"
    DENIED = "denied"


def new_trace_id() -> str:
    """A random 128-bit id as 32 hex digits (W3C / OpenTelemetry format)."""
    return randbytes(16).hex()  # the fastest stdlib route to 32 hex digits


def new_span_id() -> str:
    """A random 64-bit id as 16 hex digits (W3C / OpenTelemetry format)."""
    return randbytes(8).hex()


@dataclass(frozen=True, kw_only=True, slots=True)
class SpanRecord:
    """A finished span, as stored in the ledger.

    Attributes:
        trace_id: The run this span belongs to.
        span_id: This span.
        parent_span_id: The span that caused this one; ``None`` for a root.
        name: Human-readable name (agent, node, tool or model call name).
        kind: What the span stands for.
        status: How it ended.
        start_ns: Start, nanoseconds since the epoch.
        end_ns: End, nanoseconds since the epoch.
        model: The model as the framework named it (LLM and embedding spans).
        provider: The provider, when known.
        usage: Token counts (LLM and embedding spans).
        cost: The span's *own* (direct) cost; children carry theirs.
        saved: What a cache hit saved (``cached`` spans).
        price_version: Which price table priced it (snapshot date or ``override``).
        attributes: Attribution (user_id, team, workflow, step, ...) and extras.
        tags: Free-form labels.
        error: ``ExceptionType: message`` for error spans.
        error_class: Normalised error class (rate_limit, timeout, ...), if known.
        content: Prompts/responses, only when the user opted in.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: SpanKind
    status: SpanStatus = SpanStatus.OK
    start_ns: int
    end_ns: int
    model: str | None = None
    provider: str | None = None
    usage: Usage | None = None
    cost: Cost = field(default_factory=Cost)
    saved: Decimal | None = None
    price_version: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=lambda: _EMPTY)
    tags: tuple[str, ...] = ()
    error: str | None = None
    error_class: str | None = None
    content: Mapping[str, Any] | None = None

    @property
    def latency_ms(self) -> float:
        """Wall-clock duration in milliseconds."""
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def start_time(self) -> datetime:
        """Start as an aware UTC datetime."""
        return datetime.fromtimestamp(self.start_ns / 1e9, tz=UTC)

    @property
    def end_time(self) -> datetime:
        """End as an aware UTC datetime."""
        return datetime.fromtimestamp(self.end_ns / 1e9, tz=UTC)


def _compile_builder() -> Callable[..., SpanRecord]:
    """Generate ``build_record``: one direct slot store per field, no loop.

    A frozen dataclass ``__init__`` routes each of the 19 fields through
    ``object.__setattr__``, which is half the cost of recording a span; a loop
    over the slot setters still pays the iteration. The generated function
    stores each argument straight into its slot.
    """
    names = tuple(SpanRecord.__dataclass_fields__)
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": SpanRecord}
    lines = [f"def build_record({', '.join(names)}):", "    record = _new(_cls)"]
    for index, name in enumerate(names):
        namespace[f"_set{index}"] = SpanRecord.__dict__[name].__set__  # the slot's descriptor
        lines.append(f"    _set{index}(record, {name})")
    lines.append("    return record")
    exec("\n".join(lines), namespace)
    return namespace["build_record"]


build_record: Callable[..., SpanRecord] = _compile_builder()
"""Build a record from every field's value, positionally in declaration order.

The recording hot path's constructor: the same object as the dataclass
constructor gives (tested against it) in a fraction of the time. A wrong
number of values raises ``TypeError``.
"""
