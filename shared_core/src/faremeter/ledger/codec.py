"""Spans to rows and back, and money to integer units.

Both SQL stores share this encoding so a span written by SQLite and one
written by PostgreSQL decode to the same :class:`~faremeter.spans.SpanRecord`.

Money: each span keeps its exact cost parts as decimal strings (the ``cost``
JSON column), and its total as an integer number of *picodollars*
(1e-12 USD, ``cost_pico``) so SQL sums are exact integer arithmetic and fast.
Totals are rounded half-even to 1e-12 USD; real prices (e.g. $0.075 per 1M
tokens = 7.5e-8 per token) are far coarser, so the rounding only ever touches
synthetic amounts. An unpriced span has ``cost_pico`` NULL and is counted
separately, never summed as $0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from faremeter.cost import Cost
from faremeter.ledger.filters import PROMOTED, attr_text
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.usage import Usage

__all__ = [
    "ONLY_PROMOTED",
    "PICO",
    "SPAN_COLUMNS",
    "TRACE_COLUMNS",
    "TraceDelta",
    "decode_span",
    "encode_span",
    "from_pico",
    "rollup",
    "to_pico",
]

PICO = 12
"""Decimal places of the integer money unit (1e-12 USD)."""

_SCALE = Decimal(10) ** PICO

SPAN_COLUMNS: tuple[str, ...] = (
    "span_id",
    "trace_id",
    "parent_span_id",
    "name",
    "kind",
    "status",
    "start_ns",
    "end_ns",
    "model",
    "provider",
    "usage",
    "input_tokens",
    "output_tokens",
    "cost",
    "cost_pico",
    "saved",
    "price_version",
    *PROMOTED,
    "attributes",
    "attrs_str",
    "tags",
    "error",
    "error_class",
    "content",
)
"""Column order of a span row (``encode_span`` output, ``decode_span`` input)."""

TRACE_COLUMNS: tuple[str, ...] = (
    "trace_id",
    "spans",
    "unpriced",
    "total_pico",
    "started_ns",
    "ended_ns",
    "root_span_id",
    "root_start_ns",
    "root_name",
    *PROMOTED,
    "attrs_str",
)
"""Column order of the per-trace rollup row."""

_I_TRACE = SPAN_COLUMNS.index("trace_id")
_I_PARENT = SPAN_COLUMNS.index("parent_span_id")
_I_SPAN = SPAN_COLUMNS.index("span_id")
_I_NAME = SPAN_COLUMNS.index("name")
_I_START = SPAN_COLUMNS.index("start_ns")
_I_END = SPAN_COLUMNS.index("end_ns")
_I_PICO = SPAN_COLUMNS.index("cost_pico")
_I_PROMOTED = SPAN_COLUMNS.index(PROMOTED[0])
_I_ATTRS_STR = SPAN_COLUMNS.index("attrs_str")
_PROMOTED_SET = frozenset(PROMOTED)


def to_pico(amount: Decimal) -> int:
    """Dollars to integer picodollars, rounding half-even at 1e-12."""
    # round() of a Decimal is an int rounded half-even: one C call instead of
    # to_integral_value(rounding=...) plus int().
    return round(amount.scaleb(PICO))


def from_pico(units: int | Decimal | None) -> Decimal:
    """Integer picodollars (or a NUMERIC sum of them) to exact dollars."""
    if not units:
        return Decimal(0)
    return Decimal(int(units)) / _SCALE


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _make_fast_encode() -> Any:
    """The C JSON encoder, built once and called directly.

    ``JSONEncoder.encode`` builds a new one on every call, which costs more
    than encoding a few attributes.

    Same output as :data:`_encode` for the flat dicts and lists of str, int,
    float and bool stored here (no circular-reference check is needed for
    those); ``None`` when this Python has no C encoder.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    default = json.JSONEncoder().default  # the usual "not JSON serializable" TypeError
    return make(
        None, default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )


_c_encode = _make_fast_encode()


def _dumps(value: Any) -> str:
    try:
        if _c_encode is not None and type(value) in (dict, list):
            return "".join(_c_encode(value, 0))
        return _encode(value)
    except ValueError:
        # NaN/inf are not JSON (PostgreSQL rejects them): store their text
        # form rather than losing the span.
        return _encode(_finite(value))


def _cost_json(cost: Cost) -> str:
    """``Cost.to_dict()`` as JSON, built directly: this runs once per span."""
    if cost.unpriced_reason is not None or cost.input is None:
        return _dumps(cost.to_dict())
    model = "null" if cost.model is None else _encode(cost.model)
    return (
        f'{{"input":"{cost.input}","cache_read":"{cost.cache_read}",'
        f'"cache_write":"{cost.cache_write}","output":"{cost.output}",'
        f'"reasoning":"{cost.reasoning}","tool":"{cost.tool}",'
        f'"unpriced_reason":null,"model":{model}}}'
    )


