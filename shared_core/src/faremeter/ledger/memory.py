"""In-process ledger store: tests, notebooks, short scripts.

It answers every query in plain Python over the same encoded rows the SQL
stores write, so it doubles as the reference the SQL queries are tested
against. Nothing survives the process.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from faremeter.ledger.hourly import (
    ARGS_HASH,
    HAS_USAGE,
    PREFIX_HASH,
    PREFIX_TOKENS,
    PRICED,
    Grouped,
    add_into,
    kind_family,
    prefix_groups,
    repeat_groups,
    row_vector,
    split_of_picos,
    total_rows_of,
    usage_totals_of,
)
from faremeter.ledger.results import (
    CostRow,
    CostSplit,
    GroupRow,
    OutlierTrace,
    PercentileRow,
    PrefixGroup,
    RepeatGroup,
    TimeBucket,
    TopTrace,
    TotalRow,
    TracePath,
    UsageGroup,
    UsageTotal,
)
from faremeter.spans import SpanRecord

__all__ = [
    "MemoryStore",
    "collapse_runs",
    "nearest_rank",
    "ns_to_datetime",
    "outlier_row",
    "part_rows",
    "path_element",
    "pick_part_outliers",
    "usage_group_rows",
]

logger = logging.getLogger("faremeter.ledger")

_I = {name: i for i, name in enumerate(SPAN_COLUMNS)}


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


def _row_key(attr: AttrRef) -> Callable[[Sequence[Any]], Any]:
    """:func:`span_key`, plus the rollup's internal priced / with-usage flags."""
    if attr == PRICED:
        i_pico = _I["cost_pico"]
        return lambda r: 0 if r[i_pico] is None else 1
    if attr == HAS_USAGE:
        i_usage = _I["usage"]
        return lambda r: 0 if r[i_usage] is None else 1
    return span_key(attr)


def nearest_rank(q: float, n: int) -> int:
    """1-based rank of quantile ``q`` among ``n`` sorted values (nearest-rank rule)."""
    return max(1, math.ceil(q * n))


def collapse_runs(elements: Sequence[str]) -> tuple[str, ...]:
    """``(a, a, b, a)`` -> ``(a, b, a)``: a run of one element counts once."""
    out: list[str] = []
    for e in elements:
        if not out or out[-1] != e:
            out.append(e)
    return tuple(out)


def path_element(kind: str, name: str, step: str | None) -> str | None:
    """What a span contributes to its trace's path: a tool's name, else its step."""
    return name if kind == "tool" else step


def _trace_key(attr: AttrRef | None) -> Callable[[TraceDelta], str | None]:
    if attr is None:  # every trace in one group
        return lambda _t: None
    if attr.kind == "field":
        raise ValueError(f"{attr.name!r} is a span field; trace queries group by root attributes")
    name = attr.name

    def key(t: TraceDelta) -> str | None:
        return None if t.root is None else attrs_of(t.root).get(name)

    return key


def _top_trace(t: TraceDelta) -> TopTrace:
    return TopTrace(
        trace_id=t.trace_id,
        root_name=None if t.root is None else t.root[_I["name"]],
        cost=from_pico(t.total_pico),
        spans=t.spans,
        unpriced=t.unpriced,
        started=ns_to_datetime(t.started_ns),
    )


