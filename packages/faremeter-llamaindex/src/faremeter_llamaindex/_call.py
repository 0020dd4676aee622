"""One priced LlamaIndex request, and what its events say about it.

A request may span several LlamaIndex spans (``chat`` through ``complete``, an
async stream iterating its sync stream): they share one :class:`Call`. Each
event handler returns whether the call is now complete, so the recorder ends
it exactly once, when its span has exited and every start event met its end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faremeter.estimate import estimate_usage
from faremeter.normalize import safe_parse_usage
from faremeter.spans import SpanKind
from faremeter.usage import Usage
from faremeter_llamaindex._payloads import get, model_of, usage_of

if TYPE_CHECKING:
    from faremeter.calls import CallTracker

__all__ = ["Call", "event_routes"]

_USAGE_KEYS = ("usage", "usage_metadata", "usageMetadata")


class Call:
    """Accounting of one request between its first span's enter and its last event.

    Args:
        key: The tracker key (the LlamaIndex span id of the outermost span).
        kind: LLM or embedding.
        model: The model the instance is configured with, if it says.
    """

    __slots__ = (
        "error",
        "exited",
        "ids",
        "key",
        "kind",
        "model",
        "open",
        "reply",
        "stream",
        "usage",
    )

    def __init__(self, key: str, kind: SpanKind, model: str | None) -> None:
        self.key = key
        self.kind = kind
        self.model = model
        self.open = 0  # start events without their end event yet
        self.exited = False  # the outermost span exited
        self.error: BaseException | str | None = None
        self.usage: Usage | None = None  # reported (first wins) or summed embedding usage
        self.reply: Any = None  # the first response (a stream's last chunk)
        self.ids: list[str] = []  # exited span ids kept for late events
        self.stream: tuple[int, int] | None = None  # (instance, argument) of an async stream

    def on_start(self, event: Any, tracker: CallTracker) -> bool:
        self.open += 1
        if self.model is None:
            self.model = model_of(event.model_dict)
        return False

    def on_end(self, event: Any, tracker: CallTracker) -> bool:
        response = event.response
        if self.usage is None:
            usage = usage_of(response)
            if usage is not None:
                self.usage = usage
                model = get(get(response, "raw"), "model")  # the snapshot that answered
                if isinstance(model, str) and model:
                    self.model = model
        if self.reply is None:
            self.reply = response
        if self.open:
            self.open -= 1
        return self.exited and not self.open

    def on_chunk(self, event: Any, tracker: CallTracker) -> bool:
        response = event.response
        raw = get(response, "raw")
        if raw and any(get(raw, k) is not None for k in _USAGE_KEYS):
            self.usage = usage_of(response, chunk=True) or self.usage
        if event.span_id == self.key:  # a folded stream's chunks are seen twice: once
            delta = get(response, "delta")
            if isinstance(delta, str) and delta:
                tracker.note(self.key, text=delta)  # what an abandoned stream showed
        return False

    def on_exception(self, event: Any, tracker: CallTracker) -> bool:
        self.error = get(event, "exception") or "stream failed"
        if self.exited:
            self.open = 0
        return self.exited

    def on_embedding_end(self, event: Any, tracker: CallTracker) -> bool:
        usage = safe_parse_usage(get(event, "usage"), where="llamaindex")
        if usage is None:  # embeddings have no reply to reconcile: estimate the input here
            chunks = [c for c in event.chunks or () if isinstance(c, str)]
            usage = estimate_usage(self.model, "".join(chunks), ())
        self.usage = usage if self.usage is None else self.usage + usage
        if self.open:
            self.open -= 1
        return self.exited and not self.open


def event_routes() -> dict[type, Callable[[Call, Any, CallTracker], bool]]:
    """Event class → the :class:`Call` method it updates (exact classes: one dict lookup)."""
    from llama_index.core.instrumentation.events import embedding, exception, llm

    return {
        llm.LLMChatStartEvent: Call.on_start,
        llm.LLMCompletionStartEvent: Call.on_start,
        llm.LLMChatEndEvent: Call.on_end,
        llm.LLMCompletionEndEvent: Call.on_end,
        llm.LLMChatInProgressEvent: Call.on_chunk,
        llm.LLMCompletionInProgressEvent: Call.on_chunk,
        embedding.EmbeddingStartEvent: Call.on_start,
        embedding.EmbeddingEndEvent: Call.on_embedding_end,
        exception.ExceptionEvent: Call.on_exception,
    }
