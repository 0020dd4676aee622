"""faremeter for LlamaIndex: price agents, workflows, LLM and embedding calls.

One call, ``faremeter_llamaindex.instrument()``, registers a span handler and an
event handler on LlamaIndex's root instrumentation dispatcher. Every LLM call,
embedding, retrieval and tool call of query engines, ``FunctionAgent`` /
``ReActAgent`` / ``AgentWorkflow`` runs and custom workflows is then priced and
placed in the run tree. The legacy callback system (``TokenCountingHandler``)
is not used: it misses agent structure, double-counts a ``chat`` implemented
through ``complete`` and counts every model with a gpt-3.5 tokenizer.

LlamaIndex swallows exceptions raised by handlers, so budgets cannot be
enforced here: enforce them in the routed LLM.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from pathlib import Path
from typing import Any

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index_instrumentation import get_dispatcher  # what llama_index.core re-exports
from pydantic import ConfigDict, Field

from faremeter import Meter
from faremeter.estimate import count_tokens
from faremeter_llamaindex._recorder import Recorder

__all__ = [
    "FaremeterEventHandler",
    "FaremeterSpanHandler",
    "LlamaIndexInstrumentation",
    "instrument",
]

logger = logging.getLogger("faremeter.llamaindex")

_registry: dict[int | None, LlamaIndexInstrumentation] = {}
_registry_lock = threading.Lock()


class FaremeterSpanHandler(BaseSpanHandler[SimpleSpan]):
    """Turns LlamaIndex span enter/exit/drop into faremeter spans.

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

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Start (or fold, or collapse) the span; never raises into LlamaIndex."""
        try:
            self.recorder.enter(id_, instance, parent_id)
        except Exception:
            logger.exception("faremeter: recording LlamaIndex span %s failed", id_)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span (a stream's LLM span waits for its end event)."""
        try:
            self.recorder.exit(id_, result)
        except Exception:
            logger.exception("faremeter: ending LlamaIndex span %s failed", id_)

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
        except Exception:
            logger.exception("faremeter: dropping LlamaIndex span %s failed", id_)

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

    def close(self) -> None:
        """Called by ``Dispatcher.shutdown()``: record what is still waiting."""
        try:
            self.recorder.close()
        except Exception:
            logger.exception("faremeter: closing the LlamaIndex recorder failed")


class FaremeterEventHandler(BaseEventHandler):
    """Reads model, usage and stream progress from LlamaIndex events."""

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
        """Route the event; faremeter's own faults are logged, never raised."""
        try:
            self.recorder.event(event)
        except Exception:
            logger.exception("faremeter: handling LlamaIndex event %s failed", type(event).__name__)


class LlamaIndexInstrumentation:
    """The handle :func:`instrument` returns.

    Usable as a context manager: ``with instrument(meter): ...`` uninstruments
    on exit, which is what tests want.
    """

    def __init__(self, meter: Meter | None, attributes: dict[str, Any]) -> None:
        self.recorder = Recorder(meter, attributes)
        self.span_handler = FaremeterSpanHandler(self.recorder)
        self.event_handler = FaremeterEventHandler(self.recorder)
        self.meter = meter
        self.active = False

    def _install(self) -> None:
        dispatcher = get_dispatcher()
        # Rebind rather than mutate: the dispatcher may be iterating the lists.
        span_handlers: list[Any] = dispatcher.span_handlers  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        dispatcher.span_handlers = [*span_handlers, self.span_handler]
        dispatcher.event_handlers = [*dispatcher.event_handlers, self.event_handler]
        self.active = True

    def uninstrument(self) -> None:
        """Remove both handlers from the dispatcher and record what was still open.

        Idempotent. Streams still waiting for their end event are recorded
        with what is known (estimated usage if none was reported).
        """
        with _registry_lock:
            if _registry.get(_key(self.meter)) is self:
                del _registry[_key(self.meter)]
        if not self.active:
            return
        self.active = False
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

    def __enter__(self) -> LlamaIndexInstrumentation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstrument()


def _warm_tokenizers() -> None:
    """Let faremeter's estimator use the tiktoken files LlamaIndex ships.

    tiktoken downloads its encodings on first use, so offline the estimator
    falls back to a heuristic. llama-index-core bundles ``cl100k_base`` and
    ``o200k_base`` and points tiktoken at them only while it loads its own
    tokenizer; we do the same once, so OpenAI-family models are estimated with
    their real tokenizer (other families keep the heuristic).
    """
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return
    import llama_index.core

    cache = Path(llama_index.core.__file__).parent / "_static" / "tiktoken_cache"
    if not cache.is_dir():
        return
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        count_tokens("warm up", "gpt-4o")
        count_tokens("warm up", "gpt-4")
    except Exception:
        logger.debug("faremeter: could not load the bundled tiktoken encodings", exc_info=True)
    finally:
        os.environ.pop("TIKTOKEN_CACHE_DIR", None)


def _key(meter: Meter | None) -> int | None:
    return None if meter is None else id(meter)


def instrument(meter: Meter | None = None, **attributes: Any) -> LlamaIndexInstrumentation:
    """Price and trace everything LlamaIndex does from now on.

    Args:
        meter: Where to record; by default the process meter
            (:func:`faremeter.get_meter`, resolved per trace so
            :func:`faremeter.set_meter` takes effect).
        **attributes: Default attribution for every trace started here
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
    with _registry_lock:
        existing = _registry.get(_key(meter))
        if existing is not None and existing.active:
            if attributes and attributes != existing.recorder.attributes:
                logger.warning(
                    "faremeter: LlamaIndex is already instrumented for this meter; "
                    "call uninstrument() first to change its attributes"
                )
            return existing
        _warm_tokenizers()
        handle = LlamaIndexInstrumentation(meter, dict(attributes))
        handle._install()  # pyright: ignore[reportPrivateUsage]
        _registry[_key(meter)] = handle
        return handle
