"""faremeter for LiteLLM: price and attribute SDK, Router and proxy calls.

``import faremeter_litellm`` does not import LiteLLM (it takes seconds):
:class:`FaremeterLogger` resolves on first access and :func:`instrument`
imports LiteLLM when called.

Example:
    >>> import faremeter_litellm
    >>> handle = faremeter_litellm.instrument(environment="prod")
    >>> litellm.completion(model="gpt-4o", messages=[...], metadata={"user_id": "u1"})
    >>> handle.flush()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from faremeter.context import clean_attributes
from faremeter.error_classes import classify_error
from faremeter.meter import Meter

if TYPE_CHECKING:
    from faremeter_litellm._logger import FaremeterLogger
    from faremeter_litellm.routed import RoutedCompletion
    from faremeter_litellm.routing_strategy import FaremeterRoutingStrategy

__all__ = [
    "FaremeterLogger",
    "FaremeterRoutingStrategy",
    "Instrumentation",
    "RoutedCompletion",
    "classify_error",
    "instrument",
]

# Resolved on first access: each of these imports LiteLLM (seconds).
_LAZY = {
    "FaremeterLogger": "faremeter_litellm._logger",
    "RoutedCompletion": "faremeter_litellm.routed",
    "FaremeterRoutingStrategy": "faremeter_litellm.routing_strategy",
}

_CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
    "service_callback",
)
"""Every list LiteLLM copies a ``litellm.callbacks`` entry into (``function_setup``)."""

_lock = threading.Lock()
_active: Instrumentation | None = None


class Instrumentation:
    """Handle returned by :func:`instrument`: flush, or remove the logger again."""

    def __init__(self, logger: FaremeterLogger) -> None:
        self.logger = logger

    def flush(self, timeout: float = 5.0) -> bool:
        """Flush the meter: an alias of ``meter.flush()``.

        ``meter.flush()`` itself waits for LiteLLM's logging thread to finish
        the calls it set up (sync calls are logged after they returned) and
        closes Router calls whose every attempt failed. Do not call it from
        inside a running event loop; use :meth:`aflush`.

        Returns:
            True when every started call finished and the ledger took it all.
        """
        return self.logger.recorder.meter.flush(timeout)

    async def aflush(self, timeout: float = 5.0) -> bool:
        """:meth:`flush` for async code: drains LiteLLM's async logging worker first."""
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout)
        meter = self.logger.recorder.meter
        return await asyncio.get_running_loop().run_in_executor(None, meter.flush, timeout)

    def uninstrument(self) -> None:
        """Remove the logger from every LiteLLM callback list it was copied into."""
        global _active
        import litellm

        from faremeter_litellm._logger import watch_setup

        watch_setup(self.logger.recorder, False)
        for name in _CALLBACK_LISTS:
            callbacks = getattr(litellm, name, None)
            if isinstance(callbacks, list):
                callbacks[:] = [c for c in callbacks if c is not self.logger]  # pyright: ignore[reportUnknownVariableType]
        with _lock:
            if _active is self:
                _active = None


def instrument(meter: Meter | None = None, **attributes: Any) -> Instrumentation:
    """Register one :class:`FaremeterLogger` in ``litellm.callbacks`` (idempotent).

    Calling it again returns the same handle, re-pointed at ``meter`` and
    ``attributes``, rather than adding a second logger (two would double-count).

    Args:
        meter: Where to record; the process default meter when ``None``.
        **attributes: Attribution stamped on every span.
    """
    global _active
    import litellm

    from faremeter_litellm._logger import FaremeterLogger, watch_setup

    with _lock:
        handle = _active
        if handle is None:
            handle = _active = Instrumentation(FaremeterLogger(meter, **attributes))
        else:
            handle.logger.recorder.calls.meter = meter
            handle.logger.recorder.calls.attributes = clean_attributes(attributes)
        if not any(c is handle.logger for c in litellm.callbacks):
            litellm.callbacks.append(handle.logger)
        watch_setup(handle.logger.recorder, True)
    return handle


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'faremeter_litellm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
