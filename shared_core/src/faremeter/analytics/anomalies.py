"""Anomaly detection: spend spikes, runaway loops and tool-call explosions.

Three detectors, each a small deterministic state machine fed with finished
spans and judged on the spans' own timestamps (never the wall clock, so a
test with a fake clock sees exactly what production would):

* :class:`SpendRateDetector` — spend per bucket (an hour by default) against
  the median of the buckets before it; ``factor`` (3x) above that baseline
  alerts once per bucket. A steady series or slow growth never gets there.
* :class:`LoopDetector` — inside a live trace, the same tool with the same
  canonical arguments (the ``tool_args_hash`` attribute adapters stamp, or
  ``tool_input_size`` as a fallback) ``repeats`` times, or LLM calls whose
  cost keeps accelerating while they produce (almost) no output.
* :class:`ToolRateDetector` — a tool's calls in a short window against its
  usual rate per window; ``factor`` (10x) above alerts once per window.

:class:`AnomalyMonitor` runs them live off the hot path: its span listener
only appends to a deque; :meth:`AnomalyMonitor.process_pending` (called by a
background thread, or directly by tests) evaluates and sends
:class:`~faremeter.alerts.Alert` values to the same sinks budgets use.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from cachetools import LRUCache

from faremeter.alerts import Alert, AlertDispatcher
from faremeter.ledger import TimeBucket
from faremeter.spans import SpanKind, SpanRecord

if TYPE_CHECKING:
    from faremeter.meter import Meter

__all__ = [
    "ARGS_HASH_ATTRIBUTE",
    "INPUT_SIZE_ATTRIBUTE",
    "AnomalyMonitor",
    "LoopDetector",
    "SpendRateDetector",
    "ToolRateDetector",
    "spend_spikes",
    "tool_args_hash",
]

logger = logging.getLogger("faremeter.analytics")

ARGS_HASH_ATTRIBUTE = "tool_args_hash"
"""Span attribute holding a stable hash of a tool call's canonical arguments."""

INPUT_SIZE_ATTRIBUTE = "tool_input_size"
"""Fallback span attribute: the size of a tool call's input (characters or bytes)."""

_HOUR_NS = 3_600 * 10**9
_MINUTE_NS = 60 * 10**9


