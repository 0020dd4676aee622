"""Hand a routed call's budget reservation to the priced model call inside it.

A routed model (``RoutedLLM``, ``RoutedCompletion``, the LiteLLM routing
strategy) reserves the call's estimate *before* anything is sent — that is how
a ``deny`` budget can refuse it and a ``degrade`` budget can re-route it. The
framework's instrumented call underneath would reserve the same request a
second time (and with a cruder worst case: LlamaIndex does not report the
output cap). Instead it *adopts* the admission: :func:`take_admission`
returns the reservation to settle to the call's real cost, once.

This module is imported by the call lifecycle (:mod:`faremeter.calls`) only
when budgets are configured, so it stays dependency-free.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

__all__ = ["Admission", "admitted", "offer", "take_admission"]


class Admission:
    """One reservation waiting for the first priced model call to adopt it."""

    __slots__ = ("_lock", "reservation", "taken")

    def __init__(self, reservation: Any) -> None:
        self.reservation = reservation
        self.taken = False
        self._lock = threading.Lock()

    def take(self) -> Any:
        """The reservation, for the first caller only (``None`` afterwards)."""
        with self._lock:
            if self.taken:
                return None
            self.taken = True
            return self.reservation

    def release_unclaimed(self) -> None:
        """Release the reservation if no priced call adopted it (nothing ran, or uninstrumented)."""
        reservation = self.take()
        if reservation is None:
            return
        try:
            reservation.release()
        except Exception:  # a store fault after the call must not fail it
            import logging

            logging.getLogger("faremeter").exception("faremeter: releasing a reservation failed")


_current: contextvars.ContextVar[Admission | None] = contextvars.ContextVar(
    "faremeter_admission", default=None
)


@contextmanager
def admitted(admission: Admission | None) -> Generator[None]:
    """Offer ``admission`` to the priced call made inside the block."""
    token = _current.set(admission)
    try:
        yield
    finally:
        _current.reset(token)


def offer(reservation: Any) -> Admission:
    """Offer ``reservation`` to the next priced call in this context (a request's task).

    For hooks that reserve before a request is routed but cannot wrap the call
    in a ``with`` block (the LiteLLM proxy's pre-call hook): the offer lasts
    for the rest of the current context, and the first priced call adopts it.
    """
    admission = Admission(reservation)
    _current.set(admission)
    return admission


def take_admission() -> Any:
    """The reservation of the enclosing routed call, if one is waiting (else ``None``).

    The call lifecycle calls this where a model call would reserve its own
    estimate; a non-``None`` result is that call's reservation.
    """
    admission = _current.get()
    return admission.take() if admission is not None else None
