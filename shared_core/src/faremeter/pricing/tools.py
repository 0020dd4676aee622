"""Prices of tool calls: per call, per unit (record, page, query…), or both.

faremeter ships **no** built-in tool prices: a search API's price depends on the
user's plan, so a guessed default would be a silent lie. Tools are priced from
code (``ToolPrice``) or ``faremeter.toml`` ``[tools.<name>]``; a tool nobody
priced is *unpriced*, never $0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from faremeter.cost import ZERO, Cost, to_decimal

__all__ = ["ToolPrice"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolPrice:
    """What one tool charges.

    Example:
        ``ToolPrice(price_per_call=Decimal("0.005"))`` for a web search, or
        ``ToolPrice(price_per_unit=Decimal("0.10"), unit="record")`` for a data API.

    Attributes:
        price_per_call: USD per call, if the tool bills per call.
        price_per_unit: USD per unit, if it bills by volume.
        unit: What a unit is (``record``, ``page``…), for reports.
    """

    price_per_call: Decimal | None = None
    price_per_unit: Decimal | None = None
    unit: str = "unit"

    def __post_init__(self) -> None:
        for name in ("price_per_call", "price_per_unit"):
            value: object = getattr(self, name)
            if value is None:
                continue
            try:
                amount = to_decimal(value)  # type: ignore[arg-type]
            except (ValueError, TypeError, AttributeError):
                raise ValueError(f"{name}: not a number: {value!r}") from None
            if amount < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
            object.__setattr__(self, name, amount)
        if self.price_per_call is None and self.price_per_unit is None:
            raise ValueError("a ToolPrice needs price_per_call and/or price_per_unit")

    @classmethod
    def per_call(cls, amount: Decimal | int | float | str) -> ToolPrice:
        """A tool billed a fixed amount per call (``web_search`` $0.005)."""
        return cls(price_per_call=to_decimal(amount))

    @classmethod
    def per_unit(cls, amount: Decimal | int | float | str, unit: str = "unit") -> ToolPrice:
        """A tool billed by volume (a data API $0.10 per ``record``)."""
        return cls(price_per_unit=to_decimal(amount), unit=unit)

    def cost(self, name: str, *, calls: int = 1, units: int | Decimal | None = None) -> Cost:
        """The charge for ``calls`` calls that consumed ``units`` units.

        A per-unit tool asked for a cost without ``units`` is unpriced: the
        volume is unknown, and guessing zero would under-count.
        """
        if type(calls) is not int or calls < 0:
            raise ValueError(f"calls must be an int >= 0, got {calls!r}")
        amount = ZERO
        if self.price_per_call is not None:
            amount += calls * self.price_per_call
        if self.price_per_unit is not None:
            if units is None:
                if self.price_per_call is None:
                    return Cost.unpriced(
                        f"tool {name!r} is priced per {self.unit}; pass units= to price it"
                    )
            else:
                if (
                    isinstance(units, bool)
                    or not isinstance(units, int | Decimal)  # pyright: ignore[reportUnnecessaryIsInstance]
                    or units < 0
                ):
                    raise ValueError(f"units must be an int or Decimal >= 0, got {units!r}")
                amount += units * self.price_per_unit
        return Cost(tool=amount)