class MemoryStore:
    """Spans in a dict, keyed by span id (so re-writes are no-ops)."""

    backend = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._row_map: dict[str, tuple[Any, ...]] = {}
        self._spans: dict[str, SpanRecord] = {}
        # Spans written but not yet encoded into rows. Encoding (JSON of the
        # attributes and usage, ~10 µs a span) waits for the first query: the
        # writer thread shares the GIL with the app, so encoding on write would
        # slow every recorded call of a process that may never query.
        self._unencoded: list[SpanRecord] = []

    def write(self, batch: Sequence[SpanRecord]) -> int:
        """Store the spans not already present; all-or-nothing per batch."""
        new = 0
        with self._lock:
            spans = self._spans
            for span in batch:
                if span.span_id not in spans:
                    # Keep the decoded form identical to what SQL stores return.
                    if type(span.tags) is not tuple:
                        span = replace(span, tags=tuple(span.tags))
                    spans[span.span_id] = span
                    self._unencoded.append(span)
                    new += 1
        return new

    @property
    def _rows(self) -> dict[str, tuple[Any, ...]]:
        """Every stored span as the encoded row the SQL stores would hold.

        Callers hold ``_lock``.
        """
        pending = self._unencoded
        if pending:
            self._unencoded = []
            rows = self._row_map
            for span in pending:
                try:
                    rows[span.span_id] = encode_span(span)
                except Exception:
                    # The writer validated nothing here: a span that cannot be
                    # encoded is dropped, as a SQL store would have refused it.
                    self._spans.pop(span.span_id, None)
                    logger.exception("faremeter memory ledger: span %s not stored", span.span_id)
        return self._row_map

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
        # Each check binds its own column and value: a closure over a shared
        # loop variable would compare every check against the last column.
        if flt.trace_id is not None:
            checks.append(lambda r, i=_I["trace_id"], v=flt.trace_id: r[i] == v)
        if flt.since_ns is not None:
            checks.append(lambda r, i=_I["start_ns"], lo=flt.since_ns: r[i] >= lo)
        if flt.until_ns is not None:
            checks.append(lambda r, i=_I["start_ns"], hi=flt.until_ns: r[i] < hi)
        if flt.kind is not None:
            checks.append(lambda r, i=_I["kind"], v=flt.kind: r[i] == v)
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
            spans += 1
            pico = r[_I["cost_pico"]]
            if pico is None:
                unpriced += 1
            else:
                parts[kind_family(r[_I["kind"]])] += pico
        return split_of_picos(parts, spans, unpriced)

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
        self, attr: AttrRef | None, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Nearest-rank quantiles of per-trace totals per root attribute (``None``: one group)."""
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

    def trace_ids(self, prefix: str, limit: int) -> list[str]:
        """Stored trace ids starting with ``prefix``."""
        with self._lock:
            ids = {r[_I["trace_id"]] for r in self._rows.values()}
        return sorted(t for t in ids if t.startswith(prefix))[:limit]

    def top_traces(self, n: int, flt: QueryFilter) -> list[TopTrace]:
        """Most expensive traces, ties broken by trace id."""
        traces = sorted(self._traces(flt), key=lambda t: (-t.total_pico, t.trace_id))[:n]
        return [_top_trace(t) for t in traces]

    # -- analytics queries ---------------------------------------------------

    def group_by(self, attrs: Sequence[AttrRef], flt: QueryFilter) -> list[GroupRow]:
        """Group by several keys; same rules as ``cost_by`` for each key."""
        rows = self._select(flt)
        if any(a.kind == "field" and a.name == "tool" for a in attrs):
            rows = [r for r in rows if r[_I["kind"]] == "tool"]
        gets = [span_key(a) for a in attrs]
        return [
            GroupRow(
                keys=key,
                cost=c.cost,
                spans=c.spans,
                traces=c.traces,
                unpriced=c.unpriced,
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
            )
            for key, c in _group_multi(rows, lambda r: tuple(g(r) for g in gets))
        ]

    def part_percentiles(
        self, attr: AttrRef, quantiles: Sequence[float], flt: QueryFilter
    ) -> list[PercentileRow]:
        """Per (value, trace) sums, then nearest-rank quantiles per value."""
        get = span_key(attr)
        i_pico, i_trace = _I["cost_pico"], _I["trace_id"]
        parts: dict[tuple[str | None, str], list[int]] = {}
        for r in self._select(flt):
            a = parts.setdefault((get(r), r[i_trace]), [0, 0])
            pico = r[i_pico]
            if pico is None:
                a[1] += 1
            else:
                a[0] += pico
        unpriced: dict[str | None, int] = {}
        for (key, _), (_, missing) in parts.items():
            if missing:
                unpriced[key] = unpriced.get(key, 0) + 1
        return part_rows(((key, a[0]) for (key, _), a in parts.items()), unpriced, quantiles)

    def usage_groups(self, attr: AttrRef | None, flt: QueryFilter) -> list[UsageGroup]:
        """Group by the encoded (attribute, model, usage, status) columns, like the SQL stores."""
        i_model, i_usage, i_status, i_pico = _I["model"], _I["usage"], _I["status"], _I["cost_pico"]
        get = None if attr is None else span_key(attr)
        acc: dict[tuple[Any, Any, Any, Any], list[int]] = {}
        for r in self._select(flt):
            k = None if get is None else get(r)
            a = acc.setdefault((k, r[i_model], r[i_usage], r[i_status]), [0, 0, 0])
            a[0] += 1
            pico = r[i_pico]
            if pico is None:
                a[2] += 1
            else:
                a[1] += pico
        return usage_group_rows((*k, *a) for k, a in acc.items())

    def usage_totals(self, attr: AttrRef | None, flt: QueryFilter) -> list[UsageTotal]:
        """Sum usage per (attribute, model, status, priced, with usage or not)."""
        keys = [AttrRef("field", "model"), AttrRef("field", "status"), PRICED, HAS_USAGE]
        if attr is None:
            grouped = {(None, *k): v for k, v in self._grouped(keys, flt).items()}
        else:
            grouped = self._grouped([attr, *keys], flt)
        return usage_totals_of(grouped)

    def totals(self, attrs: Sequence[AttrRef], flt: QueryFilter) -> list[TotalRow]:
        """Additive totals per combination of ``attrs``; naming ``tool`` keeps tool spans."""
        if AttrRef("field", "tool") in attrs:
            if flt.kind not in (None, "tool"):
                return []
            flt = replace(flt, kind="tool")
        return total_rows_of(self._grouped(attrs, flt))

    def _grouped(self, keys: Sequence[AttrRef], flt: QueryFilter) -> Grouped:
        gets = [_row_key(k) for k in keys]
        i_pico, i_saved, i_usage = _I["cost_pico"], _I["saved"], _I["usage"]
        acc: Grouped = {}
        for r in self._select(flt):
            add_into(acc, tuple(g(r) for g in gets), row_vector(r[i_pico], r[i_saved], r[i_usage]))
        return acc

    def repeated_tool_calls(self, flt: QueryFilter) -> list[RepeatGroup]:
        """Successful tool calls grouped by (tool, arguments hash), then by repeat count."""
        if flt.kind not in (None, "tool"):
            return []
        get_args = span_key(AttrRef("custom", ARGS_HASH))
        i_kind, i_status, i_name, i_pico = _I["kind"], _I["status"], _I["name"], _I["cost_pico"]
        calls: dict[tuple[str, str], list[int]] = {}
        for r in self._select(flt):
            args = get_args(r)
            if r[i_kind] != "tool" or r[i_status] != "ok" or args is None:
                continue
            a = calls.setdefault((r[i_name], args), [0, 0])
            a[0] += 1
            a[1] += r[i_pico] or 0
        by_n: dict[tuple[str, int], list[int]] = {}
        for (tool, _), (n, pico) in calls.items():
            if n >= 2:
                a = by_n.setdefault((tool, n), [0, 0])
                a[0] += 1
                a[1] += pico
        return repeat_groups([(t, n, k, p) for (t, n), (k, p) in by_n.items()])

    def repeated_prompt_prefixes(self, flt: QueryFilter) -> list[PrefixGroup]:
        """Model calls grouped by (model, prompt-prefix hash, prefix tokens), sent twice or more."""
        if flt.kind not in (None, "llm"):
            return []
        get_hash = span_key(AttrRef("custom", PREFIX_HASH))
        get_tokens = span_key(AttrRef("custom", PREFIX_TOKENS))
        i_kind, i_model = _I["kind"], _I["model"]
        calls: dict[tuple[str, str, str], int] = {}
        for r in self._select(flt):
            if r[i_kind] != "llm" or r[i_model] is None:
                continue
            digest, size = get_hash(r), get_tokens(r)
            if digest is not None and size is not None:
                k = (r[i_model], digest, size)
                calls[k] = calls.get(k, 0) + 1
        return prefix_groups([(*k, n) for k, n in calls.items() if n >= 2])

    def trace_histogram(self, num: int, den: int, flt: QueryFilter) -> dict[int, int]:
        """Traces per bin of ``num / den`` picodollars (truncating division, as in SQL)."""
        out: dict[int, int] = {}
        for t in self._traces(flt):
            scaled = t.total_pico * den
            q = abs(scaled) // num
            b = q if scaled >= 0 else -q
            out[b] = out.get(b, 0) + 1
        return out

    def trace_ids_with(self, flt: QueryFilter, limit: int | None) -> list[str]:
        """Ids of traces with a matching span, ascending."""
        ids = sorted({r[_I["trace_id"]] for r in self._select(flt)})
        return ids if limit is None else ids[:limit]

    def traces(self, trace_ids: Sequence[str]) -> list[TopTrace]:
        """Rollup facts of the given traces, by trace id."""
        ids = set(trace_ids)
        i_trace = _I["trace_id"]
        with self._lock:
            rows = [r for r in self._rows.values() if r[i_trace] in ids]
        return [_top_trace(t) for t in rollup(rows)]

    def spans_of(self, trace_ids: Sequence[str]) -> list[SpanRecord]:
        """Every span of ``trace_ids``, by trace, start and span id."""
        ids = set(trace_ids)
        i_trace, i_start, i_span = _I["trace_id"], _I["start_ns"], _I["span_id"]
        with self._lock:
            rows = [r for r in self._rows.values() if r[i_trace] in ids]
            rows.sort(key=lambda r: (r[i_trace], r[i_start], r[i_span]))
            return [self._spans[r[i_span]] for r in rows]

    def outliers(
        self, attr: AttrRef | None, num: int, den: int, flt: QueryFilter, limit: int
    ) -> list[OutlierTrace]:
        """Traces above ``num/den`` x their group's median, most expensive first."""
        get = _trace_key(attr)
        groups: dict[str | None, list[TraceDelta]] = {}
        for t in self._traces(flt):
            groups.setdefault(get(t), []).append(t)
        found: list[tuple[TraceDelta, str | None, int]] = []
        for key, traces in groups.items():
            traces.sort(key=lambda t: (t.total_pico, t.trace_id))
            median = traces[nearest_rank(0.5, len(traces)) - 1].total_pico
            found.extend((t, key, median) for t in traces if t.total_pico * den > median * num)
        found.sort(key=lambda f: (-f[0].total_pico, f[0].trace_id))
        return [outlier_row(t.trace_id, key, None if t.root is None else t.root[_I["name"]],
                            t.total_pico, median, t.spans, t.unpriced, t.started_ns)
                for t, key, median in found[:limit]]  # fmt: skip

    def part_outliers(
        self,
        attr: AttrRef,
        medians: Sequence[tuple[str | None, int]],
        num: int,
        den: int,
        flt: QueryFilter,
        limit: int,
    ) -> list[OutlierTrace]:
        """Traces whose spend on a value exceeds ``num/den`` x that value's median part."""
        get = span_key(attr)
        i_pico, i_trace = _I["cost_pico"], _I["trace_id"]
        parts: dict[tuple[str, str | None], int] = {}
        for r in self._select(flt):
            k = (r[i_trace], get(r))
            parts[k] = parts.get(k, 0) + (r[i_pico] or 0)
        med = dict(medians)
        picked = pick_part_outliers(
            ((t, k, p) for (t, k), p in parts.items() if k in med), med, num, den, limit
        )
        ids = {t for t, _, _, _ in picked}
        with self._lock:
            rows = [r for r in self._rows.values() if r[i_trace] in ids]
        meta = {t.trace_id: t for t in rollup(rows)}
        out: list[OutlierTrace] = []
        for tid, key, pico, median in picked:
            t = meta[tid]
            name: str | None = None if t.root is None else t.root[_I["name"]]
            out.append(outlier_row(tid, key, name, pico, median, t.spans, t.unpriced, t.started_ns))
        return out

    def trace_paths(self, flt: QueryFilter) -> list[TracePath]:
        """Raw step/tool sequences per trace, with the trace's full total."""
        i_kind, i_name, i_step = _I["kind"], _I["name"], _I["step"]
        i_trace, i_start, i_span = _I["trace_id"], _I["start_ns"], _I["span_id"]
        seqs: dict[str, list[tuple[int, str, str]]] = {}
        for r in self._select(flt):
            element = path_element(r[i_kind], r[i_name], r[i_step])
            if element is not None:
                seqs.setdefault(r[i_trace], []).append((r[i_start], r[i_span], element))
        with self._lock:
            rows = list(self._rows.values())
        totals = {t.trace_id: t for t in rollup(r for r in rows if r[i_trace] in seqs)}
        out: list[TracePath] = []
        for tid, seq in seqs.items():
            seq.sort()
            t = totals[tid]
            out.append(
                TracePath(
                    trace_id=tid,
                    elements=collapse_runs([e for _, _, e in seq]),
                    cost=from_pico(t.total_pico),
                    unpriced=t.unpriced,
                    started=ns_to_datetime(t.started_ns),
                )
            )
        return out


