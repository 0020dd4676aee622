"""What the dashboard reads: a ledger, and (when given a meter) its budgets.

The dashboard accepts either a :class:`~faremeter.Meter` (ledger plus
budgets and clock) or a bare :class:`~faremeter.ledger.Ledger` (a read-only
view of any ledger URL). This module hides the difference so each panel
function takes one argument for "where the numbers come from".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from faremeter.ledger import Ledger
from faremeter.pricing import PriceCatalog

__all__ = ["DashboardSource"]


@lru_cache(maxsize=1)
def _default_catalog() -> PriceCatalog:
    return PriceCatalog.default()


@dataclass(frozen=True, kw_only=True, slots=True)
class DashboardSource:
    """The ledger to read, the meter it belongs to (if any) and "now".

    Attributes:
        ledger: Where spans are queried.
        meter: The meter, when the dashboard was given one; budgets live there.
        catalog_override: Prices to use instead of the meter's (or the bundled ones).
        clock: Epoch nanoseconds; named time windows end at this instant, so
            tests can pin "now" instead of depending on the wall clock.
    """

    ledger: Ledger
    meter: Any = None
    clock: Callable[[], int] = time.time_ns
    catalog_override: PriceCatalog | None = None

    @property
    def catalog(self) -> PriceCatalog:
        """Prices for what-if repricing: the meter's, else the bundled snapshot."""
        if self.catalog_override is not None:
            return self.catalog_override
        catalog = getattr(self.meter, "catalog", None)
        if isinstance(catalog, PriceCatalog):
            return catalog
        return _default_catalog()

    @classmethod
    def of(
        cls,
        meter_or_ledger: Any,
        *,
        clock: Callable[[], int] | None = None,
        catalog: PriceCatalog | None = None,
    ) -> DashboardSource:
        """Wrap a meter or a ledger.

        Raises:
            TypeError: For anything that is neither.
        """
        if isinstance(meter_or_ledger, Ledger):
            return cls(
                ledger=meter_or_ledger, clock=clock or time.time_ns, catalog_override=catalog
            )
        ledger = getattr(meter_or_ledger, "ledger", None)
        if not isinstance(ledger, Ledger):
            raise TypeError(
                "the dashboard reads a faremeter.Meter or a faremeter.ledger.Ledger, "
                f"got {type(meter_or_ledger).__name__}"
            )
        meter_clock: Callable[[], int] | None = getattr(meter_or_ledger, "clock", None)
        return cls(
            ledger=ledger,
            meter=meter_or_ledger,
            clock=clock or meter_clock or time.time_ns,
            catalog_override=catalog,
        )

    def now(self) -> datetime:
        """The clock's instant as an aware UTC datetime."""
        ns = self.clock()
        return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(
            microsecond=(ns // 1_000) % 1_000_000
        )
