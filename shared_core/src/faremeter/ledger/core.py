"""The ledger: an append-only record of spans that never blocks the agent on I/O.

``record()`` is the hot path every adapter calls once per span: it strips
content unless asked to keep it, appends to an in-memory queue and returns
(about a microsecond). A daemon thread (:mod:`faremeter.ledger.writer`)
batches the queue into the store. Nothing is lost silently: a full queue
blocks (default) or drops *and counts*; storage faults are retried and shown
by :meth:`Ledger.health`; :meth:`Ledger.flush` says whether everything before
it is stored; open ledgers flush at exit and on SIGTERM
(:mod:`faremeter.ledger.shutdown`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from faremeter.ledger import shutdown
from faremeter.ledger.codec import to_pico
from faremeter.ledger.filters import make_filter, resolve
from faremeter.ledger.memory import collapse_runs
from faremeter.ledger.results import (
    CostRow,
    CostSplit,
    GroupRow,
    LedgerHealth,
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
from faremeter.ledger.store import LedgerStore
from faremeter.ledger.url import store_from_url
from faremeter.ledger.writer import FlushMarker, Writer
from faremeter.spans import SpanKind, SpanRecord
from faremeter.tree import TraceTree

__all__ = ["Interval", "Ledger", "collapse_runs", "interval_ns"]

logger = logging.getLogger("faremeter.ledger")

_WIDTH_NS = {
    "minute": 60 * 10**9,
    "hour": 3_600 * 10**9,
    "day": 86_400 * 10**9,
    "week": 7 * 86_400 * 10**9,
}
Interval = Literal["minute", "hour", "day", "week"] | timedelta
"""A time-series bucket width: a name or any positive whole number of seconds."""
_MAX_OUTLIER_DEN = 100
"""Largest denominator of the outlier factor (keeps SQL integer products in range)."""
QUERY_FLUSH_TIMEOUT = 5.0
"""Queries first wait (at most this long) for spans already recorded to be stored."""


def _none_last(key: str | None) -> tuple[bool, str]:
    return (key is None, key or "")


def _quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in quantiles)
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantiles must be within [0, 1], got {q}")
    return qs


def _factor(factor: Decimal | int | str) -> tuple[int, int]:
    """The outlier factor as a small integer fraction (exact comparisons in SQL)."""
    ratio = Fraction(Decimal(str(factor))).limit_denominator(_MAX_OUTLIER_DEN)
    if ratio <= 0:
        raise ValueError(f"factor must be > 0, got {factor!r}")
    return ratio.numerator, ratio.denominator


def interval_ns(interval: Interval) -> int:
    """Bucket width in nanoseconds of a named interval or a ``timedelta``.

    Raises:
        ValueError: For unknown names and widths that are not whole positive seconds.
    """
    if isinstance(interval, timedelta):
        if interval.total_seconds() < 1 or interval.microseconds:
            raise ValueError(f"interval must be a whole number of seconds >= 1, got {interval}")
        return (interval.days * 86_400 + interval.seconds) * 10**9
    width = _WIDTH_NS.get(interval)
    if width is None:
        raise ValueError(
            f"interval must be one of {sorted(_WIDTH_NS)} or a timedelta, got {interval!r}"
        )
    return width


_WAKE_AT = 512
"""Queued spans that wake the writer early instead of at its next poll."""


class Ledger:
    """Spans recorded by this process, written to a store in the background.

    Args:
        store: Where spans go (see :meth:`from_url`).
        queue_size: Spans that may wait in memory for the writer.
        overflow: ``block`` (default: wait for room, lose nothing) or ``drop``
            (count in ``health().dropped`` and log once per burst).
        store_content: Keep ``SpanRecord.content`` (prompts/responses); off by
            default so nothing sensitive is stored unless asked.
        block_timeout: With ``block``, the longest a caller waits before the
            span is dropped and counted; ``None`` waits as long as it takes.
        max_batch: Spans per write transaction.
    """

    def __init__(
        self,
        store: LedgerStore,
        *,
        queue_size: int = 100_000,
        overflow: Literal["block", "drop"] = "block",
        store_content: bool = False,
        block_timeout: float | None = None,
        max_batch: int = 2_000,
    ) -> None:
        if overflow not in ("block", "drop"):
            raise ValueError(f"overflow must be 'block' or 'drop', got {overflow!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.store = store
        self.queue_size = queue_size
        self.store_content = store_content
        self._overflow_policy: Literal["block", "drop"] = overflow
        self._block_timeout = block_timeout
        self._max_batch = max_batch
        self._closed = False
        self._close_lock = threading.Lock()
        self._internal_faults = 0
        self._start_writer()
        shutdown.register(self)

    def _start_writer(self) -> None:
        writer = Writer(
            self.store,
            queue_size=self.queue_size,
            overflow=self._overflow_policy,
            block_timeout=self._block_timeout,
            max_batch=self._max_batch,
        )
        self._writer = writer
        self._queue = writer.queue
        self._wake = writer.wake
        # ``_limit`` drops to 0 on close so the hot path needs one comparison.
        self._limit = 0 if self._closed else self.queue_size
        writer.start()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        queue_size: int = 100_000,
        overflow: Literal["block", "drop"] = "block",
        store_content: bool = False,
    ) -> Ledger:
        """A ledger for ``memory``, ``sqlite:///path`` or ``postgresql://...``.

        Connections open lazily in the writer, so an unreachable database is
        reported by :meth:`health` and retried rather than raised here.

        Raises:
            ConfigError: For a URL that is not one of the accepted forms.
        """
        return cls(
            store_from_url(url),
            queue_size=queue_size,
            overflow=overflow,
            store_content=store_content,
        )

    # -- recording ----------------------------------------------------------

    def record(self, span: SpanRecord) -> None:
        """Queue ``span`` for storage and return at once. Never raises."""
        try:
            if span.content is not None and not self.store_content:
                span = replace(span, content=None)
            if len(self._queue) >= self._limit:
                self._writer.overflow(span, self._closed)
                return
            self._queue.append(span)
            # The writer polls every idle_interval; waking it per span would
            # cost the app thread a context switch on every call. Wake it only
            # when a batch is worth writing now (flush() nudges it as well).
            if len(self._queue) >= _WAKE_AT and not self._wake.is_set():
                self._wake.set()
        except Exception:
            self._internal_faults += 1
            if self._internal_faults == 1:
                logger.exception("faremeter ledger: record() failed; span not recorded")

    def flush(self, timeout: float | None = None, *, _nudge: bool = True) -> bool:
        """Wait until every span recorded before this call is stored.

        Returns:
            True when they are all durably written; False on timeout (for
            example while the store is down — the spans stay queued).
        """
        writer = self._writer
        if not writer.alive:
            return writer.queued() == 0
        marker = FlushMarker()
        writer.queue.append(marker)
        if _nudge:
            writer.wake.set()
            writer.retry_now.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not marker.done.wait(
            0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
        ):
            if not writer.alive:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return marker.ok

    def close(self, timeout: float | None = 10.0) -> None:
        """Store what is queued (waiting at most ``timeout`` s) and release the store.

        Spans that still cannot be written by then are counted in
        ``health().dropped`` and logged; later ``record()`` calls are dropped
        and counted. Idempotent.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._limit = 0
        self._writer.stop(timeout)
        try:
            self.store.close()
        except Exception:
            logger.exception("faremeter ledger: closing the store failed")

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def health(self) -> LedgerHealth:
        """Counters and the current fault, without touching the store."""
        w = self._writer
        alive = w.alive or self._closed
        return LedgerHealth(
            backend=self.store.backend,
            ok=alive and w.fault_since is None and (w.alive or w.queued() == 0),
            queued=w.queued(),
            written=w.written,
            dropped=w.dropped + self._internal_faults,
            write_failures=w.write_failures,
            last_error=w.last_error,
            last_error_at=w.last_error_at,
            rejected=w.rejected,
            blocked=w.blocked,
        )

    def _after_fork(self) -> None:
        """In a forked child: new queue and writer; the parent's connections stay the parent's."""
        abandon = getattr(self.store, "after_fork", None)
        if callable(abandon):
            abandon()
        if not self._closed:
            self._start_writer()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ------------------------------------------------------------

    def _sync(self) -> None:
        if not self._closed:
            self.flush(QUERY_FLUSH_TIMEOUT)

    def spans(
        self,
        trace_id: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
        kind: SpanKind | str | None = None,
        limit: int | None = None,
    ) -> list[SpanRecord]:
        """Stored spans, oldest first (ties by span id).

        ``where`` maps attribute names (or ``model``/``kind``/``status``/
        ``provider``/``tool``) to values; ``None`` matches "not set".
        """
        flt = make_filter(trace_id=trace_id, since=since, until=until, where=where, kind=kind)
        self._sync()
        return self.store.spans(flt, limit)

    def cost_by(
        self,
        attribute: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[CostRow]:
        """Spend per value of ``attribute``, most expensive first.

        ``attribute`` is any attribute (promoted or custom) or ``model``,
        ``kind``, ``status``, ``provider`` or ``tool`` (tool spans by name).
        Each span counts once with its own direct cost, so parents are never
        double-counted; unpriced spans are counted in ``unpriced``, not as $0.
        """
        attr = resolve(attribute)
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        rows = self.store.cost_by(attr, flt)
        return sorted(rows, key=lambda r: (-r.cost, *_none_last(r.key)))

    def step_breakdown(
        self,
        *,
        workflow: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[CostRow]:
        """Spend per ``step`` (optionally within one workflow)."""
        where = None if workflow is None else {"workflow": workflow}
        return self.cost_by("step", since=since, until=until, where=where)

    def cost_split(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> CostSplit:
        """LLM (llm + embedding spans) vs tool vs other spend, with totals."""
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        return self.store.cost_split(flt)

    def time_series(
        self,
        interval: Interval,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
        by: str | None = None,
    ) -> list[TimeBucket]:
        """Spend per UTC bucket (and per ``by`` value), oldest first.

        ``interval`` is ``minute``, ``hour``, ``day``, ``week`` or a
        ``timedelta`` of whole seconds (``timedelta(minutes=5)``). Buckets are
        aligned on the Unix epoch, so hours and days are UTC-aligned and weeks
        start on Thursday (the epoch's weekday); ask for ``day`` and regroup
        for Monday weeks.
        """
        width = interval_ns(interval)
        attr = None if by is None else resolve(by)
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        rows = self.store.time_series(width, attr, flt)
        return sorted(rows, key=lambda b: (b.start, *_none_last(b.key)))

    def group_by(
        self,
        *attributes: str,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[GroupRow]:
        """Spend per combination of several attributes (``group_by("step", "model")``).

        Same counting rules as :meth:`cost_by`; rows most expensive first.
        Naming ``tool`` keeps only tool spans, as in ``cost_by("tool")``.
        """
        if not attributes:
            raise ValueError("group_by needs at least one attribute")
        attrs = [resolve(a) for a in attributes]
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        rows = self.store.group_by(attrs, flt)
        return sorted(rows, key=lambda r: (-r.cost, *(x for k in r.keys for x in _none_last(k))))

    def part_percentiles(
        self,
        *,
        by: str = "step",
        quantiles: Sequence[float] = (0.5, 0.9, 0.99),
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[PercentileRow]:
        """Distribution of what each trace spent on each value of ``by``.

        Where :meth:`percentiles` looks at whole traces grouped by their root,
        this sums, per trace, the spans carrying each value of a span-level
        attribute ("the summarize step costs $0.016 per run at p50, $0.04 at
        p99"). ``where`` and the time bounds apply to spans.
        """
        qs = _quantiles(quantiles)
        attr = resolve(by)
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        rows = self.store.part_percentiles(attr, qs, flt)
        return sorted(rows, key=lambda r: _none_last(r.key))

    def outliers(
        self,
        *,
        by: str | None = "workflow",
        factor: Decimal | int | str = 2,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[OutlierTrace]:
        """Traces that cost more than ``factor`` x the median trace of their group.

        Groups are the root span's ``by`` attribute, as in :meth:`percentiles`
        (whose p50 is the median used here); ``by=None`` judges every trace
        against the median of all of them. Most expensive first.

        Raises:
            ValueError: For a factor that is not positive or a negative limit.
        """
        num, den = _factor(factor)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        attr = None if by is None else resolve(by)
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        return self.store.outliers(attr, num, den, flt, limit)

    def part_outliers(
        self,
        *,
        by: str = "step",
        factor: Decimal | int | str = 2,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
        medians: Mapping[str | None, Decimal] | None = None,
    ) -> list[OutlierTrace]:
        """Traces that spent more than ``factor`` x the median on one value of ``by``.

        The part-level twin of :meth:`outliers`: ``cost`` is what the trace
        spent on spans with that value (``key``), ``median`` the value's
        median part (the p50 of :meth:`part_percentiles`; pass ``medians`` when
        you already have them, to save a scan). Most expensive first.

        Raises:
            ValueError: For a factor that is not positive or a negative limit.
        """
        num, den = _factor(factor)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if medians is None:
            rows = self.part_percentiles(by=by, quantiles=(0.5,), since=since, until=until,
                                         where=where)  # fmt: skip
            medians = {r.key: r.quantiles[0.5] for r in rows}
        attr = resolve(by)
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        picos = [
            (k, to_pico(m)) for k, m in sorted(medians.items(), key=lambda kv: _none_last(kv[0]))
        ]
        return self.store.part_outliers(attr, picos, num, den, flt, limit)

    def trace_paths(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[TracePath]:
        """The sequence of steps and tools each trace went through.

        A span contributes its name if it is a tool span, else its ``step``
        attribute (spans with neither are skipped); consecutive repeats of one
        element count once. ``where`` and the time bounds select spans; each
        path carries its trace's full total. Ordered by trace start, then id.
        """
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        rows = self.store.trace_paths(flt)
        rows.sort(key=lambda p: (p.started, p.trace_id))
        return rows

    def percentiles(
        self,
        *,
        by: str | None = "workflow",
        quantiles: Sequence[float] = (0.5, 0.9, 0.99),
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[PercentileRow]:
        """Distribution of per-trace total cost per group.

        A trace's group is its root span's ``by`` attribute (``where`` also
        applies to root attributes, ``since``/``until`` to the trace's first
        start); ``by=None`` puts every trace in one group (key ``None``),
        answered by walking an index of trace totals instead of sorting them.
        Quantiles use the nearest-rank rule, so each is a real trace's
        total. Rows are sorted by key.
        """
        qs = _quantiles(quantiles)
        attr = None if by is None else resolve(by)
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        rows = self.store.percentiles(attr, qs, flt)
        return sorted(rows, key=lambda r: _none_last(r.key))

    def top_traces(
        self,
        n: int = 10,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[TopTrace]:
        """The ``n`` most expensive traces (``where`` on root attributes)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        return self.store.top_traces(n, flt)

    def usage_groups(
        self,
        *,
        by: str | None = None,
        kind: SpanKind | str | None = SpanKind.LLM,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[UsageGroup]:
        """Spans grouped by (model, exact usage, status): what-if repricing reads these.

        Pricing is a function of model and usage, so repricing a group once
        prices all its spans, and no span needs decoding. ``by`` adds an
        attribute to the grouping (``by="step"``: every step's calls in one
        scan). Ordered by key, model, status, then usage.
        """
        attr = None if by is None else resolve(by)
        flt = make_filter(since=since, until=until, where=where, kind=kind)
        self._sync()
        rows = self.store.usage_groups(attr, flt)
        return sorted(
            rows,
            key=lambda g: (
                *_none_last(g.key),
                *_none_last(g.model),
                g.status,
                "" if g.usage is None else repr(g.usage),
            ),
        )

    def usage_totals(
        self,
        *,
        by: str | None = None,
        kind: SpanKind | str | None = SpanKind.LLM,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[UsageTotal]:
        """Summed usage per (``by`` value, model, status, priced or not): a few rows per model.

        Repricing a sum is exact whenever pricing is linear (a model without
        long-context tiers); :meth:`usage_groups` keeps every distinct usage
        for the other case. Spans without usage form their own rows
        (``tokens`` is ``None``). Answered from the hourly rollup when ``by``
        and ``where`` use only its keys (see :meth:`totals`). Ordered by key,
        model, status.
        """
        attr = None if by is None else resolve(by)
        flt = make_filter(since=since, until=until, where=where, kind=kind)
        self._sync()
        rows = self.store.usage_totals(attr, flt)
        return sorted(
            rows,
            key=lambda g: (
                *_none_last(g.key),
                *_none_last(g.model),
                g.status,
                g.priced,
                () if g.tokens is None else tuple(sorted(g.tokens.items())),
            ),
        )

    def totals(
        self,
        *attributes: str,
        kind: SpanKind | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[TotalRow]:
        """Spend, spans, ``saved`` and tokens per combination of attributes (no trace count).

        :meth:`group_by` without its distinct-trace count, which is what
        makes it cheap: when every attribute and filter is one the hourly
        rollup keys on (``model``, ``kind``, ``status``, ``provider``,
        ``tool``, ``step`` and the ``route.*`` attributes), the whole hours
        of the window are read from the rollup
        and only the partial hours at its ends from the spans. Other
        attributes scan the spans of the window. Naming ``tool`` keeps only
        tool spans. Rows most expensive first; no attributes gives one row
        for everything.
        """
        attrs = [resolve(a) for a in attributes]
        flt = make_filter(since=since, until=until, where=where, kind=kind)
        self._sync()
        rows = self.store.totals(attrs, flt)
        return sorted(rows, key=lambda r: (-r.cost, *(x for k in r.keys for x in _none_last(k))))

    def repeated_tool_calls(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[RepeatGroup]:
        """Successful tool calls that repeated an argument set, per tool and repeat count.

        Calls are matched on the ``tool_args_hash`` attribute. Over the whole
        ledger (no filter, a window holding every span) this reads the
        tool-arguments rollup; otherwise it groups the window's tool spans.
        Ordered by tool, then repeat count.
        """
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        return self.store.repeated_tool_calls(flt)

    def repeated_prompt_prefixes(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[PrefixGroup]:
        """Prompt prefixes that two or more model calls sent, per model.

        Calls are matched on the ``prompt_prefix_hash`` and
        ``prompt_prefix_tokens`` attributes. Over the whole ledger (no filter,
        a window holding every span) this reads the prompt-prefix rollup;
        otherwise it groups the window's model calls. Ordered by model, hash,
        then tokens.
        """
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        return self.store.repeated_prompt_prefixes(flt)

    def trace_histogram(
        self,
        width: Decimal,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> dict[int, int]:
        """How many traces have a total in each bin ``[i * width, (i + 1) * width)``.

        Keys are bin numbers (``total // width``, truncated), values trace
        counts; empty bins are left out. Trace-level filters, as in
        :meth:`percentiles`. Counted in the database: no trace leaves it.

        Raises:
            ValueError: For a width that is not positive.
        """
        exact = Fraction(Decimal(str(width))) * 10**12
        if exact <= 0:
            raise ValueError(f"width must be > 0, got {width!r}")
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        return self.store.trace_histogram(exact.numerator, exact.denominator, flt)

    def trace_ids_with(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
        kind: SpanKind | str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Ids of the traces with at least one matching span, ascending.

        Without decoding a span: ``trace_ids_with(where={"status": "denied"})``
        lists the traces a budget stopped (spans that did not end ``ok`` are
        found through an index of them).

        Raises:
            ValueError: For a negative limit.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        flt = make_filter(since=since, until=until, where=where, kind=kind)
        self._sync()
        return self.store.trace_ids_with(flt, limit)

    def traces(self, trace_ids: Sequence[str]) -> list[TopTrace]:
        """Total, span counts, root name and start of the given traces (``top_traces`` rows).

        Read from the per-trace rollup, by trace id; ids with no stored span
        are left out.
        """
        self._sync()
        return self.store.traces(list(trace_ids))

    def spans_of_traces(self, trace_ids: Sequence[str]) -> dict[str, list[SpanRecord]]:
        """Every stored span of each trace (oldest first, ties by span id), in one query per 500.

        Traces with no stored span are left out.
        """
        self._sync()
        out: dict[str, list[SpanRecord]] = {}
        for span in self.store.spans_of(list(trace_ids)):
            out.setdefault(span.trace_id, []).append(span)
        return out

    def resolve_trace_id(self, prefix: str) -> str:
        """The one stored trace id that starts with ``prefix`` (a full id, or a unique prefix).

        Raises:
            LookupError: No trace, or several, start with ``prefix`` (the
                message lists up to five candidates).
            ValueError: ``prefix`` is not hexadecimal.
        """
        wanted = prefix.strip().lower()
        if not wanted or any(c not in "0123456789abcdef" for c in wanted):
            raise ValueError(f"trace id {prefix!r}: expected hexadecimal digits (as printed)")
        self._sync()
        found = self.store.trace_ids(wanted, 6)
        if len(found) == 1:
            return found[0]
        if not found:
            raise LookupError(f"no trace id starts with {prefix!r} in this ledger")
        more = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise LookupError(f"trace id prefix {prefix!r} is ambiguous: {more}; give more digits")

    def trace_tree(self, trace_id: str) -> TraceTree:
        """All stored spans of one trace as a tree with direct/child/total cost."""
        return TraceTree.from_spans(trace_id, self.spans(trace_id))