def usage_group_rows(rows: Iterable[Sequence[Any]]) -> list[UsageGroup]:
    """Decode ``(key, model, usage JSON, status, spans, cost_pico sum, unpriced)`` rows."""
    import json

    from faremeter.usage import Usage

    return [
        UsageGroup(
            key=None if key is None else str(key),
            model=model,
            usage=None if usage is None else Usage.from_dict(json.loads(usage)),
            status=str(status),
            spans=int(n),
            cost=from_pico(pico),
            unpriced=int(unpriced or 0),
        )
        for key, model, usage, status, n, pico, unpriced in rows
    ]


USAGE_REST = ',"cache_read_tokens"'
"""Where the counts other than input/output start in the codec's usage JSON."""


def part_rows(
    parts: Iterable[tuple[Any, Any]],
    unpriced: Mapping[str | None, int],
    quantiles: Sequence[float],
) -> list[PercentileRow]:
    """Nearest-rank quantiles per key of ``(key, total_pico)`` per-trace parts.

    ``unpriced`` counts, per key, the traces whose part has an unpriced span.

    Shared by every store: the SQL stores sum the parts in the database (one
    scan along the trace index) and rank them here, which is several times
    faster than window functions over the hundreds of thousands of parts a
    large ledger has.
    """
    groups: dict[str | None, list[int]] = {}
    for key, pico in parts:
        k = None if key is None else str(key)
        groups.setdefault(k, []).append(int(pico or 0))
    out: list[PercentileRow] = []
    for key, values in groups.items():
        values.sort()
        n = len(values)
        out.append(
            PercentileRow(
                key=key,
                traces=n,
                total=from_pico(sum(values)),
                max=from_pico(values[-1]),
                quantiles={q: from_pico(values[nearest_rank(q, n) - 1]) for q in quantiles},
                unpriced_traces=unpriced.get(key, 0),
            )
        )
    return out


