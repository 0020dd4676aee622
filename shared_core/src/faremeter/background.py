"""Helpers for faremeter's own background threads (ledger writer, alerts, anomaly monitor)."""

from __future__ import annotations

import logging
import signal

__all__ = ["leave_signals_to_the_main_thread"]

logger = logging.getLogger("faremeter")


_PROCESS_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")


def leave_signals_to_the_main_thread() -> None:
    """Block process signals in the calling thread, so the kernel delivers them to the main one.

    A process-directed signal may be delivered to any thread that does not
    block it. Delivered to one of faremeter's threads, a SIGTERM would not interrupt
    the main thread's ``time.sleep()`` or ``select()``: Python would run the
    app's handler (and faremeter's flush) only when that call returns — a
    minute late for a worker sleeping between jobs.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: signals go to the main thread anyway
        return
    wanted = {getattr(signal, name) for name in _PROCESS_SIGNALS if hasattr(signal, name)}
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    except (OSError, ValueError):  # pragma: no cover - an exotic platform
        logger.debug("faremeter: could not block signals in a background thread", exc_info=True)