def tool_args_hash(arguments: object) -> str:
    """The value to stamp as ``tool_args_hash``: a digest of the canonical arguments.

    The same canonical form the tool cache keys on (sorted keys, normalised
    numbers), so equal arguments written differently hash the same and the
    arguments themselves are never stored.

    Raises:
        TypeError: For arguments with no canonical JSON form.
    """
    from faremeter.caching.keys import canonical_json, digest

    return digest(canonical_json(arguments))


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 10**9, tz=UTC).replace(microsecond=(ns % 10**9) // 1000)


class SpendRateDetector:
    """Alerts when a bucket's spend reaches ``factor`` x its own recent baseline.

    The baseline is the median spend of the ``baseline_buckets`` buckets before
    the current one (empty buckets count as $0 once spending has started), so
    one earlier spike does not raise the bar and steady growth moves the
    baseline along with it.

    Args:
        bucket_ns: Bucket width (default one hour).
        factor: Multiple of the baseline that alerts.
        baseline_buckets: Buckets in the baseline.
        min_history: Buckets of history needed before judging.
        min_spend: Ignore buckets spending less than this (noise).
        subject: Names what is measured in alerts (``None``: all spend).
    """

    def __init__(
        self,
        *,
        bucket_ns: int = _HOUR_NS,
        factor: Decimal | int | str = 3,
        baseline_buckets: int = 24,
        min_history: int = 3,
        min_spend: Decimal = Decimal(0),
        subject: str | None = None,
    ) -> None:
        if bucket_ns <= 0 or baseline_buckets < 1 or min_history < 1:
            raise ValueError("bucket_ns, baseline_buckets and min_history must be positive")
        self.bucket_ns = bucket_ns
        self.factor = Decimal(str(factor))
        if self.factor <= 1:
            raise ValueError(f"factor must be > 1, got {factor!r}")
        self.baseline_buckets = baseline_buckets
        self.min_history = min_history
        self.min_spend = min_spend
        self.subject = subject
        self._spend: dict[int, Decimal] = {}
        self._first: int | None = None
        self._alerted: set[int] = set()

    def add(self, at_ns: int, cost: Decimal) -> Alert | None:
        """Count ``cost`` spent at ``at_ns``; return an alert the first time its bucket spikes."""
        bucket = (at_ns // self.bucket_ns) * self.bucket_ns
        if self._first is None or bucket < self._first:
            self._first = bucket
        self._spend[bucket] = self._spend.get(bucket, Decimal(0)) + cost
        self._trim(bucket)
        return self._judge(bucket)

    def baseline(self, bucket: int) -> Decimal | None:
        """Median spend of the buckets before ``bucket`` (``None``: too little history)."""
        first = self._first
        if first is None:
            return None
        starts = range(
            max(first, bucket - self.baseline_buckets * self.bucket_ns), bucket, self.bucket_ns
        )
        if len(starts) < self.min_history:
            return None
        return Decimal(statistics.median([self._spend.get(s, Decimal(0)) for s in starts]))

    def _judge(self, bucket: int) -> Alert | None:
        if bucket in self._alerted:
            return None
        spent = self._spend[bucket]
        base = self.baseline(bucket)
        if base is None or base <= 0 or spent < self.min_spend or spent < base * self.factor:
            return None
        self._alerted.add(bucket)
        what = self.subject or "spend"
        when = _at(bucket)
        return Alert(
            kind="anomaly.spend_rate",
            message=(
                f"{what} of ${spent} since {when:%Y-%m-%d %H:%M} UTC is {spent / base:.1f}x "
                f"its baseline of ${base} per bucket"
            ),
            at=when,
            subject=self.subject,
            window=f"b{bucket}",
            amounts={"spent": spent, "baseline": base, "threshold": base * self.factor},
            dedupe_key=f"anomaly.spend_rate:{self.subject or ''}:{bucket}",
        )

    def _trim(self, current: int) -> None:
        if len(self._spend) <= 4 * self.baseline_buckets:
            return
        horizon = current - (self.baseline_buckets + 1) * self.bucket_ns
        for start in [s for s in self._spend if s < horizon]:
            del self._spend[start]
        self._alerted = {b for b in self._alerted if b >= horizon}


def spend_spikes(
    series: Sequence[TimeBucket], *, factor: Decimal | int | str = 3, baseline_buckets: int = 24,
    min_history: int = 3,
) -> list[Alert]:  # fmt: skip
    """Spikes in a recorded spend series (``spend_series(ledger, "hour")``), oldest first.

    The same rule as the live detector, replayed over the ledger's buckets.
    """
    if len(series) < 2:
        return []
    width = int((series[1].start - series[0].start).total_seconds()) * 10**9
    det = SpendRateDetector(
        bucket_ns=width, factor=factor, baseline_buckets=baseline_buckets, min_history=min_history
    )
    out: list[Alert] = []
    for b in series:
        start = int(b.start.timestamp()) * 10**9
        alert = det.add(start, b.cost)
        if alert is not None:
            out.append(alert)
    return out


class _TraceState:
    __slots__ = ("alerted", "costs", "repeats")

    def __init__(self) -> None:
        self.repeats: dict[tuple[str, str], int] = {}
        self.costs: deque[Decimal] = deque(maxlen=16)
        self.alerted: set[str] = set()


class LoopDetector:
    """Runaway loops inside live traces.

    Args:
        repeats: The same tool with the same arguments this many times alerts.
        accelerating_calls: This many consecutive LLM calls, each costlier
            than the last by a growing step...
        max_output_tokens: ...each with at most this many output tokens, alert.
        max_traces: Live traces tracked at once (least recently seen dropped).
    """

    def __init__(
        self,
        *,
        repeats: int = 5,
        accelerating_calls: int = 4,
        max_output_tokens: int = 50,
        max_traces: int = 10_000,
    ) -> None:
        if repeats < 2 or accelerating_calls < 3:
            raise ValueError("repeats must be >= 2 and accelerating_calls >= 3")
        self.repeats = repeats
        self.accelerating_calls = accelerating_calls
        self.max_output_tokens = max_output_tokens
        self._traces: LRUCache[str, _TraceState] = LRUCache(maxsize=max_traces)

    def add(self, span: SpanRecord) -> Alert | None:
        """Look at one finished span; return an alert the first time its trace loops."""
        if span.parent_span_id is None:
            self._traces.pop(span.trace_id, None)  # the trace is over
            return None
        if span.kind is SpanKind.TOOL:
            return self._tool(span)
        if span.kind is SpanKind.LLM:
            return self._llm(span)
        return None

    def _state(self, trace_id: str) -> _TraceState:
        state = self._traces.get(trace_id)
        if state is None:
            state = self._traces[trace_id] = _TraceState()
        return state

    def _tool(self, span: SpanRecord) -> Alert | None:
        attrs = span.attributes
        args = attrs.get(ARGS_HASH_ATTRIBUTE)
        if args is None:
            size = attrs.get(INPUT_SIZE_ATTRIBUTE)
            if size is None:
                return None
            args = f"size:{size}"
        state = self._state(span.trace_id)
        key = (span.name, str(args))
        n = state.repeats.get(key, 0) + 1
        state.repeats[key] = n
        tag = f"tool:{span.name}:{args}"
        if n < self.repeats or tag in state.alerted:
            return None
        state.alerted.add(tag)
        return Alert(
            kind="anomaly.runaway_loop",
            message=(f"trace {span.trace_id} called {span.name} {n} times with the same arguments"),
            at=_at(span.end_ns),
            subject=span.trace_id,
            window="trace",
            amounts={"calls": Decimal(n)},
            dedupe_key=f"anomaly.runaway_loop:{span.trace_id}:{tag}",
        )

    def _llm(self, span: SpanRecord) -> Alert | None:
        state = self._state(span.trace_id)
        cost = span.cost.total
        out = span.usage.output_tokens if span.usage is not None else 0
        if cost is None or out > self.max_output_tokens:
            state.costs.clear()
            return None
        state.costs.append(cost)
        k = self.accelerating_calls
        if len(state.costs) < k or "llm" in state.alerted:
            return None
        last = list(state.costs)[-k:]
        steps = [b - a for a, b in itertools.pairwise(last)]
        if not all(s > 0 for s in steps) or not all(b > a for a, b in itertools.pairwise(steps)):
            return None
        state.alerted.add("llm")
        return Alert(
            kind="anomaly.runaway_loop",
            message=(
                f"trace {span.trace_id}: {k} LLM calls in a row cost more each time "
                f"(${last[0]} -> ${last[-1]}) with at most {self.max_output_tokens} output tokens"
            ),
            at=_at(span.end_ns),
            subject=span.trace_id,
            window="trace",
            amounts={"first": last[0], "last": last[-1], "spent": sum(last, Decimal(0))},
            dedupe_key=f"anomaly.runaway_loop:{span.trace_id}:llm",
        )


class ToolRateDetector:
    """A tool called ``factor`` x more often than usual within a short window.

    Args:
        window_ns: Window width (default five minutes).
        factor: Multiple of the usual rate that alerts.
        baseline_windows: Windows before the current one that make "usual".
        min_history: Windows of history needed before judging.
        min_calls: Fewer calls than this never alert.
    """

    def __init__(
        self,
        *,
        window_ns: int = 5 * _MINUTE_NS,
        factor: int | Decimal = 10,
        baseline_windows: int = 12,
        min_history: int = 3,
        min_calls: int = 20,
    ) -> None:
        if window_ns <= 0 or baseline_windows < 1 or min_history < 1:
            raise ValueError("window_ns, baseline_windows and min_history must be positive")
        self.window_ns = window_ns
        self.factor = Decimal(factor)
        self.baseline_windows = baseline_windows
        self.min_history = min_history
        self.min_calls = min_calls
        self._counts: dict[str, dict[int, int]] = {}
        self._first: dict[str, int] = {}
        self._alerted: set[tuple[str, int]] = set()

    def add(self, span: SpanRecord) -> Alert | None:
        """Count one tool span; return an alert the first time its window explodes."""
        if span.kind is not SpanKind.TOOL:
            return None
        tool = span.name
        window = (span.end_ns // self.window_ns) * self.window_ns
        counts = self._counts.setdefault(tool, {})
        first = self._first.setdefault(tool, window)
        if window < first:
            self._first[tool] = first = window
        counts[window] = n = counts.get(window, 0) + 1
        if len(counts) > 4 * self.baseline_windows:
            horizon = window - (self.baseline_windows + 1) * self.window_ns
            for w in [w for w in counts if w < horizon]:
                del counts[w]
        if n < self.min_calls or (tool, window) in self._alerted:
            return None
        starts = range(
            max(first, window - self.baseline_windows * self.window_ns), window, self.window_ns
        )
        if len(starts) < self.min_history:
            return None
        usual = Decimal(sum(counts.get(s, 0) for s in starts)) / len(starts)
        if usual <= 0 or n < usual * self.factor:
            return None
        self._alerted.add((tool, window))
        return Alert(
            kind="anomaly.tool_explosion",
            message=(
                f"{tool} was called {n} times since {_at(window):%H:%M} UTC, "
                f"{Decimal(n) / usual:.1f}x its usual {usual:.2f} per window"
            ),
            at=_at(window),
            subject=tool,
            window=f"w{window}",
            amounts={"calls": Decimal(n), "usual": usual},
            dedupe_key=f"anomaly.tool_explosion:{tool}:{window}",
        )


AlertTarget = AlertDispatcher | Callable[[Alert], object]


class AnomalyMonitor:
    """Live anomaly detection for a meter, off the recording hot path.

    ``attach(meter)`` registers :attr:`listener` — a bound ``deque.append``,
    the cheapest thing a listener can be. :meth:`process_pending` drains the
    queue through the detectors and sends alerts; :meth:`start` runs it on a
    daemon thread every ``interval_s``; tests call it directly.

    Args:
        alerts: An :class:`~faremeter.alerts.AlertDispatcher` (sinks, once per
            key) or a plain callable; default: a dispatcher logging warnings.
        spend: The spend-rate detector .
        loops: The runaway-loop detector .
        tools: The tool-rate detector.
        detectors: Which default detectors to build when not given
            (``spend``, ``loops``, ``tools``); leave one out to disable it.
        max_pending: Spans waiting at most; older ones are dropped beyond it.
    """

    def __init__(
        self,
        *,
        alerts: AlertTarget | None = None,
        spend: SpendRateDetector | None = None,
        loops: LoopDetector | None = None,
        tools: ToolRateDetector | None = None,
        detectors: Iterable[str] = ("spend", "loops", "tools"),
        max_pending: int = 100_000,
    ) -> None:
        wanted = set(detectors)
        self.spend = (
            spend if spend is not None else (SpendRateDetector() if "spend" in wanted else None)
        )
        self.loops = loops if loops is not None else (LoopDetector() if "loops" in wanted else None)
        self.tools = (
            tools if tools is not None else (ToolRateDetector() if "tools" in wanted else None)
        )
        self._alerts: AlertTarget = alerts if alerts is not None else AlertDispatcher()
        self._pending: deque[SpanRecord] = deque(maxlen=max_pending)
        self.listener: Callable[[SpanRecord], None] = self._pending.append
        self._process_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._removers: list[Callable[[], None]] = []
        self.alerts_sent = 0
        self.faults = 0

    def attach(self, meter: Meter) -> Callable[[], None]:
        """Listen to every span ``meter`` finishes; returns the remover."""
        remove = meter.add_span_listener(self.listener)
        self._removers.append(remove)
        return remove

    @property
    def pending(self) -> int:
        """Spans waiting to be evaluated."""
        return len(self._pending)

    def process_pending(self) -> list[Alert]:
        """Evaluate every queued span, send and return the alerts raised."""
        out: list[Alert] = []
        with self._process_lock:
            pending = self._pending
            while pending:
                span = pending.popleft()
                try:
                    out.extend(self._evaluate(span))
                except Exception:
                    self.faults += 1
                    if self.faults == 1:
                        logger.exception("faremeter: anomaly detection failed on a span")
        for alert in out:
            self._send(alert)
        return out

    def _evaluate(self, span: SpanRecord) -> list[Alert]:
        found: list[Alert] = []
        if self.spend is not None:
            cost = span.cost.total
            if cost:
                alert = self.spend.add(span.end_ns, cost)
                if alert is not None:
                    found.append(alert)
        for det in (self.loops, self.tools):
            if det is not None:
                alert = det.add(span)
                if alert is not None:
                    found.append(alert)
        return found

    def _send(self, alert: Alert) -> None:
        try:
            target = self._alerts
            if isinstance(target, AlertDispatcher):
                if target.dispatch(alert):
                    self.alerts_sent += 1
            else:
                target(alert)
                self.alerts_sent += 1
        except Exception:
            self.faults += 1
            logger.exception("faremeter: sending anomaly alert %s failed", alert.kind)

    def start(self, interval_s: float = 1.0) -> None:
        """Evaluate queued spans every ``interval_s`` on a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            from faremeter.background import leave_signals_to_the_main_thread

            leave_signals_to_the_main_thread()
            while not self._stop.wait(interval_s):
                self.process_pending()
            self.process_pending()

        self._thread = threading.Thread(target=run, daemon=True, name="faremeter-anomalies")
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread (after a last evaluation) and detach from meters."""
        for remove in self._removers:
            remove()
        self._removers.clear()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout)
        else:
            self.process_pending()
