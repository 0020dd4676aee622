"""`Budget`: a spending limit over a scope and a window.

A budget is a plain value: it says *what* is limited (calls whose attributes
match ``scope``; one counter per value of ``per``), *over which period*
(``window``) and *what happens at the limit* (``action``). Counting, reserving
and alerting live in :class:`~faremeter.budgets.manager.BudgetManager`.

Every problem with the arguments raises ``ValueError`` naming the budget, the
argument and what is wrong, so a typo in a limit fails at start-up rather than
letting spend through.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from faremeter.cost import to_decimal

__all__ = ["Budget", "BudgetAction", "CalendarWindow"]

BudgetAction = Literal["deny", "degrade", "throttle", "warn"]
"""``deny`` refuses, ``degrade`` fits the call to the money left, ``throttle``
paces calls past the highest warn threshold, ``warn`` only alerts."""

CalendarWindow = Literal["day", "month", "trace"]

_ACTIONS: frozenset[str] = frozenset(get_args(BudgetAction))
_WINDOWS: frozenset[str] = frozenset(get_args(CalendarWindow))
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_MIN_ROLLING = dt.timedelta(seconds=1)


def _limit(name: str, value: object) -> Decimal:
    if isinstance(value, float):
        raise ValueError(
            f"budget {name!r}: limit must be a str or Decimal (floats are inexact), got {value!r}"
        )
    try:
        amount = to_decimal(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"budget {name!r}: limit is not an amount of USD: {value!r}") from None
    if amount <= 0:
        raise ValueError(f"budget {name!r}: limit must be > 0, got {value!r}")
    return amount


def _warn_at(name: str, value: object) -> tuple[Decimal, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"budget {name!r}: warn_at must be a sequence of fractions, got {value!r}")
    out: list[Decimal] = []
    for item in value:  # pyright: ignore[reportUnknownVariableType]
        try:
            fraction = to_decimal(item)  # pyright: ignore[reportUnknownArgumentType]
        except (ValueError, TypeError, AttributeError):
            raise ValueError(f"budget {name!r}: warn_at: not a number: {item!r}") from None
        if not 0 < fraction <= 1:
            raise ValueError(
                f"budget {name!r}: warn_at values are fractions of the limit in (0, 1],"
                f" got {item!r}"
            )
        out.append(fraction)
    return tuple(sorted(set(out)))


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit.

    Example::

        Budget("sales-monthly", limit="500", scope={"team": "sales"})
        Budget("per-user-daily", limit="2", window="day", per="user_id", timezone="Europe/Paris")
        Budget("task-cap", limit="0.50", window="trace")
        Budget("search-hourly", limit="1", window=timedelta(hours=1), scope={"tool": "web_search"})

    Attributes:
        name: Unique name; letters, digits, ``_ . -`` (it is part of store keys).
        limit: USD, given as ``str`` or ``Decimal`` (never float).
        window: ``"day"`` / ``"month"`` (calendar, in ``timezone``), a
            ``timedelta`` (rolling), or ``"trace"`` (a per-task cap).
        action: What happens at the limit; see :data:`BudgetAction`.
        scope: Attributes a call must carry for the budget to apply
            (``{"team": "sales"}``); the call's ``kind`` (``llm`` / ``tool``)
            and ``name`` (model or tool name) are attributes too, so
            ``{"tool": "web_search"}`` or ``{"model": "gpt-4o"}`` work.
        per: An attribute whose every value gets its own counter
            (``per="user_id"``); calls without the attribute are not counted.
        warn_at: Fractions of the limit that raise an alert, once per window.
        timezone: IANA zone in which calendar days and months start.
    """

    name: str
    _: KW_ONLY
    limit: Decimal
    window: CalendarWindow | dt.timedelta = "month"
    action: BudgetAction = "deny"
    scope: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False, compare=True
    )
    per: str | None = None
    warn_at: tuple[Decimal, ...] = (Decimal("0.8"), Decimal("0.9"))
    timezone: str = "UTC"

    def __init__(
        self,
        name: str,
        *,
        limit: Decimal | str | int,
        window: CalendarWindow | dt.timedelta = "month",
        action: BudgetAction = "deny",
        scope: Mapping[str, str] | None = None,
        per: str | None = None,
        warn_at: Iterable[Decimal | str | float] = (Decimal("0.8"), Decimal("0.9")),
        timezone: str = "UTC",
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(
                f"budget name must be 1-100 letters, digits, '_', '.' or '-', got {name!r}"
            )
        setter = object.__setattr__
        setter(self, "name", name)
        setter(self, "limit", _limit(name, limit))
        if isinstance(window, dt.timedelta):
            if window < _MIN_ROLLING:
                raise ValueError(f"budget {name!r}: a rolling window must be >= 1 second")
        elif window not in _WINDOWS:
            raise ValueError(
                f"budget {name!r}: window must be 'day', 'month', 'trace' or a timedelta,"
                f" got {window!r}"
            )
        setter(self, "window", window)
        if action not in _ACTIONS:
            raise ValueError(
                f"budget {name!r}: action must be one of {sorted(_ACTIONS)}, got {action!r}"
            )
        setter(self, "action", action)
        pairs: dict[str, str] = {}
        for key, value in (scope or {}).items():
            if not isinstance(key, str) or not key:  # pyright: ignore[reportUnnecessaryIsInstance]
                raise ValueError(f"budget {name!r}: scope keys must be non-empty strings")
            if not isinstance(value, str | int):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise ValueError(
                    f"budget {name!r}: scope.{key} must be a string, got {type(value).__name__}"
                )
            pairs[key] = str(value)
        setter(self, "scope", MappingProxyType(pairs))
        if per is not None:
            if not isinstance(per, str) or not per:  # pyright: ignore[reportUnnecessaryIsInstance]
                raise ValueError(f"budget {name!r}: per must be an attribute name, got {per!r}")
            if window == "trace":
                raise ValueError(
                    f"budget {name!r}: per= cannot be combined with window='trace'"
                    " (a trace budget already has one counter per trace)"
                )
            if per in pairs:
                raise ValueError(f"budget {name!r}: per={per!r} is also fixed in scope")
        setter(self, "per", per)
        setter(self, "warn_at", _warn_at(name, warn_at))
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"budget {name!r}: unknown timezone {timezone!r}") from None
        setter(self, "timezone", timezone)
        if action == "throttle" and (window == "trace" or not self.warn_at):
            raise ValueError(
                f"budget {name!r}: throttle paces calls over a day, month or rolling window"
                " past the highest warn_at threshold; it needs such a window and warn_at"
            )

    def __reduce__(self) -> tuple[Any, ...]:
        # ``scope`` is a read-only mapping proxy, which does not pickle; budgets
        # cross process boundaries (worker pools), so rebuild from arguments.
        return (_rebuild, (self.name, self._arguments()))

    def _arguments(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "window": self.window,
            "action": self.action,
            "scope": dict(self.scope),
            "per": self.per,
            "warn_at": self.warn_at,
            "timezone": self.timezone,
        }

    @property
    def enforces(self) -> bool:
        """True when reaching the limit stops calls (everything but ``warn``)."""
        return self.action != "warn"

    @property
    def throttle_at(self) -> Decimal | None:
        """Fraction of the limit past which ``throttle`` paces calls."""
        return self.warn_at[-1] if self.action == "throttle" and self.warn_at else None

    def matches(self, attributes: Mapping[str, object]) -> bool:
        """True when a call with these attributes counts against this budget."""
        for key, value in self.scope.items():
            actual = attributes.get(key)
            if actual is None or str(actual) != value:
                return False
        return self.per is None or attributes.get(self.per) is not None


def _rebuild(name: str, arguments: dict[str, Any]) -> Budget:
    return Budget(name, **arguments)
