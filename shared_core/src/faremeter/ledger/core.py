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
from datetime import datetime
from typing import Literal

from faremeter.ledger import shutdown
from faremeter.ledger.filters import make_filter, resolve
from faremeter.ledger.results import (
    CostRow,
    CostSplit,
    LedgerHealth,
    PercentileRow,
    TimeBucket,
    TopTrace,
)
from faremeter.ledger.store import LedgerStore
from faremeter.ledger.url import store_from_url
from faremeter.ledger.writer import FlushMarker, Writer
from faremeter.spans import SpanKind, SpanRecord
from faremeter.tree import TraceTree

__all__ = ["Ledger"]

logger = logging.getLogger("faremeter.ledger")

_WIDTH_NS = {"hour": 3_600 * 10**9, "day": 86_400 * 10**9}
QUERY_FLUSH_TIMEOUT = 5.0
"""Queries first wait (at most this long) for spans already recorded to be stored."""


def _none_last(key: str | None) -> tuple[bool, str]:
    return (key is None, key or "")


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
        interval: Literal["hour", "day"],
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
        by: str | None = None,
    ) -> list[TimeBucket]:
        """Spend per UTC hour or day (and per ``by`` value), oldest first."""
        if interval not in _WIDTH_NS:
            raise ValueError(f"interval must be 'hour' or 'day', got {interval!r}")
        attr = None if by is None else resolve(by)
        flt = make_filter(since=since, until=until, where=where)
        self._sync()
        rows = self.store.time_series(_WIDTH_NS[interval], attr, flt)
        return sorted(rows, key=lambda b: (b.start, *_none_last(b.key)))

    def percentiles(
        self,
        *,
        by: str = "workflow",
        quantiles: Sequence[float] = (0.5, 0.9, 0.99),
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, object] | None = None,
    ) -> list[PercentileRow]:
        """Distribution of per-trace total cost per group.

        A trace's group is its root span's ``by`` attribute (``where`` also
        applies to root attributes, ``since``/``until`` to the trace's first
        start). Quantiles use the nearest-rank rule, so each is a real trace's
        total. Rows are sorted by key.
        """
        qs = tuple(float(q) for q in quantiles)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantiles must be within [0, 1], got {q}")
        attr = resolve(by)
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

    def trace_tree(self, trace_id: str) -> TraceTree:
        """All stored spans of one trace as a tree with direct/child/total cost."""
        return TraceTree.from_spans(trace_id, self.spans(trace_id))
