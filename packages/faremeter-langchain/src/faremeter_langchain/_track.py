"""``with track(...)``: meter every LangChain run in a block, no wiring.

LangChain's ``get_usage_metadata_callback`` registers a *new* context variable
in the process-global configure-hook list on every call, so a long-lived
process grows that list forever (langchain #32300). Here one variable is
registered once, at import; entering a block sets it, leaving resets it (in
``finally``), so nothing stays attached after the block, even when it raises.
"""

from __future__ import annotations

import contextvars
from contextlib import ExitStack
from decimal import Decimal
from types import TracebackType
from typing import Any

from langchain_core.tracers.context import register_configure_hook

import faremeter
from faremeter import Meter, SpanScope
from faremeter_langchain._handler import FaremeterCallbackHandler

__all__ = ["Tracking", "track"]

_active: contextvars.ContextVar[FaremeterCallbackHandler | None] = contextvars.ContextVar(
    "faremeter_langchain_handler", default=None
)
# handle_class makes LangChain skip ours when the run already carries a
# FaremeterCallbackHandler (passed explicitly), so nothing is recorded twice.
register_configure_hook(_active, True, FaremeterCallbackHandler)


class Tracking:
    """The block returned by :func:`track`; a sync and async context manager.

    Attributes:
        handler: The handler attached to every run inside the block.
        scope: The trace opened by ``trace=...``, else ``None``.
    """

    def __init__(self, meter: Meter | None, trace: str | None, attributes: dict[str, Any]) -> None:
        self._meter = meter
        self._trace = trace
        self._attributes = attributes
        self.handler = FaremeterCallbackHandler(meter)
        self.scope: SpanScope | None = None
        self._stack: ExitStack | None = None

    @property
    def cost(self) -> Decimal | None:
        """The block's trace cost so far (only with ``trace=``)."""
        return self.scope.cost if self.scope is not None else None

    def __enter__(self) -> Tracking:
        with ExitStack() as stack:
            stack.enter_context(faremeter.attributes(**self._attributes))
            if self._trace is not None:
                meter = self._meter or faremeter.get_meter()
                self.scope = stack.enter_context(meter.trace(self._trace))
            token = _active.set(self.handler)
            stack.callback(_active.reset, token)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Tracking:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def track(meter: Meter | None = None, *, trace: str | None = None, **attributes: Any) -> Tracking:
    """Meter every LangChain / LangGraph run started inside the block.

    Example:
        >>> with track(user_id="u1", workflow="support"):
        ...     graph.invoke(inputs)
        >>> async with track(trace="nightly-batch") as t:
        ...     await chain.abatch(items)
        >>> t.cost

    Args:
        meter: Where spans go; the process default meter when omitted.
        trace: Open one trace of this name around the block, so every run
            inside is part of it (``t.cost`` is its running total). Without
            it each top-level run is its own trace.
        **attributes: Attribution for everything recorded inside the block
            (through :func:`faremeter.attributes`, so other frameworks'
            spans in the block get it too).
    """
    return Tracking(meter, trace, attributes)
