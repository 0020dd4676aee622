"""Flush every open ledger at interpreter exit and on SIGTERM, once per process.

- ``atexit``: every ledger still open is closed (drained) before the
  interpreter tears down; the writer threads are daemons and still run then.
- SIGTERM (what ``docker stop``, Kubernetes and systemd send): the handler is
  installed once, only from the main thread (the only place Python allows),
  and only if the application has not chosen to ignore the signal. It flushes
  every open ledger, then chains: a previous Python handler is called (the
  application keeps its behaviour); otherwise the default action is re-raised
  so the process dies *by* SIGTERM (exit status 143 in a shell), as it would
  have without faremeter. An application that installs its own handler later
  simply replaces ours; its exit still runs the ``atexit`` flush.
- fork: a child gets fresh writers and abandons (without closing) the
  parent's connections, which belong to the parent.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faremeter.ledger.core import Ledger

__all__ = ["SHUTDOWN_FLUSH_TIMEOUT", "open_ledgers", "register"]

logger = logging.getLogger("faremeter.ledger")

SHUTDOWN_FLUSH_TIMEOUT = 20.0
"""Seconds the exit/SIGTERM flush may take (Kubernetes gives 30 s before SIGKILL)."""

_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()
_lock = threading.Lock()
_atexit_done = False
_sigterm_installed = False
_fork_hook_done = False
_previous: Any = None


def open_ledgers() -> list[Ledger]:
    """Ledgers created in this process and not yet garbage-collected."""
    with _lock:
        return list(_ledgers)


def register(ledger: Ledger) -> None:
    """Track ``ledger`` and install the process-wide hooks on first use."""
    global _atexit_done, _fork_hook_done
    with _lock:
        _ledgers.add(ledger)
        if not _atexit_done:
            atexit.register(_close_all)
            _atexit_done = True
        if not _fork_hook_done and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork)
            _fork_hook_done = True
    _install_sigterm()


def _close_all() -> None:
    for ledger in open_ledgers():
        try:
            ledger.close(timeout=SHUTDOWN_FLUSH_TIMEOUT)
        except Exception:
            logger.exception("faremeter ledger: close at exit failed")


def _install_sigterm() -> None:
    global _sigterm_installed, _previous
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_IGN:
            _sigterm_installed = True  # the application chose to ignore it; respect that
            return
        _previous = previous
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        logger.debug("faremeter ledger: could not install a SIGTERM handler", exc_info=True)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    for ledger in open_ledgers():
        try:
            # No wake-ups from a signal handler: the interrupted code may hold
            # the very Event lock a wake-up would take. The writer polls.
            ledger.flush(timeout=SHUTDOWN_FLUSH_TIMEOUT, _nudge=False)
        except Exception:
            logger.exception("faremeter ledger: flush on SIGTERM failed")
    previous = _previous
    if callable(previous):
        handler: Callable[[int, FrameType | None], Any] = previous
        handler(signum, frame)
        return
    # SIG_DFL (or a handler set from C): die by the signal, as without us.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _after_fork() -> None:
    for ledger in list(_ledgers):
        try:
            ledger._after_fork()  # pyright: ignore[reportPrivateUsage]
        except Exception:
            logger.exception("faremeter ledger: reset after fork failed")
