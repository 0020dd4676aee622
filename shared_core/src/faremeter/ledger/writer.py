"""The background writer: drains the ledger's queue into its store.

The hot path (:meth:`faremeter.ledger.core.Ledger.record`) only appends to a
``collections.deque``; this thread takes up to ``max_batch`` spans at a time
and hands them to the store in one transaction. Failures are split into two
kinds by the store:

- *transient* (locked, down, disconnected): the batch is kept, the attempt is
  counted, the first failure of an episode is logged (not every retry), and
  the write is retried with capped, jittered exponential backoff. Memory stays
  bounded: one batch plus the bounded queue.
- *anything else* (a span the store cannot encode): the batch is retried one
  span at a time so only the bad span is rejected — counted and logged by id.

Flushes are markers in the same FIFO queue: when the writer reaches one, every
span enqueued before it has been committed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Literal

from faremeter.background import leave_signals_to_the_main_thread
from faremeter.ledger.store import LedgerStore
from faremeter.spans import SpanRecord

__all__ = ["FlushMarker", "Writer"]

logger = logging.getLogger("faremeter.ledger")


class FlushMarker:
    """A point in the queue; ``done`` is set once everything before it is stored."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class Writer:
    """Queue, counters and the daemon thread that empties the queue.

    Args:
        store: Where batches go.
        queue_size: Bound on queued spans (flush markers do not count).
        overflow: ``block`` (wait for room) or ``drop`` (count and log).
        block_timeout: Longest a ``block`` caller waits before the span is
            dropped (counted, logged); ``None`` waits as long as it takes.
        max_batch: Spans per transaction.
        idle_interval: Longest sleep when idle (bounds flush latency if a
            wake-up is missed, e.g. a flush from a signal handler).
        max_backoff: Cap of the retry delay while the store is failing.
    """

    def __init__(
        self,
        store: LedgerStore,
        *,
        queue_size: int,
        overflow: Literal["block", "drop"],
        block_timeout: float | None = None,
        max_batch: int = 2_000,
        idle_interval: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        self.store = store
        self.queue: deque[SpanRecord | FlushMarker] = deque()
        self.queue_size = queue_size
        self.overflow_policy = overflow
        self.block_timeout = block_timeout
        self.max_batch = max_batch
        self.idle_interval = idle_interval
        self.max_backoff = max_backoff
        self.wake = threading.Event()
        self.space = threading.Event()
        self.retry_now = threading.Event()
        self.count_lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self.blocked = 0
        self.rejected = 0
        self.write_failures = 0
        self.in_flight = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.fault_since: float | None = None
        self._fault_attempts = 0
        self._drop_burst = 0
        self._closed_drops_logged = False
        self._stopping = False
        self._deadline: float | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"faremeter-ledger-{store.backend}", daemon=True
        )

    def start(self) -> None:
        """Start the daemon thread."""
        self.thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread is still draining the queue."""
        return self.thread.is_alive()

    def queued(self) -> int:
        """Spans not yet stored (queue plus the batch being written)."""
        return sum(1 for item in list(self.queue) if type(item) is not FlushMarker) + self.in_flight

    # -- producer side (called from application threads) -------------------

    def overflow(self, span: SpanRecord, closed: bool) -> None:
        """Slow path of ``record()``: the queue is full, or the ledger is closed."""
        if closed:
            with self.count_lock:
                self.dropped += 1
                first = not self._closed_drops_logged
                self._closed_drops_logged = True
            if first:
                logger.warning(
                    "faremeter ledger is closed; span %s (%s) and later records are dropped"
                    " and counted in health().dropped",
                    span.span_id,
                    span.name,
                )
            return
        q = self.queue
        if self.overflow_policy == "block" and threading.current_thread() is not self.thread:
            with self.count_lock:
                self.blocked += 1
            deadline = None if self.block_timeout is None else time.monotonic() + self.block_timeout
            while len(q) >= self.queue_size and not self._stopping:
                self.wake.set()
                self.space.clear()
                if len(q) < self.queue_size:
                    break
                self.space.wait(0.01)
                if deadline is not None and time.monotonic() > deadline:
                    self._drop(span, f"queue full for {self.block_timeout}s (block_timeout)")
                    return
            q.append(span)
            return
        self._drop(span, f"queue full ({self.queue_size} spans, overflow='drop')")

    def _drop(self, span: SpanRecord, why: str) -> None:
        with self.count_lock:
            self.dropped += 1
            self._drop_burst += 1
            first = self._drop_burst == 1
        if first:
            logger.warning(
                "faremeter ledger dropping spans: %s; counted in health().dropped"
                " (first dropped: %s)",
                why,
                span.span_id,
            )
        self.wake.set()

    # -- consumer side (the writer thread) ---------------------------------

    def stop(self, timeout: float | None) -> None:
        """Drain what is queued (up to ``timeout`` seconds), then end the thread."""
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._stopping = True
        self.wake.set()
        self.retry_now.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(None if timeout is None else timeout + 5)

    def _run(self) -> None:
        leave_signals_to_the_main_thread()
        try:
            self._loop()
        except BaseException as exc:
            self._note_error(exc)
            logger.exception("faremeter ledger writer stopped unexpectedly")

    def _loop(self) -> None:
        q = self.queue
        batch: list[SpanRecord] = []
        markers: list[FlushMarker] = []
        while True:
            if not batch and not q:
                self._end_drop_burst()
                if self._stopping:
                    return
                self.wake.wait(self.idle_interval)
                self.wake.clear()
            while len(batch) < self.max_batch and not markers:
                try:
                    item = q.popleft()
                except IndexError:
                    break
                if type(item) is FlushMarker:
                    markers.append(item)
                else:
                    batch.append(item)  # pyright: ignore[reportArgumentType]
            self.in_flight = len(batch)
            self.space.set()
            if batch and not self._write(batch):
                if self._give_up():
                    self._abandon(batch, markers)
                    return
                self._backoff()
                continue
            batch = []
            self.in_flight = 0
            for marker in markers:
                marker.ok = True
                marker.done.set()
            markers = []

    def _write(self, batch: list[SpanRecord]) -> bool:
        """Write the batch; False (batch kept) when the store is temporarily failing."""
        try:
            self.store.write(batch)
        except Exception as exc:
            if self.store.is_transient(exc):
                self._fault(exc, len(batch))
                return False
            return self._isolate(batch)
        self._ok(len(batch))
        return True

    def _isolate(self, batch: list[SpanRecord]) -> bool:
        """Write span by span so only spans the store rejects are lost (and counted)."""
        while batch:
            span = batch[0]
            try:
                self.store.write([span])
            except Exception as exc:
                if self.store.is_transient(exc):
                    self._fault(exc, len(batch))
                    return False
                self.rejected += 1
                self._note_error(exc)
                logger.error(
                    "faremeter ledger rejected span %s (%s): %s: %s",
                    span.span_id,
                    span.name,
                    type(exc).__name__,
                    exc,
                )
            else:
                self._ok(1)
            del batch[0]
        return True

    def _note_error(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_error_at = datetime.now(UTC)

    def _fault(self, exc: BaseException, pending: int) -> None:
        self.write_failures += 1
        self._fault_attempts += 1
        self._note_error(exc)
        if self.fault_since is None:
            self.fault_since = time.monotonic()
            logger.warning(
                "faremeter ledger (%s) cannot write: %s: %s; keeping %d spans and retrying"
                " with backoff (logged once per episode, see health())",
                self.store.backend,
                type(exc).__name__,
                exc,
                pending,
            )

    def _ok(self, n: int) -> None:
        self.written += n
        if self.fault_since is not None:
            logger.warning(
                "faremeter ledger (%s) writing again after %d failed attempts over %.1fs",
                self.store.backend,
                self._fault_attempts,
                time.monotonic() - self.fault_since,
            )
            self.fault_since = None
            self._fault_attempts = 0

    def _backoff(self) -> None:
        delay = min(self.max_backoff, 0.05 * 2 ** min(self._fault_attempts, 20))
        delay *= 0.5 + random.random() / 2
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - time.monotonic()))
        self.retry_now.wait(delay)
        self.retry_now.clear()

    def _give_up(self) -> bool:
        return self._stopping and self._deadline is not None and time.monotonic() >= self._deadline

    def _abandon(self, batch: list[SpanRecord], markers: list[FlushMarker]) -> None:
        """Closing while the store still fails: count and log what is lost, loudly."""
        items = list(self.queue)
        self.queue.clear()
        rest = [item for item in items if type(item) is not FlushMarker]
        markers = markers + [item for item in items if type(item) is FlushMarker]
        lost = len(batch) + len(rest)
        with self.count_lock:
            self.dropped += lost
        self.in_flight = 0
        logger.error(
            "faremeter ledger (%s) closed with %d spans it could not write (last error: %s);"
            " counted in health().dropped",
            self.store.backend,
            lost,
            self.last_error,
        )
        for marker in markers:
            marker.done.set()

    def _end_drop_burst(self) -> None:
        if self._drop_burst:
            with self.count_lock:
                n, self._drop_burst = self._drop_burst, 0
            logger.warning("faremeter ledger queue has room again; %d spans were dropped", n)