def pick_part_outliers(
    parts: Iterable[tuple[Any, Any, Any]],
    medians: Mapping[str | None, int],
    num: int,
    den: int,
    limit: int,
) -> list[tuple[str, str | None, int, int]]:
    """``(trace, key, part, median)`` of parts above ``num/den`` x their key's median.

    Most expensive first (ties by trace id, then key), as the SQL stores order.
    """
    found: list[tuple[str, str | None, int, int]] = []
    for tid, key, pico in parts:
        median = medians[key]
        if int(pico) * den > median * num:
            found.append((str(tid), key, int(pico), median))
    found.sort(key=lambda f: (-f[2], f[0], f[1] is None, f[1] or ""))
    return found[:limit]


def outlier_row(
    trace_id: str,
    key: str | None,
    root_name: str | None,
    total_pico: int,
    median_pico: int,
    spans: int,
    unpriced: int,
    started_ns: int,
) -> OutlierTrace:
    """Build an :class:`OutlierTrace` the same way for every store."""
    cost, median = from_pico(total_pico), from_pico(median_pico)
    return OutlierTrace(
        trace_id=trace_id,
        key=key,
        root_name=root_name,
        cost=cost,
        median=median,
        ratio=None if median_pico == 0 else cost / median,
        spans=spans,
        unpriced=unpriced,
        started=ns_to_datetime(started_ns),
    )


def _group_multi(
    rows: Iterable[Sequence[Any]], get: Callable[[Sequence[Any]], tuple[str | None, ...]]
) -> list[tuple[tuple[str | None, ...], CostRow]]:
    acc: dict[tuple[str | None, ...], list[Sequence[Any]]] = {}
    for r in rows:
        acc.setdefault(get(r), []).append(r)
    out: list[tuple[tuple[str | None, ...], CostRow]] = []
    for key, members in acc.items():
        (row,) = _group(members, lambda _r: None)
        out.append((key, row))
    return out


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
