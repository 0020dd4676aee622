"""Alerts: something about spend that a person should hear about, sent once.

An :class:`Alert` is a frozen value (budget thresholds and denials today,
anomalies too). An :class:`AlertDispatcher` de-duplicates alerts by their
``dedupe_key`` — which names the window, so "once per budget per window" is
the default — and hands them to sinks:

* :class:`LoggingSink` — a ``WARNING`` on the ``faremeter.alerts`` logger;
* :class:`CallbackSink` — your function;
* :class:`WebhookSink` — a JSON POST with httpx from a background thread,
  retried with exponential backoff (tenacity), from a bounded queue: the agent
  never waits on the network, and a dead endpoint drops alerts (counted)
  rather than memory.

A sink that raises is logged and skipped: alerts never break the app.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from cachetools import LRUCache

__all__ = [
    "Alert",
    "AlertDispatcher",
    "AlertSink",
    "CallbackSink",
    "LoggingSink",
    "WebhookSink",
]

logger = logging.getLogger("faremeter.alerts")
_EMPTY: Mapping[str, Decimal] = MappingProxyType({})


@dataclass(frozen=True, kw_only=True, slots=True)
class Alert:
    """One alert.

    Attributes:
        kind: What happened: ``budget.threshold``, ``budget.denied``,
            ``anomaly.spend_rate``, ...
        message: One human sentence.
        at: When (UTC).
        budget: The budget concerned, if any.
        subject: Whose spend (a ``per`` value such as a user id, a trace id, or
            ``None`` for the whole budget).
        window: The window id (``d2026-12-01``, ``m2026-12``, ``trace``...).
        amounts: Money involved, in USD: ``limit``, ``spent``, ``reserved``,
            ``attempted``, ``threshold``...
        dedupe_key: Alerts with the same key are sent once; default
            ``kind:budget:subject:window``.
    """

    kind: str
    message: str
    at: dt.datetime
    budget: str | None = None
    subject: str | None = None
    window: str | None = None
    amounts: Mapping[str, Decimal] = field(default_factory=lambda: _EMPTY, hash=False)
    dedupe_key: str | None = None

    @property
    def key(self) -> str:
        """The de-duplication key."""
        if self.dedupe_key is not None:
            return self.dedupe_key
        return f"{self.kind}:{self.budget or ''}:{self.subject or ''}:{self.window or ''}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (amounts as exact decimal strings)."""
        return {
            "kind": self.kind,
            "message": self.message,
            "at": self.at.isoformat(),
            "budget": self.budget,
            "subject": self.subject,
            "window": self.window,
            "amounts": {k: format(v, "f") for k, v in self.amounts.items()},
        }


@runtime_checkable
class AlertSink(Protocol):
    """Anything that can receive alerts. ``send`` must return quickly."""

    def send(self, alert: Alert) -> None:
        """Deliver (or enqueue) one alert."""
        ...


class LoggingSink:
    """Alerts as log records (``WARNING`` on ``faremeter.alerts`` by default)."""

    def __init__(self, *, logger_name: str = "faremeter.alerts", level: int = logging.WARNING):
        self._logger = logging.getLogger(logger_name)
        self._level = level

    def send(self, alert: Alert) -> None:
        """Log the alert's message with its kind."""
        self._logger.log(self._level, "[%s] %s", alert.kind, alert.message)


class CallbackSink:
    """Alerts passed to a function (e.g. to page someone, or collect in tests)."""

    def __init__(self, callback: Callable[[Alert], object]) -> None:
        self._callback = callback

    def send(self, alert: Alert) -> None:
        """Call the function."""
        self._callback(alert)


