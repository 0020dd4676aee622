"""faremeter for LlamaIndex: price agents, workflows, LLM and embedding calls.

One call, ``faremeter_llamaindex.instrument()``, registers a span handler and an
event handler on LlamaIndex's root instrumentation dispatcher. Every LLM call,
embedding, retrieval and tool call of query engines, ``FunctionAgent`` /
``ReActAgent`` / ``AgentWorkflow`` runs and custom workflows is then priced and
placed in the run tree. The legacy callback system (``TokenCountingHandler``)
is not used: it misses agent structure, double-counts a ``chat`` implemented
through ``complete`` and counts every model with a gpt-3.5 tokenizer.

The handlers only translate LlamaIndex's spans and events; pricing, usage
estimation, error classes and stream sweeping are the core's
(:class:`faremeter.calls.CallTracker`). LlamaIndex swallows exceptions raised
by handlers, so budgets cannot stop a call from here: a denial is recorded,
and enforcement belongs in the routed LLM.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index_instrumentation import get_dispatcher  # what llama_index.core re-exports
from pydantic import ConfigDict, Field

from faremeter import BudgetExceeded, Meter
from faremeter.calls import CallTracker, log_fault, safe_hook
from faremeter.instrumentation import Instrumentation, InstrumentationRegistry
from faremeter_llamaindex._cache import cached_function_tool
from faremeter_llamaindex._recorder import Recorder
from faremeter_llamaindex._routed import ROUTED_MODEL_KEY, RoutedLLM

__all__ = [
    "ROUTED_MODEL_KEY",
    "FaremeterEventHandler",
    "FaremeterSpanHandler",
    "LlamaIndexInstrumentation",
    "RoutedLLM",
    "cached_function_tool",
    "instrument",
]

logger = logging.getLogger("faremeter.llamaindex")

_WHERE = "llamaindex"


class FaremeterSpanHandler(BaseSpanHandler[SimpleSpan]):
    """Turns LlamaIndex span enter/exit/drop into faremeter calls.

    Overrides the entry points directly (instead of ``new_span``) so the hot
    path builds no pydantic span object and keeps no ``open_spans`` entry;
    :meth:`close` records what is still open instead.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    recorder: Any = Field(default=None, exclude=True)

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "FaremeterSpanHandler"

    # The hooks every call runs catch inline (log_fault) instead of paying
    # safe_hook's wrapper frame: same rule, a budget denial still propagates.
    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Start (or fold, or collapse) the span."""
        try:
            self.recorder.enter(id_, instance, parent_id, bound_args.arguments)
        except BudgetExceeded:
            raise
        except Exception as exc:
            log_fault(_WHERE, "span_enter", exc)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span (a stream's call waits for its end event)."""
        try:
            self.recorder.exit(id_, result)
        except BudgetExceeded:
            raise
        except Exception as exc:
            log_fault(_WHERE, "span_exit", exc)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span as an error; the exception itself propagates untouched."""
        try:
            self.recorder.exit(id_, None, err if err is not None else RuntimeError("dropped"))
        except BudgetExceeded:
            raise
        except Exception as exc:
            log_fault(_WHERE, "span_drop", exc)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        """Unused: :meth:`span_enter` is overridden."""
        return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        """Unused: :meth:`span_exit` is overridden."""
        return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        """Unused: :meth:`span_drop` is overridden."""
        return None

    @safe_hook(_WHERE)
    def close(self) -> None:
        """Called by ``Dispatcher.shutdown()``: record what is still waiting."""
        self.recorder.close()


class FaremeterEventHandler(BaseEventHandler):
    """Reads usage, replies and stream progress from LlamaIndex events."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    recorder: Any = Field(default=None, exclude=True)

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "FaremeterEventHandler"

    def handle(self, event: Any, **kwargs: Any) -> None:
        """Route the event to the call it belongs to."""
        try:
            self.recorder.event(event)
        except BudgetExceeded:
            raise
        except Exception as exc:
            log_fault(_WHERE, "handle", exc)


class LlamaIndexInstrumentation(Instrumentation):
    """The handle :func:`instrument` returns.

    Usable as a context manager: ``with instrument(meter): ...`` uninstruments
    on exit, which is what tests want.

    Args:
        meter: Where to record (``None``: the process meter, per call).
        attributes: Default attribution of every span.
        stream_ttl_s: How long a stream nobody drains is waited for before it
            is recorded with what it showed.
    """

    def __init__(
        self, meter: Meter | None, attributes: dict[str, Any], *, stream_ttl_s: float = 600.0
    ) -> None:
        super().__init__()
        self.meter = meter
        self.attributes = attributes
        self.tracker = CallTracker(
            meter, attributes=attributes, where=_WHERE, stream_ttl_s=stream_ttl_s
        )
        self.recorder = Recorder(self.tracker)
        self.span_handler = FaremeterSpanHandler(self.recorder)
        self.event_handler = FaremeterEventHandler(self.recorder)

    def _install(self) -> None:
        dispatcher = get_dispatcher()
        # Rebind rather than mutate: the dispatcher may be iterating the lists.
        span_handlers: list[Any] = dispatcher.span_handlers  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        dispatcher.span_handlers = [*span_handlers, self.span_handler]
        dispatcher.event_handlers = [*dispatcher.event_handlers, self.event_handler]

    def _uninstall(self) -> None:
        """Remove both handlers and record what was still open.

        Streams still waiting for their end event are recorded with what they
        showed (the core estimates what was not reported).
        """
        _registry.discard(self)
        dispatcher = get_dispatcher()
        span_handlers: list[Any] = dispatcher.span_handlers  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        dispatcher.span_handlers = [h for h in span_handlers if h is not self.span_handler]
        dispatcher.event_handlers = [
            h for h in dispatcher.event_handlers if h is not self.event_handler
        ]
        try:
            self.recorder.close()
        except Exception:
            logger.exception("faremeter: closing the LlamaIndex recorder failed")


_registry: InstrumentationRegistry[LlamaIndexInstrumentation] = InstrumentationRegistry()


def instrument(meter: Meter | None = None, **attributes: Any) -> LlamaIndexInstrumentation:
    """Price and trace everything LlamaIndex does from now on.

    Args:
        meter: Where to record; by default the process meter
            (:func:`faremeter.get_meter`, resolved per call so
            :func:`faremeter.set_meter` takes effect).
        **attributes: Default attribution for every span recorded here
            (e.g. ``environment="prod"``); ``faremeter.attributes(...)`` and an
            enclosing ``meter.trace(...)`` take precedence.

    Returns:
        A handle whose ``uninstrument()`` removes the handlers. Calling
        ``instrument()`` again for the same meter while it is active returns
        the same handle (the new ``attributes`` are ignored, with a warning),
        so nothing is ever recorded twice.

    Example:
        >>> import faremeter, faremeter_llamaindex
        >>> faremeter_llamaindex.instrument(faremeter.Meter(), environment="prod")
    """
    handle, created = _registry.ensure(
        meter, lambda: LlamaIndexInstrumentation(meter, dict(attributes))
    )
    if not created and attributes and attributes != handle.attributes:
        logger.warning(
            "faremeter: LlamaIndex is already instrumented for this meter; "
            "call uninstrument() first to change its attributes"
        )
    return handle
