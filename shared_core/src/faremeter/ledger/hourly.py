"""The hourly rollup: additive sums per UTC hour and per a few low-cardinality keys.

Every panel of the dashboard and most suggestions add things up — spend,
spans, tokens, ``saved`` — over a time window, grouped by span fields
(kind, status, model, tool) or by ``step``. On a million spans each such sum
is a full scan; the rollup keeps them per hour instead, maintained in the
same transaction as the spans (like the per-trace rollup), so a month is a
few thousand rows.

What it keys on (:data:`DIMS`): the span fields ``kind``, ``status``,
``model``, ``provider`` and ``tool``, the attributes in
:data:`ROLLUP_ATTRIBUTES` (``step`` and the route attributes the savings
panel groups by), whether ``route.baseline_cost`` is set, and whether the
span was priced and had usage. Attribution keys (``user_id``, ``team``,
``workflow``, ...) are left out on purpose: each multiplies the rows per hour
(keyed by ``workflow`` as well, a 1M-span test ledger's rollup was five times
larger), and with several of them the rollup would grow back to one row per
span. So are digests that are new on nearly every call (``tool_args_hash``,
``prompt_prefix_hash``): their repeats are counted over the whole ledger in
rollups of their own (:func:`rollup_deltas`).

What it sums (:data:`SUMS`): spans, cost and ``saved`` in picodollars (the
ledger's exact money unit) and every usage count.

A query whose grouping and filters use only those keys, with a bucket width
that is a whole number of hours, is answered from the rollup for the whole
hours of its window and from the spans for the partial hours at either end
(:mod:`faremeter.ledger.hourly_sql`); anything else scans the spans. Both give
the same numbers; this module holds the one Python definition of a span's
keys and sums that the writer, the backfill and the partial hours all use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from faremeter.ledger.codec import SPAN_COLUMNS, from_pico, to_pico
from faremeter.ledger.filters import AttrRef, QueryFilter, attr_text
from faremeter.ledger.results import (
    CostSplit,
    PrefixGroup,
    RepeatGroup,
    TimeBucket,
    TotalRow,
    UsageTotal,
)
from faremeter.spans import SpanRecord

__all__ = [
    "ARGS_HASH",
    "COUNTS",
    "DIMS",
    "HAS_USAGE",
    "HOUR_NS",
    "PREFIX_HASH",
    "PREFIX_TOKENS",
    "PRICED",
    "ROLLUP_ATTRIBUTES",
    "SUMS",
    "VECTOR",
    "Deltas",
    "Grouped",
    "add_into",
    "column_of",
    "cost_split_of",
    "hour_rows",
    "kind_family",
    "prefix_groups",
    "repeat_groups",
    "rollup_deltas",
    "row_vector",
    "serves",
    "split_of_picos",
    "time_buckets_of",
    "total_rows_of",
    "usage_totals_of",
]

HOUR_NS = 3_600 * 10**9

ROLLUP_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {
        "step": "step",
        "route.model": "route_model",
        "route.baseline_model": "route_baseline",
    }
)
"""Attributes with a rollup column (attribute name -> column)."""

_PRESENCE: Mapping[str, str] = MappingProxyType({"route.baseline_cost": "stamped"})
"""Attributes whose rollup column only says whether they are set (filter ``None`` only)."""

_FIELDS: Mapping[str, str] = MappingProxyType(
    {"model": "model", "kind": "kind", "status": "status", "provider": "provider", "tool": "tool"}
)

PRICED = AttrRef("field", "priced")
"""Internal grouping key: 1 when the span had a price, else 0."""
HAS_USAGE = AttrRef("field", "has_usage")
"""Internal grouping key: 1 when the span recorded usage, else 0."""
_FLAGS: Mapping[AttrRef, str] = MappingProxyType({PRICED: "priced", HAS_USAGE: "has_usage"})

DIMS: tuple[str, ...] = (
    "kind",
    "status",
    "model",
    "provider",
    "tool",
    *ROLLUP_ATTRIBUTES.values(),
    "stamped",
    "priced",
    "has_usage",
)
"""Key columns of a rollup row, in order."""

COUNTS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "image_input_tokens",
)
"""Usage counts summed (the :class:`~faremeter.usage.Usage` fields)."""

SUMS: tuple[str, ...] = ("spans", "cost_pico", "saved_pico", *COUNTS)
"""Summed columns of a rollup row, in order."""

VECTOR: tuple[str, ...] = ("spans", "unpriced", "cost_pico", "saved_pico", *COUNTS)
"""What every rollup query returns per group, in order (``unpriced`` derived)."""

ARGS_HASH = "tool_args_hash"
"""Attribute holding a digest of a tool call's canonical arguments."""
PREFIX_HASH = "prompt_prefix_hash"
"""Attribute holding a digest of a model call's prompt prefix."""
PREFIX_TOKENS = "prompt_prefix_tokens"
"""Attribute holding how many tokens that prefix is."""

