"""What a budget store does: atomic, all-or-nothing reservations on integer counters.

Money in stores is an integer count of :data:`UNIT` (one nano-dollar): exact,
cheap to add, and safe inside Redis' 64-bit integers and Lua's doubles up to
about $9 million per counter. Each budget a call matches becomes one
:class:`Check`: the counters its spend is summed from, the counter in-flight
money is held in, and its limit. A store reserves against *every* check of a
call in one atomic step or not at all, which is what makes a ``deny`` limit
hold under concurrency.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = [
    "UNIT",
    "BudgetStore",
    "Check",
    "ReserveResult",
    "StoreUnavailable",
    "from_units",
    "to_units",
]

UNIT = Decimal("0.000000001")
"""One store unit in USD (1e-9)."""

_SCALE = 9
_ONE = Decimal(1)
_UNITS_CACHE: dict[Decimal, int] = {}
_UNITS_CACHE_MAX = 4_096


def to_units(amount: Decimal) -> int:
    """USD → store units, rounded *up* (a reservation never under-holds).

    Estimates and prices repeat, so conversions are memoised (a dict hit is
    ~8x cheaper than the Decimal arithmetic on the reserve/settle hot path).
    """
    units = _UNITS_CACHE.get(amount)
    if units is None:
        scaled = amount.scaleb(_SCALE)
        units = int(scaled)  # truncates toward zero
        if units < scaled:
            units += 1
        if len(_UNITS_CACHE) >= _UNITS_CACHE_MAX:
            _UNITS_CACHE.clear()
        _UNITS_CACHE[amount] = units
    return units


def from_units(units: int) -> Decimal:
    """Store units → USD (without trailing zeros: ``1``, ``0.25``)."""
    amount = Decimal(units).scaleb(-_SCALE).normalize()
    return amount.quantize(_ONE) if amount.as_tuple().exponent > 0 else amount  # pyright: ignore[reportOperatorIssue]


class Check(NamedTuple):
    """One budget's counters for one call.

    Attributes:
        spent_keys: Counters whose sum is the committed spend of the window.
        reserved_key: Counter of money held by calls in flight.
        commit_key: Counter a settled call's actual cost is added to.
        limit: Limit in units, or ``-1`` when the budget only warns.
        ttl_s: Seconds the written counters must live.
    """

    spent_keys: tuple[str, ...]
    reserved_key: str
    commit_key: str
    limit: int
    ttl_s: int


class ReserveResult(NamedTuple):
    """What a reservation attempt found.

    Attributes:
        failed: Index of the first check whose limit the amount would cross,
            or ``-1`` when the money is now held against every check.
        totals: ``(spent, reserved)`` per check *before* this reservation, for
            the checks examined (all of them on success).
    """

    failed: int
    totals: list[tuple[int, int]]


class StoreUnavailable(Exception):
    """The store could not be reached or answered too late (fail-open/closed applies)."""


@runtime_checkable
class BudgetStore(Protocol):
    """Counters shared by everything enforcing the same budgets."""

    prefix: str
    """Prepended to every key (namespaces a shared Redis)."""

    def reserve(self, checks: Sequence[Check], amount: int) -> ReserveResult:
        """Hold ``amount`` against every check atomically, or against none."""
        ...

    def settle(self, checks: Sequence[Check], reserved: int, actual: int) -> None:
        """Release ``reserved`` and commit ``actual`` on every check atomically."""
        ...

    def read(self, checks: Sequence[Check]) -> list[tuple[int, int]]:
        """``(spent, reserved)`` per check, without changing anything."""
        ...

    def scan(self, prefix: str) -> dict[str, int]:
        """Every live counter whose key starts with ``prefix`` (status listings)."""
        ...

    def claim(self, key: str, ttl_s: int) -> bool:
        """True exactly once per ``key`` until it expires (alert de-duplication)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
