"""What a fallback chain does about each class of error.

Per error class (from :func:`faremeter.error_classes.classify_error`): how many
times to retry the *same* model, and what to do once retries are spent:

* ``next`` — try the next candidate;
* ``larger_window`` — try the next candidate whose context window is known to
  take the prompt (never one that cannot);
* ``alternative`` — try the configured content-policy alternatives;
* ``down_tier`` — try the next candidate of a cheaper tier;
* ``raise`` — stop and re-raise (the request itself is wrong: retrying or
  switching models only spends more).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "BREAKER_CLASSES",
    "DEFAULT_ACTIONS",
    "DEFAULT_RETRIES",
    "FallbackAction",
    "RetryPolicy",
]

FallbackAction = Literal["next", "larger_window", "alternative", "down_tier", "raise"]

DEFAULT_RETRIES: Final[Mapping[str, int]] = MappingProxyType(
    {"rate_limit": 2, "timeout": 1, "server_error": 2, "connection": 2}
)
"""Retries of the same model per class; classes not listed are not retried."""

DEFAULT_ACTIONS: Final[Mapping[str, FallbackAction]] = MappingProxyType(
    {
        "rate_limit": "next",
        "timeout": "next",
        "server_error": "next",
        "connection": "next",
        "auth": "next",
        "not_found": "next",
        "context_window": "larger_window",
        "content_policy": "alternative",
        "budget": "down_tier",
        "bad_request": "raise",
    }
)
"""Action once retries are spent; unclassified errors (application bugs) always raise."""

BREAKER_CLASSES: Final = frozenset({"rate_limit", "timeout", "server_error", "connection"})
"""Classes that say a *model* is unhealthy (they count towards its breaker).

A context-window, content-policy, budget or bad-request error is about the
request, not the model, and must not open a breaker for everyone else.
"""

_ACTIONS: Final = frozenset(("next", "larger_window", "alternative", "down_tier", "raise"))


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Retries, backoff and next steps per error class.

    Backoff is tenacity's exponential-with-jitter wait; a ``Retry-After`` from
    the provider replaces it (retrying earlier only earns another 429). A
    ``Retry-After`` longer than ``max_retry_after_s`` moves on to the next
    candidate instead of waiting.

    Attributes:
        retries: Class → retries of the same model.
        actions: Class → what to do when retries are spent (see module doc).
        initial_backoff_s: First backoff wait.
        max_backoff_s: Cap of one backoff wait.
        jitter_s: Random extra wait in [0, jitter_s] (0 for exact waits).
        max_retry_after_s: Longest ``Retry-After`` the chain will wait out.
        breaker_classes: Classes that count as a model failure for the breaker
            and the health tracker.
    """

    retries: Mapping[str, int] = field(default_factory=lambda: DEFAULT_RETRIES)
    actions: Mapping[str, FallbackAction] = field(default_factory=lambda: DEFAULT_ACTIONS)
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    jitter_s: float = 0.5
    max_retry_after_s: float = 60.0
    breaker_classes: frozenset[str] = BREAKER_CLASSES

    def __post_init__(self) -> None:
        for cls, n in self.retries.items():
            if type(n) is not int or n < 0:
                raise ValueError(f"RetryPolicy.retries[{cls!r}] must be an int >= 0, got {n!r}")
        for cls, action in self.actions.items():
            if action not in _ACTIONS:
                raise ValueError(
                    f"RetryPolicy.actions[{cls!r}] must be one of {sorted(_ACTIONS)}, "
                    f"got {action!r}"
                )
        for name in ("initial_backoff_s", "max_backoff_s", "jitter_s", "max_retry_after_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")

    def retries_for(self, error_class: str | None) -> int:
        """Retries of the same model for this class (0 for unclassified errors)."""
        return 0 if error_class is None else self.retries.get(error_class, 0)

    def action_for(self, error_class: str | None) -> FallbackAction:
        """What to do once retries are spent (unclassified errors raise)."""
        if error_class is None:
            return "raise"
        return self.actions.get(error_class, "raise")
