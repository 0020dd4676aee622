"""The handle of a ``with meter.trace(...)`` / ``with meter.span(...)`` block."""

from __future__ import annotations

from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from faremeter.context import activate, deactivate
from faremeter.cost import tidy
from faremeter.errors import BudgetExceeded
from faremeter.spans import SpanStatus
from faremeter.tree import TraceTree

if TYPE_CHECKING:
    import contextvars

    from faremeter.meter import Meter
    from faremeter.open_span import OpenSpan

__all__ = ["SpanScope"]


class SpanScope:
    """The handle a ``with meter.trace(...)`` / ``with meter.span(...)`` block gets.

    Usable as a sync or async context manager. Exceptions from the body are
    recorded on the span (status ``error``) and re-raised unchanged.
    """

    __slots__ = ("_kw", "_meter", "_new_trace", "_token", "span")

    def __init__(self, meter: Meter, new_trace: bool, kw: dict[str, Any]) -> None:
        self._meter = meter
        self._new_trace = new_trace
        self._kw = kw
        self._token: contextvars.Token[OpenSpan | None] | None = None
        self.span: OpenSpan | None = None

    # -- context manager protocol -------------------------------------------------
    def __enter__(self) -> SpanScope:
        self.span = self._meter.start_span(new_trace=self._new_trace, **self._kw)
        if self._new_trace:
            self.span.trace.root = self.span
        self._token = activate(self.span)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            deactivate(self._token)
            self._token = None
        if self.span is not None:
            if exc is None:
                self.span.end()
            elif isinstance(exc, BudgetExceeded):
                self.span.end(status=SpanStatus.DENIED, error=exc, error_class="budget")
            else:
                self.span.end(status=SpanStatus.ERROR, error=exc)

    async def __aenter__(self) -> SpanScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- handle -------------------------------------------------------------------
    def _open(self) -> OpenSpan:
        if self.span is None:
            raise RuntimeError("enter the block before using its handle")
        return self.span

    @property
    def trace_id(self) -> str:
        """The trace this block records into."""
        return self._open().trace_id

    @property
    def span_id(self) -> str:
        """The block's own span."""
        return self._open().span_id

    @property
    def cost(self) -> Decimal:
        """Running total of everything priced so far in this block's subtree.

        For a trace block that is the whole trace. Unpriced spans are not in
        it; :attr:`unpriced` counts them.
        """
        span = self._open()
        if self._new_trace:
            return tidy(span.trace.cost)
        node = self.tree().find_span(span.span_id)
        return tidy(node.total_cost) if node else Decimal(0)

    @property
    def pending(self) -> int:
        """Spans of this trace started and not finished yet (calls still in flight).

        Non-zero after the block means :attr:`cost` is not final yet: LiteLLM
        ends sync calls on its logging thread, streams end when drained.
        ``meter.flush()`` waits for them.
        """
        return self._open().trace.pending

    @property
    def unpriced(self) -> int:
        """Spans in the trace that could not be priced (unknown model or tool)."""
        return self._open().trace.unpriced

    def tree(self) -> TraceTree:
        """The trace so far, with direct, child and total cost per span."""
        return self._open().trace.tree()

    def set_attributes(self, **attrs: Any) -> None:
        """Add attribution to this block's span."""
        self._open().set_attributes(**attrs)