class WebhookSink:
    """Alerts POSTed as JSON to a URL, from a background thread.

    Args:
        url: Where to POST.
        headers: Extra headers (an auth token, ...).
        timeout_s: Per-request timeout.
        attempts: Tries per alert (exponential backoff between them).
        backoff_s: First backoff; doubles up to ``max_backoff_s``.
        max_backoff_s: Longest wait between tries.
        queue_size: Alerts waiting at most; further alerts are dropped and
            counted in :attr:`dropped` (never blocking the caller).
        sleep: Wait function for the backoff (injectable for tests).
        transport: An ``httpx`` transport (tests, proxies).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        queue_size: int = 1_000,
        sleep: Callable[[float], None] | None = None,
        transport: Any = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.url = url
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._transport = transport
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        """Enqueue the alert; never blocks (a full queue drops it, counted)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            logger.warning("faremeter: webhook queue full; dropped alert %s", alert.kind)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued alert was delivered or given up on.

        Returns:
            True when the queue drained within ``timeout_s``.
        """
        if self._thread is None:
            return True
        done = threading.Event()

        def waiter() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=waiter, daemon=True, name="faremeter-webhook-flush").start()
        return done.wait(timeout_s)

    def close(self, timeout_s: float | None = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self.flush(timeout_s)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        thread.join(timeout_s)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, daemon=True, name="faremeter-webhook")
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        import httpx
        import tenacity

        from faremeter.background import leave_signals_to_the_main_thread

        leave_signals_to_the_main_thread()
        kwargs: dict[str, Any] = {}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._attempts),
            wait=tenacity.wait_exponential(multiplier=self._backoff_s, max=self._max_backoff_s),
            retry=tenacity.retry_if_exception_type((httpx.HTTPError, _ServerError)),
            reraise=True,
            **kwargs,
        )
        with httpx.Client(timeout=self._timeout_s, transport=self._transport) as client:
            while True:
                alert = self._queue.get()
                try:
                    if alert is None:
                        return
                    body = json.dumps(alert.to_dict()).encode()
                    headers = {"content-type": "application/json", **self._headers}
                    try:
                        retrying(self._post, client, body, headers)
                        self.sent += 1
                    except Exception as exc:
                        self.failed += 1
                        logger.warning(
                            "faremeter: webhook %s failed for alert %s: %s",
                            self.url,
                            alert.kind,
                            exc,
                        )
                finally:
                    self._queue.task_done()

    def _post(self, client: Any, body: bytes, headers: dict[str, str]) -> None:
        response = client.post(self.url, content=body, headers=headers)
        if response.status_code >= 500 or response.status_code == 429:
            raise _ServerError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            # A 4xx will not improve with retries: report once.
            raise RuntimeError(f"HTTP {response.status_code}")


class _ServerError(Exception):
    """A retryable HTTP status (5xx, 429)."""


class AlertDispatcher:
    """Sends each alert once per ``Alert.key`` to every sink.

    Args:
        sinks: Where alerts go (default: a :class:`LoggingSink`).
        claim: Optional cross-process "first to claim wins" check (a budget
            store's ``claim``), so a fleet sends an alert once, not once per
            process. Errors in it fall back to the local de-duplication.
        claim_ttl_s: How long a claim holds (should cover the longest window).
        remember: How many keys are remembered locally (LRU).
    """

    def __init__(
        self,
        sinks: Iterable[AlertSink] | None = None,
        *,
        claim: Callable[[str, int], bool] | None = None,
        claim_ttl_s: int = 32 * 86_400,
        remember: int = 50_000,
    ) -> None:
        self.sinks: list[AlertSink] = list(sinks) if sinks is not None else [LoggingSink()]
        self._claim = claim
        self._claim_ttl_s = claim_ttl_s
        self._seen: LRUCache[str, bool] = LRUCache(maxsize=remember)
        self._lock = threading.Lock()
        self.sent = 0
        self.suppressed = 0

    def seen(self, key: str) -> bool:
        """True when an alert with this key was already sent (cheap pre-check)."""
        return key in self._seen

    def dispatch(self, alert: Alert) -> bool:
        """Send ``alert`` unless its key was sent before. Returns True when sent."""
        key = alert.key
        with self._lock:
            if key in self._seen:
                self.suppressed += 1
                return False
            self._seen[key] = True
        if self._claim is not None:
            try:
                if not self._claim(key, self._claim_ttl_s):
                    self.suppressed += 1
                    return False
            except Exception as exc:
                logger.debug("faremeter: alert claim failed (%s); sending locally", exc)
        self.sent += 1
        for sink in self.sinks:
            try:
                sink.send(alert)
            except Exception:
                logger.exception("faremeter: alert sink %r failed", sink)
        return True
