"""The history of one fallback chain call: every attempt, skip and outcome.

When a chain gives up, the caller gets **the last provider error, unchanged**
(so ``except openai.RateLimitError`` keeps working) with the history attached
as ``error.faremeter_attempts`` and summarised in the error's notes. Only
when no candidate could even be tried (all breakers open, no window large
enough, deadline already past) is there no provider error to re-raise; then
the chain raises :class:`FallbackExhausted`, which carries the same history.
Read it either way with :func:`attempts_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from faremeter.errors import FaremeterError

__all__ = [
    "ATTEMPTS_ATTRIBUTE",
    "Attempt",
    "AttemptOutcome",
    "FallbackExhausted",
    "attempts_of",
    "describe_attempts",
]

ATTEMPTS_ATTRIBUTE: Final = "faremeter_attempts"
"""Name of the attribute holding the history on a re-raised provider error."""

AttemptOutcome = Literal["ok", "retry", "fallback", "raise", "skipped", "cached"]
"""What happened after an attempt.

``ok``: it answered. ``retry``: it failed and the same model is tried again
after a wait. ``fallback``: it failed and the chain moved on. ``raise``: it
failed and the chain stopped with this error. ``skipped``: the model was not
tried (``reason`` says why: ``circuit_open``, ``context_window``, ``budget``,
``deadline``, ``max_attempts``). ``cached``: the last-resort cache answered.
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    """One step of a chain call.

    Attributes:
        number: 1-based count of real attempts (0 for a skip).
        model: The candidate model.
        outcome: See :data:`AttemptOutcome`.
        error_class: Normalised class of the error (``rate_limit`` ...), if any.
        error: ``ExceptionType: message`` of the error, if any.
        reason: Why the chain did what it did next (``rate_limit``,
            ``circuit_open``, ``deadline`` ...).
        wait_s: The wait before the retry (``Retry-After`` or backoff).
        started_at: Chain clock when the attempt started.
        ended_at: Chain clock when it ended.
    """

    number: int
    model: str
    outcome: AttemptOutcome
    error_class: str | None = None
    error: str | None = None
    reason: str | None = None
    wait_s: float | None = None
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def latency_s(self) -> float:
        """How long the attempt ran (chain clock)."""
        return self.ended_at - self.started_at


class FallbackExhausted(FaremeterError):
    """No candidate could be tried, so there is no provider error to re-raise.

    Attributes:
        attempts: What the chain did (skips with their reasons).
    """

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts: tuple[Attempt, ...] = tuple(attempts)


def attempts_of(error: BaseException) -> tuple[Attempt, ...]:
    """The attempt history a chain attached to ``error`` (empty if none)."""
    if isinstance(error, FallbackExhausted):
        return error.attempts
    found = getattr(error, ATTEMPTS_ATTRIBUTE, ())
    return tuple(found) if isinstance(found, tuple | list) else ()  # pyright: ignore[reportUnknownArgumentType]


def describe_attempts(attempts: Sequence[Attempt]) -> str:
    """One line per attempt, for error notes and logs."""
    lines: list[str] = []
    for a in attempts:
        label = f"#{a.number}" if a.number else "--"
        detail = a.error_class or a.reason or ""
        wait = f" wait {a.wait_s:.3g}s" if a.wait_s else ""
        lines.append(f"{label} {a.model}: {a.outcome}{f' ({detail})' if detail else ''}{wait}")
    return "\n".join(lines)
