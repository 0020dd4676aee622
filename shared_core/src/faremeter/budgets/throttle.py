"""Pacing for ``throttle`` budgets: spread the money left over the time left.

Past the budget's highest ``warn_at`` threshold, a call costing ``a`` with
``R`` dollars left and ``T`` seconds left in the window is given a slot
``a * T / R`` after the previous one. Calls arriving at that rate spend exactly
``R`` by the end of the window: the projected spend fits. A call whose slot is
further away than the configured maximum wait is denied instead of waiting.

Slots are kept per budget counter *in this process*; the limit itself is still
enforced by the shared store, so pacing across processes is per process and
the limit is never crossed.
"""

from __future__ import annotations

import threading

__all__ = ["Throttle"]


class Throttle:
    """Next free slot per counter (nanoseconds)."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def claim(
        self,
        key: str,
        *,
        now_ns: int,
        cost: int,
        left: int,
        window_end_ns: int | None,
        rolling_ns: int,
        max_wait_ns: int,
    ) -> int | None:
        """Claim a slot; the wait in nanoseconds, or ``None`` if it exceeds ``max_wait_ns``.

        Args:
            key: The counter (budget, subject, window).
            now_ns: Now.
            cost: This call's reservation, in store units.
            left: Money left *before* this call, in store units (> 0).
            window_end_ns: When the calendar window ends (``None``: rolling).
            rolling_ns: A rolling window's length (the horizon it must last).
            max_wait_ns: Longest acceptable wait.
        """
        with self._lock:
            slot = self._next.get(key, now_ns)
            start = slot if slot > now_ns else now_ns
            wait = start - now_ns
            if wait > max_wait_ns:
                return None
            # Time left is measured from this call's slot, so successive
            # intervals keep (time left / money left) constant: the spend lands
            # evenly and the last cent is spent one interval before the end.
            horizon = (window_end_ns - start) if window_end_ns is not None else rolling_ns
            self._next[key] = start + cost * max(horizon, 0) // max(left, 1)
            if len(self._next) > 10_000:
                self._next = {k: v for k, v in self._next.items() if v > now_ns}
            return wait
