"""`Reservation`: money held for one call until it is settled or released.

A reservation is returned by ``BudgetManager.reserve``. Exactly one of
:meth:`Reservation.settle` (the call ran; bill what it cost) or
:meth:`Reservation.release` (it failed, was cancelled or abandoned; bill
nothing) takes effect; later calls are no-ops, so error paths can call both
safely. Used as a context manager, an exception releases and a normal exit
without ``settle`` commits the reserved estimate (never under-counting).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING

from faremeter.budgets.stores.base import Check

if TYPE_CHECKING:
    from faremeter.budgets.manager import BudgetManager

__all__ = ["Reservation"]

_done_lock = threading.Lock()


class Reservation:
    """Money held against every budget a call matched.

    Attributes:
        amount: What was reserved (USD), ``None`` when the call could not be
            priced and the policy let it through.
        budgets: Names of the budgets holding the money.
        enforced: False when the store was unreachable and ``fail="open"``
            let the call through unchecked.
        unpriced: True when the call could not be priced (allowed by policy).
        model: The model the call should use (changed by ``degrade``).
        max_tokens: The output cap the reservation covers (changed by ``degrade``).
        degraded: Why the call was fitted to the money left, or ``None``.
        waited_s: Seconds a ``throttle`` budget made the call wait.
        actual: The settled cost, once settled.
        overrun: How much the actual cost exceeded the reservation, if it did.
    """

    __slots__ = (
        "_checks",
        "_done",
        "_manager",
        "_units",
        "actual",
        "amount",
        "budgets",
        "degraded",
        "enforced",
        "max_tokens",
        "model",
        "overrun",
        "unpriced",
        "waited_s",
    )

    def __init__(
        self,
        manager: BudgetManager | None,
        checks: Sequence[Check],
        units: int,
        amount: Decimal | None,
        budgets: tuple[str, ...],
        *,
        enforced: bool = True,
        unpriced: bool = False,
    ) -> None:
        self._manager = manager
        self._checks = checks
        self._units = units
        self._done = False
        self.amount = amount
        self.budgets = budgets
        self.enforced = enforced
        self.unpriced = unpriced
        self.model: str | None = None
        self.max_tokens: int | None = None
        self.degraded: str | None = None
        self.waited_s = 0.0
        self.actual: Decimal | None = None
        self.overrun: Decimal | None = None

    @property
    def settled(self) -> bool:
        """True once settled or released."""
        return self._done

    def _finish(self) -> bool:
        if self._done:
            return False
        with _done_lock:
            if self._done:
                return False
            self._done = True
        return True

    def settle(self, actual: Decimal | None) -> None:
        """Bill the call's actual cost and release the rest. Idempotent; never raises.

        Args:
            actual: What the call really cost. ``None`` (the response could not
                be priced) commits the reserved estimate instead, so spend is
                never under-counted.
        """
        if not self._finish():
            return
        manager = self._manager
        if manager is not None and self._checks:
            manager._settle(self, self._checks, self._units, actual)  # pyright: ignore[reportPrivateUsage]
        elif actual is not None:
            self.actual = actual

    def release(self) -> None:
        """Bill nothing: the call failed, was cancelled or its stream abandoned."""
        if not self._finish():
            return
        manager = self._manager
        if manager is not None and self._checks:
            manager._release(self._checks, self._units)  # pyright: ignore[reportPrivateUsage]
        self.actual = Decimal(0)

    async def asettle(self, actual: Decimal | None) -> None:
        """:meth:`settle` without blocking the event loop on a remote store."""
        manager = self._manager
        if manager is None or manager.store_is_local or not self._checks:
            self.settle(actual)
            return
        import asyncio

        await asyncio.to_thread(self.settle, actual)

    async def arelease(self) -> None:
        """:meth:`release` without blocking the event loop on a remote store."""
        manager = self._manager
        if manager is None or manager.store_is_local or not self._checks:
            self.release()
            return
        import asyncio

        await asyncio.to_thread(self.release)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.release()
        else:
            self.settle(None)

    def __repr__(self) -> str:
        state = "settled" if self._done else "held"
        return f"Reservation(amount={self.amount}, budgets={self.budgets}, {state})"
