"""Joining OpenTelemetry traces in both directions.

faremeter → OTel context (*join*): a ``meter.trace(...)`` opened inside an
application's OTel span should be part of that trace, so the request span in
Jaeger shows the agent run under it. :class:`OtelTraceIds` is an id generator
for ``meter.ids`` that hands out the enclosing OTel span's trace id for a new
faremeter trace and remembers which OTel span was the parent of that root, for
the exporter to parent it correctly.

OTel ← faremeter (*nest*): spans other instrumentations create while a
faremeter span is open (an ``httpx`` span, OpenLLMetry's ``openai.chat``)
should nest under it. :func:`on_activate` / :func:`on_deactivate` make the
current faremeter span the current OTel span (a non-recording stand-in with
the same ids) while it is active; the exporter registers them with the core's
span-activation hook. :func:`activate_in_otel` does the same for one span by
hand.

Several faremeter traces opened inside one application span share its trace
id, as OTel's own spans do: one request is one trace. Their ledger rows then
share a ``trace_id``; each run's own cost is still its ``t.cost``.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from cachetools import LRUCache
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from faremeter.context import current_span
from faremeter.spans import SpanKind, new_span_id, new_trace_id

if TYPE_CHECKING:
    from faremeter.ids import IdGenerator
    from faremeter.open_span import OpenSpan

__all__ = [
    "FaremeterOtelSpan",
    "OtelTraceIds",
    "activate_in_otel",
    "on_activate",
    "on_deactivate",
    "span_context_of",
]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class FaremeterOtelSpan(NonRecordingSpan):
    """An open faremeter span standing in as the current OTel span.

    Non-recording: faremeter exports the real span itself when it ends. The
    ``kind`` lets the GenAI span processor see that a faremeter model call is
    already recording the request a third-party span describes.
    """

    def __init__(self, context: SpanContext, kind: SpanKind) -> None:
        super().__init__(context)
        self.faremeter_kind = kind


def span_context_of(trace_id: str, span_id: str, flags: TraceFlags = _SAMPLED) -> SpanContext:
    """The OTel ``SpanContext`` of a faremeter span (its ids are already W3C hex)."""
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=flags)


def activate_in_otel(span: OpenSpan) -> Callable[[], None]:
    """Make ``span`` the current OTel span; call the returned function to undo.

    Meant for the core's span-activation hook: spans other instrumentations
    start inside then carry faremeter's trace id and this span as parent.
    """
    stand_in = FaremeterOtelSpan(span_context_of(span.trace_id, span.span_id), span.kind)
    token = otel_context.attach(otel_trace.set_span_in_context(stand_in))

    def undo() -> None:
        otel_context.detach(token)  # logs (never raises) if detached in another context

    return undo


_MAX_DEPTH = 256
_previous: contextvars.ContextVar[tuple[otel_context.Context, ...]] = contextvars.ContextVar(
    "faremeter_otel_previous", default=()
)


def on_activate(span: OpenSpan | None) -> None:
    """Core activation hook: the newly current faremeter span becomes the current OTel span.

    The OTel context in force before is pushed on a context-local stack that
    :func:`on_deactivate` pops, so an application span opened and closed in
    between is restored correctly and nothing depends on OTel detach tokens
    (which fail when a framework ends a span in another context).
    """
    previous = otel_context.get_current()
    stack = _previous.get()
    if len(stack) >= _MAX_DEPTH:  # activations never undone in this context: stay bounded
        stack = stack[1:]
    _previous.set((*stack, previous))
    if span is not None:
        stand_in = FaremeterOtelSpan(span_context_of(span.trace_id, span.span_id), span.kind)
        otel_context.attach(otel_trace.set_span_in_context(stand_in, previous))


def on_deactivate() -> None:
    """Core deactivation hook: restore the OTel context of before the matching activation."""
    stack = _previous.get()
    if not stack:
        return
    _previous.set(stack[:-1])
    otel_context.attach(stack[-1])


class _Pending(threading.local):
    parent: SpanContext | None = None


class OtelTraceIds:
    """Trace ids that join the enclosing OpenTelemetry trace.

    Install as ``meter.ids`` (``faremeter.export.otel.instrument`` does).
    Outside any OTel span, or inside a faremeter trace (one of faremeter's own
    stand-ins, or another instrumentation's span nested in a faremeter trace:
    a trace nested in a faremeter trace stays its own trace, linked by its
    ``parent_trace_id`` attribute), ids come from ``inner``.

    Args:
        inner: Where ids come from otherwise (the meter's previous generator).
        max_pending: Bound on remembered root parents; roots that never end
            (a crashed run) cannot grow memory past it.
    """

    def __init__(self, inner: IdGenerator | None = None, *, max_pending: int = 10_000) -> None:
        self.inner = inner
        self._pending = _Pending()
        self._lock = threading.Lock()
        self._root_parents: LRUCache[str, SpanContext] = LRUCache(maxsize=max_pending)
        self._trace_flags: LRUCache[str, TraceFlags] = LRUCache(maxsize=max_pending)

    def trace_id(self) -> str:
        """The enclosing OTel span's trace id, else a fresh one."""
        current = otel_trace.get_current_span()
        context = current.get_span_context()
        if context.is_valid and not isinstance(current, FaremeterOtelSpan):
            trace_id = f"{context.trace_id:032x}"
            enclosing = current_span()
            if enclosing is not None and enclosing.trace_id == trace_id:
                # An OTel span inside a faremeter trace (nested there through
                # the activation hook): a trace opened here is a nested
                # faremeter trace, which keeps an id of its own.
                self._pending.parent = None
                return self.inner.trace_id() if self.inner is not None else new_trace_id()
            # The core asks for the root's span id right after the trace id,
            # on this thread: that span id claims the parent (see span_id).
            self._pending.parent = context
            with self._lock:
                self._trace_flags[trace_id] = context.trace_flags
            return trace_id
        self._pending.parent = None
        return self.inner.trace_id() if self.inner is not None else new_trace_id()

    def span_id(self) -> str:
        """A fresh span id (claiming a pending OTel parent for a new root)."""
        span_id = self.inner.span_id() if self.inner is not None else new_span_id()
        parent = self._pending.parent
        if parent is not None:
            self._pending.parent = None
            with self._lock:
                self._root_parents[span_id] = parent
        return span_id

    def pop_root_parent(self, span_id: str) -> SpanContext | None:
        """The OTel span a faremeter root ``span_id`` was opened in (once)."""
        with self._lock:
            return self._root_parents.pop(span_id, None)

    def joined_flags(self, trace_id: str) -> TraceFlags | None:
        """The joined OTel trace's flags (its sampling decision), if it was joined."""
        with self._lock:
            return self._trace_flags.get(trace_id)
