"""Circuit breakers per model: stop calling a model that keeps failing.

States: ``closed`` (calls go through; failures are counted in a rolling
window) → ``open`` after ``failure_threshold`` failures within ``window_s``
(calls are skipped without trying) → after ``cooldown_s`` the next caller
becomes the **one** probe (``half_open``; everyone else is still skipped) →
the probe's success closes the breaker, its failure re-opens it for another
cooldown. A probe that never reports back (its process died) loses its lease
after ``probe_timeout_s`` and another caller probes.

:class:`CircuitBreaker` is in-process (threads share it); for a fleet use
:class:`faremeter.fallback.redis_breaker.RedisCircuitBreaker`, which keeps the
same state machine in Redis. Both take an injectable ``clock`` so tests never
depend on the wall clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = ["Breaker", "BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where a model's breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@runtime_checkable
class Breaker(Protocol):
    """What a fallback chain needs from a circuit breaker."""

    def allow(self, model: str) -> bool:
        """Whether a call to ``model`` may go out now (``True`` for the one probe)."""
        ...

    def record_success(self, model: str) -> None:
        """The call answered (closes a half-open breaker)."""
        ...

    def record_failure(self, model: str) -> None:
        """The call failed in a way that says the model is unhealthy."""
        ...

    def state(self, model: str) -> BreakerState:
        """The breaker's current state for ``model``."""
        ...


class _ModelState:
    __slots__ = ("failures", "open_until", "probe_until", "state")

    def __init__(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures: deque[float] = deque()
        self.open_until = 0.0
        self.probe_until = 0.0


def _check(name: str, value: float, *, minimum: float = 0.0) -> float:
    if not isinstance(value, int | float) or value < minimum:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"{name} must be a number >= {minimum}, got {value!r}")
    return float(value)


class CircuitBreaker:
    """In-process circuit breaker per model (thread-safe).

    Args:
        failure_threshold: Failures within ``window_s`` that open the breaker.
        window_s: The rolling window failures are counted in.
        cooldown_s: How long an open breaker skips the model before a probe.
        probe_timeout_s: How long a probe holds its lease (default: cooldown).
        clock: Monotonic seconds (inject a fake one in tests).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        window_s: float = 60.0,
        cooldown_s: float = 30.0,
        probe_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if type(failure_threshold) is not int or failure_threshold < 1:
            raise ValueError(f"failure_threshold must be an int >= 1, got {failure_threshold!r}")
        self.failure_threshold = failure_threshold
        self.window_s = _check("window_s", window_s)
        self.cooldown_s = _check("cooldown_s", cooldown_s)
        self.probe_timeout_s = _check(
            "probe_timeout_s", cooldown_s if probe_timeout_s is None else probe_timeout_s
        )
        self.clock = clock
        self._models: dict[str, _ModelState] = {}
        self._lock = threading.Lock()

    def _get(self, model: str) -> _ModelState:
        state = self._models.get(model)
        if state is None:
            state = self._models.setdefault(model, _ModelState())
        return state

    def allow(self, model: str) -> bool:
        """Closed: yes. Open: no, until the cooldown ends; then yes for exactly one probe."""
        with self._lock:
            s = self._get(model)
            if s.state is BreakerState.CLOSED:
                return True
            now = self.clock()
            if s.state is BreakerState.OPEN:
                if now < s.open_until:
                    return False
                s.state = BreakerState.HALF_OPEN
                s.probe_until = now + self.probe_timeout_s
                return True
            # Half-open: one probe at a time; a lost probe's lease expires.
            if now < s.probe_until:
                return False
            s.probe_until = now + self.probe_timeout_s
            return True

    def record_success(self, model: str) -> None:
        """A half-open breaker closes (and forgets old failures)."""
        with self._lock:
            s = self._get(model)
            if s.state is BreakerState.HALF_OPEN:
                s.state = BreakerState.CLOSED
                s.failures.clear()

    def record_failure(self, model: str) -> None:
        """Count a failure; open at the threshold, re-open on a failed probe."""
        with self._lock:
            s = self._get(model)
            now = self.clock()
            if s.state is BreakerState.HALF_OPEN:
                self._open(s, now)
                return
            if s.state is BreakerState.OPEN:
                return  # a call that started before the breaker opened
            failures = s.failures
            failures.append(now)
            horizon = now - self.window_s
            while failures and failures[0] <= horizon:
                failures.popleft()
            if len(failures) >= self.failure_threshold:
                self._open(s, now)

    def _open(self, s: _ModelState, now: float) -> None:
        s.state = BreakerState.OPEN
        s.open_until = now + self.cooldown_s
        s.probe_until = 0.0
        s.failures.clear()

    def state(self, model: str) -> BreakerState:
        """Current state; an open breaker past its cooldown reports ``half_open``-ready as open."""
        with self._lock:
            s = self._models.get(model)
            return BreakerState.CLOSED if s is None else s.state

    def reset(self, model: str | None = None) -> None:
        """Forget one model's state (or every model's)."""
        with self._lock:
            if model is None:
                self._models.clear()
            else:
                self._models.pop(model, None)