def _usage_json(usage: Usage) -> str:
    """``Usage`` as JSON, built directly (counts are validated ints)."""
    u = usage
    return (
        f'{{"input_tokens":{u.input_tokens},"output_tokens":{u.output_tokens},'
        f'"cache_read_tokens":{u.cache_read_tokens},"cache_write_tokens":{u.cache_write_tokens},'
        f'"cache_write_1h_tokens":{u.cache_write_1h_tokens},'
        f'"reasoning_tokens":{u.reasoning_tokens},"audio_input_tokens":{u.audio_input_tokens},'
        f'"audio_output_tokens":{u.audio_output_tokens},'
        f'"image_input_tokens":{u.image_input_tokens},"source":"{u.source}"}}'
    )


_MEMO_MAX = 4096
"""Entries per encoding memo; a full memo is cleared (bounded memory)."""

_cost_memo: dict[int, tuple[Cost, str, int | None]] = {}
_usage_memo: dict[int, tuple[Usage, str]] = {}


def _cost_fields(cost: Cost) -> tuple[str, int | None]:
    """``(cost JSON, total picodollars)`` of ``cost``, memoised by identity.

    ``Cost`` is frozen, so an object seen before (a shared zero cost, a tool
    price reused for every call) encodes the same way; the memo holds the
    object itself, so an ``id`` is never matched against a different, later
    object. Lookups and stores are single dict operations (atomic under the
    GIL), so concurrent encoders at worst compute an entry twice.
    """
    hit = _cost_memo.get(id(cost))
    if hit is not None and hit[0] is cost:
        return hit[1], hit[2]
    total = cost.total
    text = _cost_json(cost)
    pico = None if total is None else to_pico(total)
    if len(_cost_memo) >= _MEMO_MAX:
        _cost_memo.clear()
    _cost_memo[id(cost)] = (cost, text, pico)
    return text, pico


def _usage_text(usage: Usage) -> str:
    """``Usage`` JSON, memoised by identity like :func:`_cost_fields`."""
    hit = _usage_memo.get(id(usage))
    if hit is not None and hit[0] is usage:
        return hit[1]
    text = _usage_json(usage)
    if len(_usage_memo) >= _MEMO_MAX:
        _usage_memo.clear()
    _usage_memo[id(usage)] = (usage, text)
    return text


ONLY_PROMOTED = ""
"""``attributes`` column value (schema version 2) meaning "exactly the non-NULL
promoted columns, as text" — the common case, stored without a JSON copy.
Such spans decode with their attributes in :data:`PROMOTED` order."""

_NO_PROMOTED: tuple[None, ...] = (None,) * len(PROMOTED)
_EMPTY_ATTRS: tuple[tuple[Any, ...], str, str | None] = (_NO_PROMOTED, "{}", None)


_TEXT_OR_NONE = frozenset({str, type(None)})


def _text(value: Any) -> str | None:
    """:func:`attr_text` with the common cases (absent, already text) inlined."""
    if value is None or type(value) is str:
        return value
    return attr_text(value)


def _attr_fields(attrs: Mapping[str, Any]) -> tuple[tuple[Any, ...], str, str | None]:
    """``(promoted column values, attributes JSON, custom text-attributes JSON)``.

    No memo here: attribute mappings rarely repeat exactly (the step or span
    name changes), and building a hashable key costs as much as encoding.
    """
    if not attrs:
        return _EMPTY_ATTRS
    promoted = tuple(map(attrs.get, PROMOTED))
    text = _TEXT_OR_NONE.issuperset(map(type, promoted))
    if not text:
        promoted = tuple([_text(v) for v in promoted])
    if len(attrs) == len(PROMOTED) - promoted.count(None):
        # Only promoted keys: no custom map, and when they are all text the
        # promoted columns hold the whole mapping (see ONLY_PROMOTED).
        return promoted, ONLY_PROMOTED if text else _dumps(dict(attrs)), None
    custom: dict[str, str] = {}
    for key, value in attrs.items():
        if key not in _PROMOTED_SET:
            custom[key] = attr_text(value)
    return promoted, _dumps(dict(attrs)), _dumps(custom) if custom else None


def encode_span(span: SpanRecord) -> tuple[Any, ...]:
    """One span as a row in :data:`SPAN_COLUMNS` order.

    This runs once per stored span on the writer thread, so the parts that
    repeat across spans (a frozen ``Cost`` or ``Usage``
    object) are memoised; see :func:`_cost_fields`.

    Raises:
        TypeError: For values that cannot be stored (the writer rejects the
            span, logs its id and keeps going).
        ValueError: Likewise.
    """
    cost_text, pico = _cost_fields(span.cost)
    usage = span.usage
    promoted, attributes, attrs_str = _attr_fields(span.attributes)
    tags = span.tags
    content = span.content
    saved = span.saved
    return (
        span.span_id,
        span.trace_id,
        span.parent_span_id,
        span.name,
        str.__str__(span.kind),  # StrEnum: its value, without the Enum property
        str.__str__(span.status),
        int(span.start_ns),
        int(span.end_ns),
        span.model,
        span.provider,
        None if usage is None else _usage_text(usage),
        None if usage is None else usage.input_tokens,
        None if usage is None else usage.output_tokens,
        cost_text,
        pico,
        None if saved is None else str(saved),
        span.price_version,
        *promoted,
        attributes,
        attrs_str,
        _dumps(list(tags)) if tags else None,
        span.error,
        span.error_class,
        None if content is None else json.dumps(content, default=str),
    )


