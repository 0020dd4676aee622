"""Translate LlamaIndex instrumentation spans and events into faremeter spans.

LlamaIndex reports structure and money on two channels: span enter/exit/drop
(the tree, by ``parent_id``) and events (``LLMChatStartEvent`` carries the
model, ``LLMChatEndEvent`` the usage), correlated by ``event.span_id``. The
:class:`Recorder` joins them. Three things make that harder than it looks:

* A streamed call's span exits when the generator is *returned*; its end event
  (with the usage) comes after the consumer drains it. The call therefore stays
  open until every start event it saw has an end event, or until a deadline.
* ``MockLLM.chat`` calls ``self.complete`` (``completion_to_chat_decorator``):
  one request, two LLM spans, two end events. LLM/embedding spans nested in a
  span of the *same instance* are folded into the outer one and priced once;
  a wrapper LLM around *another* instance keeps its child spans and drops its
  own usage when it merely repeats theirs.
* Dozens of plumbing spans (prompt formatting, node parsing, workflow steps)
  would bury the priced calls. They are collapsed: their children attach to
  the nearest kept ancestor, and a workflow step's name becomes the default
  ``step`` attribute of what happens inside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from faremeter import Meter, OpenSpan, SpanKind, SpanStatus, Usage, current_attributes
from faremeter.context import activate, current_span, deactivate
from faremeter.estimate import count_tokens, estimate_usage
from faremeter.meter import get_meter
from faremeter.normalize import safe_parse_usage

logger = logging.getLogger("faremeter.llamaindex")

_WHERE = "llamaindex"
_LLM_METHODS = frozenset(
    {"chat", "achat", "stream_chat", "astream_chat"}
    | {"complete", "acomplete", "stream_complete", "astream_complete"}
)
_EMBED_METHODS = frozenset(
    {"get_query_embedding", "aget_query_embedding", "get_text_embedding"}
    | {"aget_text_embedding", "get_text_embedding_batch", "aget_text_embedding_batch"}
)
_CALL_KINDS = (SpanKind.LLM, SpanKind.EMBEDDING)
_USAGE_KEYS = ("usage", "usage_metadata", "usageMetadata")


class _Call:
    """Accounting of one priced request (an LLM or embedding call), possibly folded.

    Lives from the outermost span's enter until that span has exited *and*
    every start event has met its end event (streams end after the exit).
    """

    __slots__ = (
        "child_usages",
        "deadline",
        "error",
        "exited",
        "fields",
        "ids",
        "last_chunk",
        "model",
        "open_starts",
        "outer",
        "parked",
        "prompt",
        "reply",
        "span",
        "usage",
    )

    def __init__(self, span: OpenSpan, outer: _Call | None) -> None:
        self.span = span
        self.outer = outer  # an enclosing LLM call of another instance (a wrapper)
        self.model: str | None = None
        self.usage: Usage | None = None  # reported usage (first wins) or embedding sum
        self.prompt: Any = None  # messages or prompt of the first end (or start) event
        self.reply: Any = None  # response of the first end event
        self.last_chunk: Any = None  # last streamed chunk, for abandoned streams
        self.open_starts = 0
        self.exited = False
        self.error: BaseException | str | None = None
        self.ids: list[str] = []  # LlamaIndex span ids kept alive for late events
        self.child_usages: list[Usage] = []
        self.deadline = 0.0
        self.parked = False  # ever put in Recorder.pending (only then is the lock needed)
        self.fields: Any = None


class _Node:
    """What the recorder remembers of one open LlamaIndex span."""

    __slots__ = (
        "anchor",
        "call",
        "instance",
        "is_run",
        "lazy",
        "span",
        "start_ns",
        "step",
        "token",
    )

    def __init__(self) -> None:
        self.span: OpenSpan | None = None  # its own faremeter span, if kept
        self.anchor: _Node | None = None  # the node children attach to (self if kept)
        self.call: _Call | None = None
        self.instance = 0  # id() of the LlamaIndex object, to fold same-instance calls
        self.step: str | None = None
        self.token: Any = None
        self.lazy: tuple[str, OpenSpan | None] | None = None  # (name, outer) of a lazy root
        self.start_ns = 0
        self.is_run = False  # a workflow's run span: its plain-function children are steps


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` or ``obj.key``, or None.

    Pydantic models keep fields in ``__dict__``; reading a *missing* attribute
    through ``getattr`` costs an exception inside pydantic's ``__getattr__``
    (microseconds, on every call), so fields are looked up directly.
    """
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(key)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    fields: Any = getattr(obj, "__dict__", None)
    if type(fields) is dict:
        if key in fields:
            return fields[key]  # pyright: ignore[reportUnknownVariableType]
        if isinstance(obj, BaseModel):
            return None
    elif isinstance(obj, Mapping):
        return obj.get(key)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return getattr(obj, key, None)


