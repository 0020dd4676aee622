"""Budget windows: which counter a call lands in, and when that counter ends.

* ``day`` / ``month`` are calendar periods in the budget's timezone (DST-aware
  through :mod:`zoneinfo`): a per-user daily budget in ``America/New_York``
  rolls over at local midnight, not UTC midnight.
* A ``timedelta`` is a rolling window, kept as :data:`ROLLING_BUCKETS` + 1
  time buckets of ``window / ROLLING_BUCKETS`` each. The sum counts up to one
  bucket of spend *older* than the window, never less than the window: the
  rolling limit is enforced conservatively (it can refuse up to
  ``1/ROLLING_BUCKETS`` of a window early, never admit more).
* ``trace`` is one counter per trace id.

Windows are computed from an injected clock (nanoseconds) and cached until they
end, so the hot path does no timezone arithmetic.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from faremeter.budgets.budget import Budget

__all__ = ["ROLLING_BUCKETS", "TRACE_TTL_S", "WindowSpan", "window_at"]

ROLLING_BUCKETS = 24
"""Buckets per rolling window (the enforcement granularity)."""

TRACE_TTL_S = 7 * 86_400
"""How long an idle per-trace counter is kept."""

_GRACE_S = 3_600
_NS = 1_000_000_000


@dataclass(frozen=True, kw_only=True, slots=True)
class WindowSpan:
    """The window a call falls into.

    Attributes:
        key: Window id inside store keys: ``d2026-12-01``, ``m2026-12``,
            ``r<bucket>`` (rolling; the current bucket), ``trace``.
        start_ns: Window start (rolling: now - window; trace: 0).
        end_ns: Window end (rolling: when the current bucket ends; trace: never).
        spent_windows: The window ids whose spend counts (rolling: every bucket
            overlapping the window; otherwise just ``key``).
        reserved_window: The window id in-flight money is held under.
        rolling: True for rolling windows.
    """

    key: str
    start_ns: int
    end_ns: int | None
    spent_windows: tuple[str, ...]
    reserved_window: str
    rolling: bool = False

    def ttl_s(self, now_ns: int) -> int:
        """Seconds a counter of this window must live, from ``now_ns``."""
        if self.end_ns is None:
            return TRACE_TTL_S
        if self.rolling:
            return (self.end_ns - self.start_ns) // _NS + 2 * _GRACE_S
        return max(1, -(-(self.end_ns - now_ns) // _NS)) + _GRACE_S

    def valid_at(self, now_ns: int) -> bool:
        """True while ``now_ns`` is still inside this window (cache check)."""
        return self.end_ns is None or now_ns < self.end_ns


def _calendar(budget: Budget, now_ns: int) -> WindowSpan:
    zone = ZoneInfo(budget.timezone)
    # Whole seconds (floor): window boundaries are whole seconds, so no float
    # rounding can put ``now`` on the wrong side of one.
    local = dt.datetime.fromtimestamp(now_ns // _NS, tz=zone)
    if budget.window == "day":
        start = dt.datetime(local.year, local.month, local.day, tzinfo=zone)
        nxt = (start.date() + dt.timedelta(days=1)).timetuple()
        end = dt.datetime(nxt.tm_year, nxt.tm_mon, nxt.tm_mday, tzinfo=zone)
        key = f"d{start.date().isoformat()}"
    else:
        start = dt.datetime(local.year, local.month, 1, tzinfo=zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = dt.datetime(year, month, 1, tzinfo=zone)
        key = f"m{local.year:04d}-{local.month:02d}"
    start_ns = int(start.timestamp()) * _NS
    end_ns = int(end.timestamp()) * _NS
    return WindowSpan(
        key=key, start_ns=start_ns, end_ns=end_ns, spent_windows=(key,), reserved_window=key
    )


def _rolling(window: dt.timedelta, now_ns: int) -> WindowSpan:
    total_ns = int(window.total_seconds() * _NS)
    bucket_ns = max(total_ns // ROLLING_BUCKETS, 1)
    current = now_ns // bucket_ns
    buckets = tuple(f"r{i}" for i in range(current - ROLLING_BUCKETS, current + 1))
    return WindowSpan(
        key=f"r{current}",
        start_ns=now_ns - total_ns,
        end_ns=(current + 1) * bucket_ns,
        spent_windows=buckets,
        reserved_window="live",
        rolling=True,
    )


_TRACE = WindowSpan(
    key="trace", start_ns=0, end_ns=None, spent_windows=("trace",), reserved_window="trace"
)


def window_at(budget: Budget, now_ns: int) -> WindowSpan:
    """The window of ``budget`` that contains ``now_ns`` (nanoseconds since the epoch)."""
    window = budget.window
    if isinstance(window, dt.timedelta):
        return _rolling(window, now_ns)
    if window == "trace":
        return _TRACE
    return _calendar(budget, now_ns)