Grouped = dict[tuple[Any, ...], list[int]]
"""Group key -> :data:`VECTOR` sums."""

_, _ROUTE_MODEL, _ROUTE_BASE = ROLLUP_ATTRIBUTES
_STAMP = "route.baseline_cost"


def column_of(attr: AttrRef) -> str | None:
    """The rollup column holding ``attr`` (``None``: the rollup cannot group by it)."""
    if attr.kind == "field":
        return _FIELDS.get(attr.name) or _FLAGS.get(attr)
    return ROLLUP_ATTRIBUTES.get(attr.name)


def serves(keys: Sequence[AttrRef], width_ns: int | None, flt: QueryFilter) -> bool:
    """Whether the rollup can answer a query grouped by ``keys`` over ``flt``.

    Every key and filter must have a rollup column (a ``route.baseline_cost``
    filter only as "not set"), buckets must be whole hours, and a single
    trace is always read from the spans.
    """
    if flt.trace_id is not None or (width_ns is not None and width_ns % HOUR_NS):
        return False
    if any(column_of(k) is None for k in keys):
        return False
    for attr, value in flt.where:
        if column_of(attr) is None and not (attr.name in _PRESENCE and value is None):
            return False
    return True


def _text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return attr_text(value)


_I_KIND, _I_STATUS, _I_MODEL, _I_PROVIDER, _I_NAME, _I_STEP, _I_START, _I_PICO, _I_CUSTOM = (
    SPAN_COLUMNS.index(c)
    for c in ("kind", "status", "model", "provider", "name", "step", "start_ns", "cost_pico",
              "attrs_str")
)  # fmt: skip
_NO_CUSTOM: tuple[Any, ...] = (None, None, 0)
_ARGS_KEY = f'"{ARGS_HASH}"'
_PREFIX_KEY = f'"{PREFIX_HASH}"'
_RARE_OF = attrgetter(*COUNTS[2:])
_ZEROS = (0,) * len(COUNTS[2:])

Deltas = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]
"""Rows for the hourly, tool-arguments and prompt-prefix rollups."""


