"""What a budget looks like right now: `BudgetStatus` and `BudgetHealth`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["BudgetHealth", "BudgetStatus"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetStatus:
    """One budget counter (one per ``per`` value, or per trace) in its current window.

    Attributes:
        budget: Budget name.
        subject: The ``per`` value or trace id; ``None`` for a budget-wide counter.
        action: ``deny`` / ``degrade`` / ``throttle`` / ``warn``.
        window: Window id (``d2026-12-01``, ``m2026-12``, ``r<bucket>``, ``trace``).
        window_start: Start of the window (``None`` for trace budgets).
        window_end: End of the window (``None`` for rolling and trace budgets).
        limit: The limit, USD.
        spent: Committed spend in the window.
        reserved: Money held by calls in flight.
        remaining: ``limit - spent - reserved`` (negative after an overrun).
        projected: Spend expected by the end of the window at the current burn
            rate (``None`` where a window has no end or nothing has elapsed).
    """

    budget: str
    subject: str | None
    action: str
    window: str
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    remaining: Decimal
    projected: Decimal | None

    @property
    def used_fraction(self) -> Decimal:
        """``(spent + reserved) / limit``."""
        return (self.spent + self.reserved) / self.limit

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (money as exact decimal strings)."""
        return {
            "budget": self.budget,
            "subject": self.subject,
            "action": self.action,
            "window": self.window,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "limit": format(self.limit, "f"),
            "spent": format(self.spent, "f"),
            "reserved": format(self.reserved, "f"),
            "remaining": format(self.remaining, "f"),
            "projected": None if self.projected is None else format(self.projected, "f"),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetHealth:
    """Counts of everything that did not go the normal way.

    Attributes:
        store: What kind of store (``memory``, ``sqlite``, ``redis``).
        store_failures: Store calls that failed or timed out.
        fail_open_passes: Calls let through unenforced because the store failed.
        fail_closed_denials: Calls refused because the store failed.
        settle_failures: Settlements that could not be written.
        unpriced_allowed: Calls that could not be priced and were let through.
        unpriced_denied: Calls refused because they could not be priced.
        overruns: Calls that cost more than they reserved.
        overrun_total: USD by which they exceeded their reservations.
        throttled: Calls that waited for a throttle slot.
        throttle_denials: Calls refused because the throttle wait was too long.
        degraded: Calls fitted to the money left under ``degrade``.
        denials: Calls refused at a limit.
    """

    store: str
    store_failures: int = 0
    fail_open_passes: int = 0
    fail_closed_denials: int = 0
    settle_failures: int = 0
    unpriced_allowed: int = 0
    unpriced_denied: int = 0
    overruns: int = 0
    overrun_total: Decimal = Decimal(0)
    throttled: int = 0
    throttle_denials: int = 0
    degraded: int = 0
    denials: int = 0
