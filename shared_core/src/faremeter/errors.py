"""Exceptions faremeter raises on purpose.

Only :class:`BudgetExceeded` (and errors a user explicitly configured to raise)
ever propagate out of instrumentation into an application; the rest signal bad
input at the API boundary, where failing loudly is the only way to lose nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "FaremeterError",
    "InvalidUsageError",
    "UnknownModelError",
]


class FaremeterError(Exception):
    """Base class of every error faremeter raises deliberately."""


class InvalidUsageError(FaremeterError, ValueError):
    """Token counts that cannot be true (negative, absurd, inconsistent)."""


class UnknownModelError(FaremeterError, LookupError):
    """A model the price catalog cannot resolve.

    Attributes:
        model: The name that was asked for.
        suggestions: The closest known model ids, best first.
    """

    def __init__(self, model: str, suggestions: Sequence[str] = ()) -> None:
        self.model = model
        self.suggestions = tuple(suggestions)
        hint = (
            f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if suggestions else ""
        )
        super().__init__(f"no price known for model {model!r}{hint}")

    def __reduce__(self) -> tuple[type[UnknownModelError], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.model, self.suggestions))


class ConfigError(FaremeterError, ValueError):
    """A configuration file or value that cannot be used.

    The message always names the source (file), the dotted key and the reason,
    so a user can fix the file without reading faremeter's code.
    """


class BudgetExceeded(FaremeterError):
    """A call was refused *before* it ran because a budget would be exceeded.

    Raised before any request leaves the process, so nothing was billed. Every
    field is optional so the error stays constructible with just a message
    (``BudgetExceeded("over budget")``); budgets fill them all in.

    Attributes:
        budget: Name of the budget that refused the call.
        limit: The budget's limit in USD.
        spent: Money already committed in the budget's window.
        reserved: Money held by calls still in flight.
        attempted: What this call would have reserved (``None``: unpriced).
        available: Money left (``limit - spent - reserved``, never negative):
            a caller can fit a smaller ``max_tokens`` or a cheaper model into it.
        partial: True when the budget degrades rather than denies and no
            smaller call fits: an agent should stop and return what it has.
        scope_key: Which counter refused: budget, subject and window
            (``team-cap:sales:2026-12``).
        reason: Why, in words (``limit``, ``throttled``, ``unpriced``,
            ``store unavailable``).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        budget: str | None = None,
        limit: Decimal | None = None,
        spent: Decimal | None = None,
        reserved: Decimal | None = None,
        attempted: Decimal | None = None,
        available: Decimal | None = None,
        partial: bool = False,
        scope_key: str | None = None,
        reason: str = "limit",
    ) -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.attempted = attempted
        self.available = available
        self.partial = partial
        self.scope_key = scope_key
        self.reason = reason
        if message is None:
            message = self._describe()
        super().__init__(message)

    def _describe(self) -> str:
        def usd(value: Decimal | None) -> str:
            return "unpriced" if value is None else f"${value:f}"

        name = repr(self.budget) if self.budget else "a budget"
        where = f" ({self.scope_key})" if self.scope_key else ""
        parts = [f"budget {name}{where} refused the call ({self.reason})"]
        if self.limit is not None:
            parts.append(
                f"limit {usd(self.limit)}, spent {usd(self.spent)}, reserved "
                f"{usd(self.reserved)}, attempted {usd(self.attempted)}"
            )
        if self.partial:
            parts.append("no smaller call fits: return the partial result")
        return "; ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields would be lost by Exception's default pickling
        # (errors cross process boundaries in worker pools).
        return (_rebuild_budget_exceeded, (self.args[0] if self.args else None, self.__dict__))


def _rebuild_budget_exceeded(message: str | None, state: dict[str, Any]) -> BudgetExceeded:
    error = BudgetExceeded(message)
    error.__dict__.update(state)
    return error