def rollup_deltas(items: Iterable[tuple[SpanRecord, Sequence[Any]]]) -> Deltas:
    """What newly stored spans add to the hourly, tool-arguments and prompt-prefix rollups.

    ``items`` pairs each span with its encoded row (:data:`SPAN_COLUMNS`
    order), whose text columns already hold most keys. Returns hourly rows
    ``(bucket_ns, key text, *DIMS, *SUMS)``, tool rows ``(tool, arguments
    hash, calls, cost_pico)`` of successful tool calls, and prefix rows
    ``(model, prefix hash, prefix tokens, calls)`` of model calls, each sorted
    so concurrent writers upsert in the same order. This runs on the writer
    thread for every span, hence the shortcuts: spans without custom
    attributes skip their lookups, and the usage counts besides input and
    output (zero for most calls) are summed per key at the end, in C.
    """
    acc: dict[tuple[Any, ...], list[Any]] = {}
    tools: dict[tuple[str, str], list[int]] = {}
    prefixes: dict[tuple[str, str, str], int] = {}
    for span, r in items:
        kind = r[_I_KIND]
        pico = r[_I_PICO]
        usage = span.usage
        custom = _NO_CUSTOM
        text = r[_I_CUSTOM]  # the custom attributes' JSON: look keys up only if it names them
        if text is not None:
            get = span.attributes.get
            if '"route.' in text:
                custom = (
                    _text(get(_ROUTE_MODEL)),
                    _text(get(_ROUTE_BASE)),
                    0 if get(_STAMP) is None else 1,
                )
            if kind == "tool" and _ARGS_KEY in text and r[_I_STATUS] == "ok":
                args = _text(get(ARGS_HASH))
                if args is not None:
                    t = tools.get((span.name, args))
                    if t is None:
                        tools[(span.name, args)] = [1, pico or 0]
                    else:
                        t[0] += 1
                        t[1] += pico or 0
            elif kind == "llm" and _PREFIX_KEY in text:
                model, digest, size = r[_I_MODEL], _text(get(PREFIX_HASH)), get(PREFIX_TOKENS)
                if model is not None and digest is not None and size is not None:
                    k = (model, digest, attr_text(size))
                    prefixes[k] = prefixes.get(k, 0) + 1
        key = (
            (r[_I_START] // HOUR_NS) * HOUR_NS,
            kind,
            r[_I_STATUS],
            r[_I_MODEL],
            r[_I_PROVIDER],
            r[_I_NAME] if kind == "tool" else None,
            r[_I_STEP],
            *custom,
            0 if pico is None else 1,
            0 if usage is None else 1,
        )
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0, 0, 0, 0, 0, []]
        a[0] += 1
        if pico is not None:
            a[1] += pico
        saved = span.saved
        if saved is not None:
            a[2] += to_pico(saved)
        if usage is not None:
            a[3] += usage.input_tokens
            a[4] += usage.output_tokens
            if (
                usage.cache_read_tokens
                or usage.cache_write_tokens
                or usage.cache_write_1h_tokens
                or usage.reasoning_tokens
                or usage.audio_input_tokens
                or usage.audio_output_tokens
                or usage.image_input_tokens
            ):
                a[5].append(usage)  # the other counts, summed below (most calls have none)
    hours: dict[tuple[int, tuple[Any, ...]], list[int]] = {}
    for key, (n, cost, saved_pico, tin, tout, rare) in acc.items():
        counts = [sum(c) for c in zip(*map(_RARE_OF, rare), strict=True)] if rare else _ZEROS
        hours[(key[0], key[1:])] = [n, cost, saved_pico, tin, tout, *counts]
    return (
        _rows(hours),
        [(t, a, n, c) for (t, a), (n, c) in sorted(tools.items())],
        [(*k, n) for k, n in sorted(prefixes.items())],
    )


def _rows(acc: Mapping[tuple[int, tuple[Any, ...]], list[int]]) -> list[tuple[Any, ...]]:
    encode = json.JSONEncoder(separators=(",", ":")).encode
    rows = [(bucket, encode(list(dims)), *dims, *sums) for (bucket, dims), sums in acc.items()]
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def hour_rows(grouped: Grouped) -> list[tuple[Any, ...]]:
    """Rollup rows from :data:`VECTOR` sums keyed by ``(hour, *DIMS)`` (the backfill)."""
    flags = [i for i, c in enumerate(DIMS) if c in ("stamped", "priced", "has_usage")]
    acc: dict[tuple[int, tuple[Any, ...]], list[int]] = {}
    for key, vec in grouped.items():
        dims = list(key[1:])
        for i in flags:
            dims[i] = int(dims[i])
        acc[(int(key[0]), tuple(dims))] = [vec[0], *vec[2:]]
    return _rows(acc)


def row_vector(pico: Any, saved: Any, usage: Any) -> list[int]:
    """One stored span's :data:`VECTOR` from its ``cost_pico``, ``saved`` and ``usage`` columns."""
    vec = [1, 1 if pico is None else 0, 0 if pico is None else int(pico), 0]
    if saved is not None:
        vec[3] = to_pico(Decimal(str(saved)))
    if usage is None:
        vec.extend([0] * len(COUNTS))
    else:
        counts: dict[str, Any] = json.loads(usage)
        vec.extend(_count(counts.get(k)) for k in COUNTS)
    return vec


def _count(value: Any) -> int:
    return value if type(value) is int else 0