def _text(message: Any) -> str:
    """The text of a ChatMessage-like object, including tool-call requests."""
    parts: list[str] = []
    content = getattr(message, "content", None)  # a property of ChatMessage
    if isinstance(content, str):
        parts.append(content)
    for block in _get(message, "blocks") or ():
        name = _get(block, "tool_name")
        if isinstance(name, str):
            parts.append(f"{name}({_get(block, 'tool_kwargs')})")
    return " ".join(parts) if parts else str(message)


class Recorder:
    """State shared by the span handler and the event handler of one ``instrument()``.

    Args:
        meter: Where spans go; ``None`` resolves :func:`faremeter.get_meter` per trace.
        attributes: Default attribution for every trace it starts (context
            attribution from ``faremeter.attributes`` and enclosing traces wins).
        stream_ttl: Seconds a streamed call may wait for its end event after
            its span exited before it is recorded with what is known.
        max_pending: Bound on calls waiting for their end events.
    """

    def __init__(
        self,
        meter: Meter | None,
        attributes: Mapping[str, Any],
        *,
        stream_ttl: float = 600.0,
        max_pending: int = 10_000,
    ) -> None:
        from llama_index.core.agent.workflow import AgentWorkflow, BaseWorkflowAgent
        from llama_index.core.base.base_query_engine import BaseQueryEngine
        from llama_index.core.base.base_retriever import BaseRetriever
        from llama_index.core.base.embeddings.base import BaseEmbedding
        from llama_index.core.base.llms.base import BaseLLM
        from llama_index.core.chat_engine.types import BaseChatEngine
        from llama_index.core.tools.types import BaseTool
        from llama_index.core.workflow import Workflow

        self.meter = meter
        self.attributes = dict(attributes)
        self.stream_ttl = stream_ttl
        self.max_pending = max_pending
        self.nodes: dict[str, _Node] = {}
        self.pending: OrderedDict[int, _Call] = OrderedDict()
        self._lock = threading.Lock()
        # (class, "Class.method") -> (kind or None, is a Workflow): one lookup per span.
        self._kinds: dict[tuple[type, str], tuple[Any, bool]] = {}
        self._rules: tuple[tuple[type, frozenset[str], Any], ...] = (
            (BaseLLM, _LLM_METHODS, SpanKind.LLM),
            (BaseEmbedding, _EMBED_METHODS, SpanKind.EMBEDDING),
            (BaseRetriever, frozenset({"retrieve", "aretrieve"}), SpanKind.RETRIEVAL),
            (BaseTool, frozenset({"call", "acall", "__call__"}), SpanKind.TOOL),
            (BaseWorkflowAgent, frozenset({"run"}), SpanKind.AGENT),
            (AgentWorkflow, frozenset({"run"}), SpanKind.AGENT),
            (Workflow, frozenset({"run"}), SpanKind.CHAIN),
            (BaseQueryEngine, frozenset({"query", "aquery"}), SpanKind.CHAIN),
            (
                BaseChatEngine,
                frozenset({"chat", "achat", "stream_chat", "astream_chat"}),
                SpanKind.CHAIN,
            ),
        )
        self._workflow_type = Workflow
        self._event_routes = self._routes()

    # -- classification -------------------------------------------------------------
    def _classified(self, instance: Any, label: str, method: str | None) -> tuple[Any, bool]:
        """``(kind, is a Workflow)`` of ``instance``'s span ``label``, cached per class.

        ``label`` is ``"Class.method"`` (LlamaIndex builds it from the instance's
        class), so the class and the label determine the method. :meth:`enter`
        reads the cache itself and calls this only on a miss.
        """
        key = (instance.__class__, label)
        entry = self._kinds.get(key)
        if entry is None:
            if method is None:
                method = label.rpartition(".")[2]
            kind = None
            for cls, methods, rule_kind in self._rules:
                if method in methods and isinstance(instance, cls):
                    kind = rule_kind
                    break
            entry = (kind, isinstance(instance, self._workflow_type))
            self._kinds[key] = entry
        return entry

    def _name(self, kind: SpanKind, instance: Any, label: str) -> str:
        """Tools by their tool name (that is what tool prices key on), agents by name."""
        if kind is SpanKind.TOOL:
            name = getattr(getattr(instance, "metadata", None), "name", None)
            return name if isinstance(name, str) and name else label
        if kind is SpanKind.AGENT:
            name = getattr(instance, "name", None)
            return name if isinstance(name, str) and name else type(instance).__name__
        if isinstance(instance, self._workflow_type):
            return type(instance).__name__
        return label

    # -- spans ------------------------------------------------------------------------
    def enter(self, id_: str, instance: Any, parent_id: str | None) -> None:
        """A LlamaIndex span started: keep it, fold it or collapse it."""
        label = id_[:-37] if len(id_) > 37 and id_[-37] == "-" else id_
        parent = self.nodes.get(parent_id) if parent_id else None
        node = _Node()
        node.instance = id(instance)
        if instance is not None:
            entry = self._kinds.get((instance.__class__, label))
            if entry is None:
                entry = self._classified(instance, label, None)
            kind, is_workflow = entry
        else:
            kind, is_workflow = None, False
        if parent is not None:
            node.step = parent.step
            if kind is None and instance is None and parent.is_run:
                node.step = label.rpartition(".")[2]  # a workflow step: collapsed, names `step`
            elif (
                kind in _CALL_KINDS
                and parent.call is not None
                and parent.instance == node.instance
                and parent.call.span.kind is kind
            ):
                node.call = parent.call  # the same request through another method: fold
                node.anchor = parent.anchor
                self.nodes[id_] = node
                return
        if kind is None:
            if parent is None:  # a root of plumbing: kept, but only once something needs it
                outer = current_span()
                node.lazy = (label, outer)
                node.start_ns = self._meter_for(outer).clock()
                node.anchor = node
            else:
                node.anchor = parent.anchor
            self.nodes[id_] = node
            return
        outer = self._span_of(parent.anchor) if parent is not None and parent.anchor else None
        if kind is SpanKind.TOOL or kind is SpanKind.AGENT:
            name = self._name(kind, instance, label)
        else:
            name = type(instance).__name__ if is_workflow else label
        span = self._start(name, kind, outer, node.step, parent is None)
        node.span = span
        node.anchor = node
        if kind in _CALL_KINDS:
            call = _Call(span, parent.call if parent is not None and kind is SpanKind.LLM else None)
            call.fields = instance.__dict__  # for the model, if no event names it
            node.call = call
        elif kind is SpanKind.AGENT or kind is SpanKind.CHAIN:
            node.is_run = is_workflow
        node.token = activate(span)
        self.nodes[id_] = node

    def _meter_for(self, parent: OpenSpan | None) -> Meter:
        if parent is not None:
            return parent.meter
        return self.meter if self.meter is not None else get_meter()

    def _start(
        self,
        name: str,
        kind: SpanKind,
        parent: OpenSpan | None,
        step: str | None,
        root: bool,
        start_ns: int | None = None,
    ) -> OpenSpan:
        if parent is None:
            parent = current_span()
        attrs: dict[str, Any] | None = None
        if (root and self.attributes) or step is not None:
            context = current_attributes()
            attrs = {}
            if root and self.attributes:
                inherited = parent.attributes if parent is not None else {}
                attrs = {
                    k: v
                    for k, v in self.attributes.items()
                    if k not in context and k not in inherited
                }
            if step is not None and "step" not in context:
                attrs["step"] = step  # a deeper step wins over the one inherited from a parent
        if parent is not None:
            meter = parent.meter
        else:
            meter = self.meter if self.meter is not None else get_meter()
        return meter.start_span(name, kind=kind, parent=parent, attributes=attrs, start_ns=start_ns)

    @staticmethod
    def _claim(node: _Node) -> tuple[str, OpenSpan | None] | None:
        lazy, node.lazy = node.lazy, None
        return lazy

    def _span_of(self, node: _Node) -> OpenSpan | None:
        """The faremeter span of a kept node, starting a lazy root on first need."""
        if node.span is None and node.lazy is not None:
            with self._lock:
                lazy = self._claim(node)
                if lazy is not None:  # not started by another thread meanwhile
                    name, outer = lazy
                    node.span = self._start(
                        name, SpanKind.CHAIN, outer, node.step, True, node.start_ns
                    )
        return node.span

    def exit(self, id_: str, result: Any = None, err: BaseException | None = None) -> None:
        """A LlamaIndex span ended (``err`` set when it raised)."""
        node = self.nodes.pop(id_, None)
        if node is None:
            return
        if node.token is not None:
            deactivate(node.token)
        call = node.call
        if call is not None:
            if err is not None and call.error is None:
                call.error = err
            if node.span is None:  # a folded inner span: keep its id while the call is open
                if call.open_starts:
                    call.ids.append(id_)
                    self.nodes[id_] = node
                return
            call.exited = True
            if call.open_starts and err is None:
                call.ids.append(id_)
                self.nodes[id_] = node
                self._park(call)
            else:
                self._finish(call)
            return
        span = node.span
        if span is None:
            return
        if err is not None:
            span.end(status=SpanStatus.ERROR, error=err)
        elif span.kind is SpanKind.TOOL and _get(result, "is_error") is True:
            span.end(status=SpanStatus.ERROR, error=str(_get(result, "raw_output")))
        else:
            span.end()

    # -- calls --------------------------------------------------------------------------
    def _park(self, call: _Call) -> None:
        """Wait for a stream's end event, within bounds."""
        now = time.monotonic()
        call.deadline = now + self.stream_ttl
        call.parked = True
        with self._lock:
            self.pending[id(call)] = call
        self.sweep(now)

    def sweep(self, now: float | None = None, *, everything: bool = False) -> None:
        """Record calls whose end event is overdue (abandoned streams)."""
        now = time.monotonic() if now is None else now
        while True:
            with self._lock:
                if not self.pending:
                    return
                call = next(iter(self.pending.values()))
                overdue = everything or call.deadline <= now
                if not overdue and len(self.pending) <= self.max_pending:
                    return
                self.pending.pop(id(call), None)
            call.open_starts = 0
            self._finish(call)

    def _finish(self, call: _Call) -> None:
        if call.ids:
            for id_ in call.ids:
                self.nodes.pop(id_, None)
            call.ids.clear()
        if call.parked:
            with self._lock:
                self.pending.pop(id(call), None)
        span = call.span
        if span.ended:
            return
        usage = call.usage
        if call.model is None and call.fields is not None:
            call.model = self._model(call.fields)
        if span.kind is SpanKind.LLM:
            if usage is None and call.error is None:
                usage = self._estimate(call)
            if (
                call.child_usages
                and usage is not None
                and (usage.estimated or usage in call.child_usages)
            ):
                usage = None  # a wrapper repeating what its inner LLM call already charged
            if call.outer is not None and usage is not None:
                call.outer.child_usages.append(usage)
        if call.error is not None:
            span.end(status=SpanStatus.ERROR, error=call.error, usage=usage, model=call.model)
        else:
            span.end(usage=usage, model=call.model)

    def _estimate(self, call: _Call) -> Usage | None:
        prompt = call.prompt
        reply = call.reply if call.reply is not None else call.last_chunk
        if prompt is None and reply is None:
            return None
        if isinstance(prompt, str):
            prompt_parts: str | list[str] = prompt
        else:
            prompt_parts = [_text(m) for m in prompt or ()]
        message = _get(reply, "message")
        if message is not None:
            completion = _text(message)
        else:
            text = _get(reply, "text")
            completion = text if isinstance(text, str) else ""
        return estimate_usage(call.model, prompt_parts, completion)

    # -- events -------------------------------------------------------------------------
    def _routes(self) -> dict[type, Any]:
        from llama_index.core.instrumentation.events.embedding import (
            EmbeddingEndEvent,
            EmbeddingStartEvent,
        )
        from llama_index.core.instrumentation.events.exception import ExceptionEvent
        from llama_index.core.instrumentation.events.llm import (
            LLMChatEndEvent,
            LLMChatInProgressEvent,
            LLMChatStartEvent,
            LLMCompletionEndEvent,
            LLMCompletionInProgressEvent,
            LLMCompletionStartEvent,
        )

        return {
            LLMChatStartEvent: self._on_start,
            LLMCompletionStartEvent: self._on_start,
            LLMChatEndEvent: self._on_end,
            LLMCompletionEndEvent: self._on_end,
            LLMChatInProgressEvent: self._on_chunk,
            LLMCompletionInProgressEvent: self._on_chunk,
            EmbeddingStartEvent: self._on_embedding_start,
            EmbeddingEndEvent: self._on_embedding_end,
            ExceptionEvent: self._on_exception,
        }

    def event(self, event: Any) -> None:
        """Route one instrumentation event to the call it belongs to."""
        event_type: Any = event.__class__
        route = self._event_routes.get(event_type)
        if route is None:
            return
        span_id = event.span_id
        node = self.nodes.get(span_id) if span_id else None
        if node is None or node.call is None:
            return
        route(node.call, event)

    @staticmethod
    def _model(model_dict: Any) -> str | None:
        if type(model_dict) is dict or isinstance(model_dict, Mapping):
            for key in ("model", "model_name", "deployment_name"):
                value = model_dict.get(key)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
                if isinstance(value, str) and value and value != "unknown":
                    return value
        return None

    def _on_start(self, call: _Call, event: Any) -> None:
        call.open_starts += 1
        call.model = self._model(event.model_dict) or call.model
        if call.prompt is None:
            fields = event.__dict__  # routed events are exact pydantic classes: fields live here
            call.prompt = fields.get("messages") or fields.get("prompt")

    def _on_end(self, call: _Call, event: Any) -> None:
        fields = event.__dict__  # routed events are exact pydantic classes: fields live here
        response = event.response
        if call.usage is None:
            raw = _get(response, "raw")
            usage = None if response is None else self._usage_of(response, raw, False)
            if usage is None and call.last_chunk is not None:
                usage = self._usage(call.last_chunk, chunk=True)
            if usage is not None:
                call.usage = usage
                model = _get(raw, "model")
                if isinstance(model, str) and model:
                    call.model = model
        if call.reply is None:
            call.reply = response
            call.prompt = fields.get("messages") or fields.get("prompt")
        if call.open_starts:
            call.open_starts -= 1
        if call.exited and not call.open_starts:
            self._finish(call)

    def _on_chunk(self, call: _Call, event: Any) -> None:
        response = event.response
        raw = _get(response, "raw")
        if raw is not None and any(_get(raw, k) is not None for k in _USAGE_KEYS):
            call.last_chunk = response  # usage often rides only on the final chunk
        elif call.last_chunk is None or self._usage(call.last_chunk, chunk=True) is None:
            call.last_chunk = response

    def _on_exception(self, call: _Call, event: Any) -> None:
        call.error = _get(event, "exception") or "stream failed"
        if call.exited:
            call.open_starts = 0
            self._finish(call)

    @staticmethod
    def _usage(response: Any, *, chunk: bool = False) -> Usage | None:
        """Reported usage of a ChatResponse/CompletionResponse, wherever the provider put it."""
        if response is None:
            return None
        return Recorder._usage_of(response, _get(response, "raw"), chunk)

    @staticmethod
    def _usage_of(response: Any, raw: Any, chunk: bool) -> Usage | None:
        if raw is not None:
            for key in _USAGE_KEYS:
                payload = _get(raw, key)
                if payload is not None:
                    return safe_parse_usage(payload, where=_WHERE)
        if chunk:
            return None
        kwargs = _get(response, "additional_kwargs")
        if isinstance(kwargs, Mapping) and kwargs:
            usage = safe_parse_usage(kwargs, where=_WHERE)
            if usage is not None:
                return usage
        message = _get(response, "message")
        if message is not None:
            kwargs = _get(message, "additional_kwargs")
            if isinstance(kwargs, Mapping) and kwargs:
                return safe_parse_usage(kwargs, where=_WHERE)
        return None

    def _on_embedding_start(self, call: _Call, event: Any) -> None:
        call.model = self._model(event.model_dict) or call.model

    def _on_embedding_end(self, call: _Call, event: Any) -> None:
        usage = safe_parse_usage(_get(event, "usage"), where=_WHERE)
        if usage is None:
            chunks: Sequence[Any] = event.chunks
            tokens = sum(count_tokens(c, call.model) for c in chunks if isinstance(c, str))
            usage = Usage(input_tokens=tokens, source="estimated")
        call.usage = usage if call.usage is None else call.usage + usage

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Record everything still waiting and forget every open span."""
        self.sweep(everything=True)
        self.nodes.clear()
