"""Whether a model call a faremeter adapter records is running *here*, right now.

The GenAI span processor must not price a provider SDK's span a second time
when an adapter already records the same request. Most adapters make their
call's span the current span for exactly the call's duration, and the
processor sees that. An adapter whose framework offers no hook pair that
brackets the provider request on every path cannot: a span made current and
never reset would parent the caller's later calls. Such an adapter registers a
*probe* here instead: a cheap function answering "is one of my framework's
calls running on this stack right now?" (LiteLLM's asks whether a frame of
LiteLLM's own call wrapper is on the stack: it is exactly while the call runs,
on every path, and disappears when it returns or raises).

The core imports no framework: adapters register, exporters ask.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["add_call_probe", "inside_adapter_call"]

logger = logging.getLogger("faremeter")

_probes: tuple[Callable[[], bool], ...] = ()
_lock = threading.Lock()


def add_call_probe(probe: Callable[[], bool]) -> Callable[[], None]:
    """Register ``probe``; returns the remover (idempotent).

    Args:
        probe: Called with no arguments in the context (thread, task, stack)
            being asked about; True when a call its adapter records is in
            progress there. It must be cheap (it runs at the start of every
            span other instrumentations make) and should not raise; an
            exception counts as False and is logged at debug level.
    """
    global _probes
    with _lock:
        _probes = (*_probes, probe)

    removed = False

    def remove() -> None:
        global _probes
        nonlocal removed
        with _lock:
            if removed:
                return
            removed = True
            # Identity, not equality; one registration, even if ``probe`` has several.
            index = next((i for i, p in enumerate(_probes) if p is probe), None)
            if index is not None:
                _probes = _probes[:index] + _probes[index + 1 :]

    return remove


def inside_adapter_call() -> bool:
    """True when a registered probe says an adapter's model call is running here."""
    probes = _probes
    if not probes:
        return False
    for probe in probes:
        try:
            if probe():
                return True
        except Exception:
            logger.debug("faremeter: call probe %r failed", probe, exc_info=True)
    return False
