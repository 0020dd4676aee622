"""Per-model rolling health: demote a struggling model before its breaker opens.

A breaker reacts to a burst of hard failures; a model that fails one call in
three, or answers in 40 s instead of 4 s, never trips it yet hurts every call
routed to it. The tracker keeps each model's last ``window`` outcomes and
latencies; a model whose error rate or p95 latency is past its threshold is
*demoted* — a fallback chain tries it after the healthy candidates instead of
first — but is never skipped (it may still be the only one that answers).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["HealthReport", "HealthTracker"]


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthReport:
    """One model's recent health.

    Attributes:
        model: The model.
        samples: Outcomes in the window.
        error_rate: Failed share of them.
        p95_latency_s: 95th-percentile latency (nearest rank), if any samples.
        degraded: Past a threshold (with at least ``min_samples`` samples).
        reason: ``error_rate 0.6 > 0.5`` / ``p95 12.0s > 8.0s`` when degraded.
    """

    model: str
    samples: int
    error_rate: float
    p95_latency_s: float | None
    degraded: bool
    reason: str | None = None


class _Window:
    __slots__ = ("latencies", "outcomes", "reason")

    def __init__(self, size: int) -> None:
        self.outcomes: deque[bool] = deque(maxlen=size)
        self.latencies: deque[float] = deque(maxlen=size)
        self.reason: str | None = None


class HealthTracker:
    """Rolling error rate and p95 latency per model, with demotion thresholds.

    Args:
        window: Last outcomes kept per model.
        min_samples: Fewer samples never demote (one early failure is noise).
        max_error_rate: Demote above this failed share (``None``: ignore errors).
        max_p95_latency_s: Demote above this p95 latency (``None``: ignore latency).
    """

    def __init__(
        self,
        *,
        window: int = 50,
        min_samples: int = 10,
        max_error_rate: float | None = 0.5,
        max_p95_latency_s: float | None = None,
    ) -> None:
        if type(window) is not int or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        if type(min_samples) is not int or not 1 <= min_samples <= window:
            raise ValueError(f"min_samples must be an int in [1, window], got {min_samples!r}")
        if max_error_rate is not None and not 0.0 <= max_error_rate <= 1.0:
            raise ValueError(f"max_error_rate must be in [0, 1], got {max_error_rate!r}")
        if max_p95_latency_s is not None and max_p95_latency_s <= 0:
            raise ValueError(f"max_p95_latency_s must be > 0, got {max_p95_latency_s!r}")
        self.window = window
        self.min_samples = min_samples
        self.max_error_rate = max_error_rate
        self.max_p95_latency_s = max_p95_latency_s
        self._models: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def record(self, model: str, *, ok: bool, latency_s: float) -> None:
        """Add one outcome; the demotion verdict is recomputed here, not on reads."""
        with self._lock:
            w = self._models.get(model)
            if w is None:
                w = self._models[model] = _Window(self.window)
            w.outcomes.append(ok)
            w.latencies.append(max(0.0, latency_s))
            w.reason = self._verdict(w)

    def _verdict(self, w: _Window) -> str | None:
        n = len(w.outcomes)
        if n < self.min_samples:
            return None
        if self.max_error_rate is not None:
            rate = w.outcomes.count(False) / n
            if rate > self.max_error_rate:
                return f"error_rate {rate:.2f} > {self.max_error_rate:g}"
        if self.max_p95_latency_s is not None:
            p95 = _p95(w.latencies)
            if p95 > self.max_p95_latency_s:
                return f"p95 {p95:.3g}s > {self.max_p95_latency_s:g}s"
        return None

    def degraded(self, model: str) -> str | None:
        """Why ``model`` is demoted, or ``None`` when it is healthy (or unknown)."""
        w = self._models.get(model)
        return None if w is None else w.reason

    def report(self, model: str) -> HealthReport:
        """The model's current numbers."""
        with self._lock:
            w = self._models.get(model)
            if w is None or not w.outcomes:
                return HealthReport(
                    model=model, samples=0, error_rate=0.0, p95_latency_s=None, degraded=False
                )
            n = len(w.outcomes)
            return HealthReport(
                model=model,
                samples=n,
                error_rate=w.outcomes.count(False) / n,
                p95_latency_s=_p95(w.latencies),
                degraded=w.reason is not None,
                reason=w.reason,
            )


def _p95(values: deque[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
