"""Exceptions faremeter raises on purpose.

Only :class:`BudgetExceeded` (and errors a user explicitly configured to raise)
ever propagate out of instrumentation into an application; the rest signal bad
input at the API boundary, where failing loudly is the only way to lose nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """A call was refused *before* it ran because a budget would be exceeded."""