def add_into(acc: Grouped, key: tuple[Any, ...], vec: Sequence[Any]) -> None:
    """Add one :data:`VECTOR` (ints or SQL sums, ``NULL`` as 0) to ``acc[key]``."""
    a = acc.get(key)
    if a is None:
        acc[key] = [int(v or 0) for v in vec]
        return
    for i, v in enumerate(vec):
        if v:
            a[i] += int(v)


def prefix_groups(rows: Sequence[Sequence[Any]]) -> list[PrefixGroup]:
    """Decode ``(model, prefix hash, prefix tokens, calls)`` rows, in that order."""
    out = [
        PrefixGroup(model=str(m), prefix_hash=str(h), prefix_tokens=str(t), calls=int(n))
        for m, h, t, n in rows
    ]
    out.sort(key=lambda g: (g.model, g.prefix_hash, g.prefix_tokens))
    return out


def repeat_groups(rows: Sequence[Sequence[Any]]) -> list[RepeatGroup]:
    """Decode ``(tool, calls, argument sets, cost_pico)`` rows, by tool then calls."""
    out = [
        RepeatGroup(tool=str(t), calls=int(c), argument_sets=int(k), cost=from_pico(p))
        for t, c, k, p in rows
    ]
    out.sort(key=lambda g: (g.tool, g.calls))
    return out


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def usage_totals_of(grouped: Grouped) -> list[UsageTotal]:
    """``(key, model, status, priced, has_usage)`` groups as :class:`UsageTotal` rows."""
    out: list[UsageTotal] = []
    for (key, model, status, priced, has_usage), v in grouped.items():
        tokens = MappingProxyType(dict(zip(COUNTS, v[4:], strict=True))) if int(has_usage) else None
        out.append(
            UsageTotal(
                key=_key(key),
                model=_key(model),
                status=str(status),
                priced=bool(int(priced)),
                spans=v[0],
                cost=from_pico(v[2]),
                tokens=tokens,
                saved=from_pico(v[3]),
            )
        )
    return out


def total_rows_of(grouped: Grouped) -> list[TotalRow]:
    """Groups as :class:`TotalRow` rows."""
    return [
        TotalRow(
            keys=tuple(_key(k) for k in key),
            cost=from_pico(v[2]),
            spans=v[0],
            unpriced=v[1],
            saved=from_pico(v[3]),
            input_tokens=v[4],
            output_tokens=v[5],
        )
        for key, v in grouped.items()
    ]


def time_buckets_of(grouped: Grouped, to_datetime: Callable[[int], Any]) -> list[TimeBucket]:
    """``(bucket_ns, key)`` groups as :class:`TimeBucket` rows."""
    return [
        TimeBucket(
            start=to_datetime(int(bucket)),
            key=_key(key),
            cost=from_pico(v[2]),
            spans=v[0],
            unpriced=v[1],
        )
        for (bucket, key), v in grouped.items()
    ]


_LLM_KINDS = frozenset({"llm", "embedding"})


def kind_family(kind: Any) -> str:
    """The :class:`CostSplit` family of a span kind: ``llm``, ``tool`` or ``other``."""
    return "llm" if kind in _LLM_KINDS else "tool" if kind == "tool" else "other"


def split_of_picos(picos: Mapping[str, int], spans: int, unpriced: int) -> CostSplit:
    """A :class:`CostSplit` from picodollars per family (every store sums its own way)."""
    llm, tool, other = picos.get("llm", 0), picos.get("tool", 0), picos.get("other", 0)
    return CostSplit(
        llm=from_pico(llm),
        tool=from_pico(tool),
        other=from_pico(other),
        total=from_pico(llm + tool + other),
        spans=spans,
        unpriced=unpriced,
    )


def cost_split_of(grouped: Grouped) -> CostSplit:
    """``(kind,)`` groups as the LLM / tool / other :class:`CostSplit`."""
    picos = {"llm": 0, "tool": 0, "other": 0}
    spans = unpriced = 0
    for (kind,), v in grouped.items():
        picos[kind_family(kind)] += v[2]
        spans += v[0]
        unpriced += v[1]
    return split_of_picos(picos, spans, unpriced)