def decode_span(row: Sequence[Any]) -> SpanRecord:
    """Inverse of :func:`encode_span` (rows in :data:`SPAN_COLUMNS` order)."""
    (
        span_id,
        trace_id,
        parent_span_id,
        name,
        kind,
        status,
        start_ns,
        end_ns,
        model,
        provider,
        usage,
        _input_tokens,
        _output_tokens,
        cost,
        _cost_pico,
        saved,
        price_version,
        *rest,
    ) = row
    attributes, _attrs_str, tags, error, error_class, content = rest[len(PROMOTED) :]
    attrs: dict[str, Any]
    if attributes == ONLY_PROMOTED:
        attrs = {k: v for k, v in zip(PROMOTED, rest, strict=False) if v is not None}
    elif attributes and attributes != "{}":
        attrs = json.loads(attributes)
    else:
        attrs = {}
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=SpanKind(kind),
        status=SpanStatus(status),
        start_ns=int(start_ns),
        end_ns=int(end_ns),
        model=model,
        provider=provider,
        usage=None if usage is None else Usage.from_dict(json.loads(usage)),
        cost=Cost.from_dict(json.loads(cost)),
        saved=None if saved is None else Decimal(saved),
        price_version=price_version,
        attributes=MappingProxyType(attrs),
        tags=tuple(json.loads(tags)) if tags else (),
        error=error,
        error_class=error_class,
        content=None if content is None else json.loads(content),
    )


class TraceDelta:
    """What one batch adds to a trace's rollup row.

    The rollup is additive (spans, unpriced, total) plus min/max times plus
    the *earliest* root (by start, then span id), so batches of one trace
    arriving from several writers in any order converge to the same row.
    """

    __slots__ = (
        "ended_ns",
        "root",
        "root_key",
        "spans",
        "started_ns",
        "total_pico",
        "trace_id",
        "unpriced",
    )

    def __init__(self, trace_id: str, start_ns: int, end_ns: int) -> None:
        self.trace_id = trace_id
        self.spans = 0
        self.unpriced = 0
        self.total_pico = 0
        self.started_ns = start_ns
        self.ended_ns = end_ns
        self.root: Sequence[Any] | None = None
        self.root_key: tuple[int, str] | None = None

    def row(self) -> tuple[Any, ...]:
        """The delta as a row in :data:`TRACE_COLUMNS` order."""
        root = self.root
        if root is None:
            head: tuple[Any, ...] = (None, None, None)
            promoted: tuple[Any, ...] = (None,) * len(PROMOTED)
            attrs_str = None
        else:
            head = (root[_I_SPAN], root[_I_START], root[_I_NAME])
            promoted = tuple(root[_I_PROMOTED : _I_PROMOTED + len(PROMOTED)])
            attrs_str = root[_I_ATTRS_STR]
        return (
            self.trace_id,
            self.spans,
            self.unpriced,
            self.total_pico,
            self.started_ns,
            self.ended_ns,
            *head,
            *promoted,
            attrs_str,
        )


def rollup(rows: Iterable[Sequence[Any]]) -> list[TraceDelta]:
    """Per-trace deltas of newly inserted span rows, sorted by trace id.

    Sorting gives every writer the same lock order on the rollup table, which
    keeps concurrent PostgreSQL upserts from deadlocking.
    """
    deltas: dict[str, TraceDelta] = {}
    for r in rows:
        tid = r[_I_TRACE]
        start = r[_I_START]
        d = deltas.get(tid)
        if d is None:
            d = deltas[tid] = TraceDelta(tid, start, r[_I_END])
        else:
            d.started_ns = min(d.started_ns, start)
            d.ended_ns = max(d.ended_ns, r[_I_END])
        d.spans += 1
        pico = r[_I_PICO]
        if pico is None:
            d.unpriced += 1
        else:
            d.total_pico += pico
        if r[_I_PARENT] is None:
            key = (start, r[_I_SPAN])
            if d.root_key is None or key < d.root_key:
                d.root_key = key
                d.root = r
    return [deltas[k] for k in sorted(deltas)]


def attrs_of(row: Sequence[Any]) -> Mapping[str, str]:
    """Text attributes of a span row (promoted and custom), for the memory store."""
    out: dict[str, str] = {}
    for i, key in enumerate(PROMOTED):
        value = row[_I_PROMOTED + i]
        if value is not None:
            out[key] = value
    custom = row[_I_ATTRS_STR]
    if custom:
        out.update(json.loads(custom))
    return out
