"""In-process ledger store: tests, notebooks, short scripts.

It answers every query in plain Python over the same encoded rows the SQL
stores write, so it doubles as the reference the SQL queries are tested
against. Nothing survives the process.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from faremeter.ledger.codec import (
    SPAN_COLUMNS,
    TraceDelta,
    attrs_of,
    encode_span,
    from_pico,
    rollup,
)
from faremeter.ledger.filters import AttrRef, QueryFilter
from faremeter.ledger.results import CostRow, CostSplit, PercentileRow, TimeBucket, TopTrace
from faremeter.spans import SpanRecord

__all__ = ["MemoryStore", "ns_to_datetime"]

_I = {name: i for i, name in enumerate(SPAN_COLUMNS)}
_LLM_KINDS = frozenset({"llm", "embedding"})


def ns_to_datetime(ns: int) -> datetime:
    """Epoch nanoseconds to an aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1_000
    )


def span_key(attr: AttrRef) -> Callable[[Sequence[Any]], str | None]:
    """A function reading ``attr``'s text value from an encoded span row."""
    if attr.kind == "field":
        if attr.name == "tool":
            i_kind, i_name = _I["kind"], _I["name"]
            return lambda r: r[i_name] if r[i_kind] == "tool" else None
        i = _I[attr.name]
        return lambda r: r[i]
    name = attr.name
    return lambda r: attrs_of(r).get(name)


def _trace_key(attr: AttrRef) -> Callable[[TraceDelta], str | None]:
    if attr.kind == "field":
        raise ValueError(f"{attr.name!r} is a span field; trace queries group by root attributes")
    name = attr.name

    def key(t: TraceDelta) -> str | None:
        return None if t.root is None else attrs_of(t.root).get(name)

    return key


class MemoryStore:
    """Spans in a dict, keyed by span id (so re-writes are no-ops)."""

    backend = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._spans: dict[str, SpanRecord] = {}

    def write(self, batch: Sequence[SpanRecord]) -> int:
        """Store the spans not already present; all-or-nothing per batch."""
        encoded = [(s, encode_span(s)) for s in batch]
        new = 0
        with self._lock:
            for span, row in encoded:
                if span.span_id not in self._rows:
                    self._rows[span.span_id] = row
                    # Keep the decoded form identical to what SQL stores return.
                    if type(span.tags) is not tuple:
                        span = replace(span, tags=tuple(span.tags))
                    self._spans[span.span_id] = span
                    new += 1
        return new

    def is_transient(self, exc: BaseException) -> bool:
        """Nothing in memory gets better by waiting."""
        return False

    def close(self) -> None:
        """Nothing to release; the data stays readable."""

    # -- selection ---------------------------------------------------------

    def _select(self, flt: QueryFilter) -> list[tuple[Any, ...]]:
        with self._lock:
            rows = list(self._rows.values())
        checks: list[Callable[[Sequence[Any]], bool]] = []
        if flt.trace_id is not None:
            tid, i = flt.trace_id, _I["trace_id"]
            checks.append(lambda r: r[i] == tid)
        if flt.since_ns is not None:
            lo, i = flt.since_ns, _I["start_ns"]
            checks.append(lambda r: r[i] >= lo)
        if flt.until_ns is not None:
            hi, i = flt.until_ns, _I["start_ns"]
            checks.append(lambda r: r[i] < hi)
        if flt.kind is not None:
            kind, i = flt.kind, _I["kind"]
            checks.append(lambda r: r[i] == kind)
        for attr, value in flt.where:
            get = span_key(attr)
            checks.append(lambda r, get=get, value=value: get(r) == value)
        return [r for r in rows if all(c(r) for c in checks)]

    def _traces(self, flt: QueryFilter) -> list[TraceDelta]:
        with self._lock:
            rows = list(self._rows.values())
        out: list[TraceDelta] = []
        keys = [(_trace_key(a), v) for a, v in flt.where]
        for t in rollup(rows):
            if flt.trace_id is not None and t.trace_id != flt.trace_id:
                continue
            if flt.since_ns is not None and t.started_ns < flt.since_ns:
                continue
            if flt.until_ns is not None and t.started_ns >= flt.until_ns:
                continue
            if all(get(t) == value for get, value in keys):
                out.append(t)
        return out

    # -- queries -----------------------------------------------------------

    def spans(self, flt: QueryFilter, limit: int | None) -> list[SpanRecord]:
        """Matching spans by start time, then span id."""
        rows = sorted(self._select(flt), key=lambda r: (r[_I["start_ns"]], r[_I["span_id"]]))
        if limit is not None:
            rows = rows[:limit]
        with self._lock:
            return [self._spans[r[_I["span_id"]]] for r in rows]

    def cost_by(self, attr: AttrRef, flt: QueryFilter) -> list[CostRow]:
        """Group in Python; same rules as the SQL stores."""
        rows = self._select(flt)
        if attr.kind == "field" and attr.name == "tool":
            rows = [r for r in rows if r[_I["kind"]] == "tool"]
        return _group(rows, span_key(attr))

    def cost_split(self, flt: QueryFilter) -> CostSplit:
        """Sum by kind family."""
        parts = {"llm": 0, "tool": 0, "other": 0}
        spans = unpriced = 0
        for r in self._select(flt):
            kind = r[_I["kind"]]
            family = "llm" if kind in _LLM_KINDS else "tool" if kind == "tool" else "other"
            spans += 1
            pico = r[_I["cost_pico"]]
            if pico is None:
                unpriced += 1
            else:
                parts[family] += pico
        return CostSplit(
            llm=from_pico(parts["llm"]),
            tool=from_pico(parts["tool"]),
            other=from_pico(parts["other"]),
            total=from_pico(sum(parts.values())),
            spans=spans,
            unpriced=unpriced,
        )

    def time_series(
        self, width_ns: int, attr: AttrRef | None, flt: QueryFilter
    ) -> list[TimeBucket]:
        """Bucket start times by integer division, like the SQL stores."""
        get = None if attr is None else span_key(attr)
        acc: dict[tuple[int, str | None], list[int]] = {}
        for r in self._select(flt):
            start = (r[_I["start_ns"]] // width_ns) * width_ns
            k = (start, None if get is None else get(r))
            a = acc.setdefault(k, [0, 0, 0])
            pico = r[_I["cost_pico"]]
            a[1] += 1
            if pico is None:
                a[2] += 1
            else:
                a[0] += pico
        return [
            TimeBucket(
                start=ns_to_datetime(start),
                key=key,
                cost=from_pico(a[0]),
                spans=a[1],
                unpriced=a[2],
            )
            for (start, key), a in acc.items()
        ]

    def percentiles(
        self, attr: AttrRef, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Nearest-rank quantiles of per-trace totals per root attribute."""
        get = _trace_key(attr)
        groups: dict[str | None, list[TraceDelta]] = {}
        for t in self._traces(flt):
            groups.setdefault(get(t), []).append(t)
        out: list[PercentileRow] = []
        for key, traces in groups.items():
            traces.sort(key=lambda t: (t.total_pico, t.trace_id))
            n = len(traces)
            out.append(
                PercentileRow(
                    key=key,
                    traces=n,
                    total=from_pico(sum(t.total_pico for t in traces)),
                    max=from_pico(traces[-1].total_pico),
                    quantiles={
                        q: from_pico(traces[max(1, math.ceil(q * n)) - 1].total_pico)
                        for q in quantiles
                    },
                    unpriced_traces=sum(1 for t in traces if t.unpriced),
                )
            )
        return out

    def top_traces(self, n: int, flt: QueryFilter) -> list[TopTrace]:
        """Most expensive traces, ties broken by trace id."""
        traces = sorted(self._traces(flt), key=lambda t: (-t.total_pico, t.trace_id))[:n]
        return [
            TopTrace(
                trace_id=t.trace_id,
                root_name=None if t.root is None else t.root[_I["name"]],
                cost=from_pico(t.total_pico),
                spans=t.spans,
                unpriced=t.unpriced,
                started=ns_to_datetime(t.started_ns),
            )
            for t in traces
        ]


def _group(
    rows: Iterable[Sequence[Any]], get: Callable[[Sequence[Any]], str | None]
) -> list[CostRow]:
    acc: dict[str | None, list[Any]] = {}
    i_pico, i_trace = _I["cost_pico"], _I["trace_id"]
    i_in, i_out = _I["input_tokens"], _I["output_tokens"]
    for r in rows:
        a = acc.setdefault(get(r), [0, 0, set(), 0, 0, 0])
        pico = r[i_pico]
        if pico is None:
            a[3] += 1
        else:
            a[0] += pico
        a[1] += 1
        a[2].add(r[i_trace])
        a[4] += r[i_in] or 0
        a[5] += r[i_out] or 0
    return [
        CostRow(
            key=key,
            cost=from_pico(a[0]),
            spans=a[1],
            traces=len(a[2]),
            unpriced=a[3],
            input_tokens=a[4],
            output_tokens=a[5],
        )
        for key, a in acc.items()
    ]
