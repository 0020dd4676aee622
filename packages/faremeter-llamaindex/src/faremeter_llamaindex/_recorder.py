"""Translate LlamaIndex instrumentation spans and events into core calls.

LlamaIndex reports structure and money on two channels: span enter/exit/drop
(the tree, by ``parent_id``) and events (``LLMChatEndEvent`` carries the
response and its usage), correlated by ``event.span_id``. The :class:`Recorder`
joins them and hands every call to a :class:`~faremeter.calls.CallTracker`,
which prices, estimates, classifies errors and sweeps abandoned streams. What
stays here is translation:

* **One request, one call.** ``MockLLM.chat`` calls ``self.complete``; a
  ``CustomLLM``'s ``astream_chat`` returns a generator that, when iterated,
  calls ``self.stream_chat`` *outside* the first span (the dispatcher parents
  it to whatever is current in the consumer). Both inner spans are folded
  into the outer call of the same instance: the first by its parent, the
  second by the identical ``messages``/``prompt`` object it was handed. An LLM
  wrapping *another* instance stays two spans; the core's wrapper rule then
  charges only the inner one.
* **Streams end late.** A streamed call's span exits when the generator is
  returned; its end event comes after the consumer drains it. The call is
  ended when its span has exited and every start event met its end event,
  and deferred in the tracker until then.
* **Plumbing is collapsed.** Prompt formatting, node parsing and workflow steps
  would bury the priced calls: their children attach to the nearest kept
  ancestor, and a workflow step's name becomes the ``step`` attribute of what
  happens inside it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from faremeter.calls import CallTracker
from faremeter.context import activate, current_attributes, current_span, deactivate
from faremeter.open_span import OpenSpan
from faremeter.spans import SpanKind
from faremeter_llamaindex._call import Call, event_routes
from faremeter_llamaindex._payloads import (
    Kinds,
    get,
    model_of,
    prompt_texts,
    reply_texts,
    tool_args_digest,
)

__all__ = ["Recorder"]

logger = logging.getLogger("faremeter.llamaindex")

_LLM = SpanKind.LLM
_EMBEDDING = SpanKind.EMBEDDING
_CHAIN = SpanKind.CHAIN


class _Node:
    """What the recorder keeps of one open LlamaIndex span."""

    __slots__ = ("anchor", "call", "instance", "is_run", "key", "lazy", "step", "token", "tool")

    def __init__(self, instance: int, step: str | None) -> None:
        self.instance = instance  # id() of the LlamaIndex object, to fold same-instance calls
        self.step = step
        self.key: str | None = None  # its tracker key, if it is (or may become) a span
        # The node children attach to; None for a kept node (itself: a self-reference
        # would make every node cyclic garbage, freed only by the cyclic GC).
        self.anchor: _Node | None = None
        self.call: Call | None = None
        self.token: Any = None  # a folded async stream made its call current
        self.lazy: tuple[str, OpenSpan | None, int] | None = None  # a plumbing root
        self.is_run = False  # a workflow's run span: its plain-function children are steps
        self.tool = False


class Recorder:
    """State shared by the span handler and the event handler of one ``instrument()``.

    Args:
        tracker: The core's call lifecycle the spans go to.
    """

    def __init__(self, tracker: CallTracker) -> None:
        self.tracker = tracker
        self.nodes: dict[str, _Node] = {}
        self.kinds = Kinds()
        self._streams: dict[tuple[int, int], Call] = {}  # async streams awaiting iteration
        self._waiting: OrderedDict[str, Call] = OrderedDict()  # deferred calls
        self._lock = threading.Lock()
        self._routes = event_routes()

    @property
    def open_calls(self) -> int:
        """Calls and spans held (0 when idle)."""
        return self.tracker.open_calls + len(self.nodes) + len(self._streams)

    # -- spans --------------------------------------------------------------------
    def enter(self, id_: str, instance: Any, parent_id: str | None, arguments: Any) -> None:
        """A LlamaIndex span started: keep it, fold it into its call, or collapse it."""
        label = id_[:-37] if len(id_) > 37 and id_[-37] == "-" else id_
        parent = self.nodes.get(parent_id) if parent_id else None
        if instance is not None:
            kind, is_workflow, is_stream = self.kinds.cache.get(
                (instance.__class__, label)
            ) or self.kinds.classify(instance, label)
        else:
            kind, is_workflow, is_stream = None, False, False
        node = _Node(id(instance), parent.step if parent is not None else None)
        if kind is _LLM or kind is _EMBEDDING:
            call = parent.call if parent is not None else None
            if call is None or call.kind is not kind or parent.instance != node.instance:  # pyright: ignore[reportOptionalMemberAccess]
                call = self._awaited(node.instance, arguments) if self._streams else None
                if call is not None:  # an async stream being iterated: make its call current
                    node.token = activate(self.tracker.span(call.key))
            if call is not None:  # the same request through another method: fold
                node.call = call
                node.anchor = self.nodes.get(call.key)  # the call's kept node
                self.nodes[id_] = node
                return
        elif (
            kind is SpanKind.TOOL
            and parent is not None
            and parent.tool
            and parent.instance == node.instance
        ):  # __call__ runs .call: one tool call, one span
            node.anchor = parent.anchor or parent
            self.nodes[id_] = node
            return
        if kind is None:
            if parent is None:  # a plumbing root: a span only once something needs it
                node.key = id_
                outer = current_span()
                meter = outer.meter if outer is not None else self.tracker.meter
                node.lazy = (label, outer, meter.clock())
            else:
                if instance is None and parent.is_run:
                    node.step = label.rpartition(".")[2]  # a workflow step names `step`
                node.anchor = parent.anchor or parent
            self.nodes[id_] = node
            return
        outer = self._span_of(parent.anchor or parent) if parent is not None else None
        if kind is _LLM or kind is _EMBEDDING:
            name = label
            model = model_of(getattr(instance, "__dict__", None))
        else:
            name = self.kinds.name(kind, instance, label, is_workflow)
            model = None
        prompt = prompt_texts(arguments) if kind is _LLM and arguments else None
        step = node.step
        attributes = {"step": step} if step and "step" not in current_attributes() else None
        # LlamaIndex swallows handler exceptions, so a budget cannot stop the call
        # here (enforce=False): an over-budget call is marked and still priced;
        # the routed LLM is where budgets are enforced.
        span = self.tracker.start(
            id_,
            name=name,
            kind=kind,
            parent=outer,
            model=model,
            attributes=attributes,
            prompt=prompt,
            activate=True,
            enforce=False,
        )
        if "budget_exceeded" in span.attributes:
            logger.warning(
                "faremeter: %s went over budget %s; LlamaIndex cannot stop a call from a "
                "handler: enforce budgets with faremeter_llamaindex.RoutedLLM",
                name,
                span.attributes["budget_exceeded"],
            )
        node.key = id_
        if kind is _LLM or kind is _EMBEDDING:
            call = node.call = Call(id_, kind, model)
            if is_stream and arguments:
                arg = arguments.get("messages", arguments.get("prompt"))
                call.stream = (node.instance, id(arg))
        else:
            node.is_run = is_workflow
            node.tool = kind is SpanKind.TOOL
        self.nodes[id_] = node
        if node.tool:
            # A digest of the canonical arguments (never the arguments): what the
            # runaway-loop detector and the tool-cache suggestion group calls by.
            span.attributes["tool_args_hash"] = tool_args_digest(instance, arguments)

    def _awaited(self, instance: int, arguments: Any) -> Call | None:
        if not arguments:
            return None
        arg = arguments.get("messages", arguments.get("prompt"))
        return self._streams.pop((instance, id(arg)), None)

    def _span_of(self, node: _Node) -> OpenSpan | None:
        """The span of a kept node, starting a lazy plumbing root on first need."""
        if node.lazy is not None:
            self._start_lazy(node)
        return self.tracker.span(node.key) if node.key is not None else None

    def _start_lazy(self, node: _Node) -> None:
        with self._lock:
            lazy, node.lazy = node.lazy, None
            if lazy is None or node.key is None:
                return  # another thread started it meanwhile
            name, outer, start_ns = lazy
            self.tracker.start(node.key, name=name, kind=_CHAIN, parent=outer, start_ns=start_ns)

    def exit(self, id_: str, result: Any = None, err: BaseException | None = None) -> None:
        """A LlamaIndex span ended (``err`` set when it raised)."""
        node = self.nodes.pop(id_, None)
        if node is None:
            return
        if node.token is not None:
            deactivate(node.token)
            node.token = None
        call = node.call
        if call is not None:
            if err is not None and call.error is None:
                call.error = err
            if call.key != id_:  # a folded inner span: keep it for late events
                if call.open:
                    call.ids.append(id_)
                    self.nodes[id_] = node
                return
            call.exited = True
            if call.open and err is None:  # a stream: ends with its last event
                call.ids.append(id_)
                self.nodes[id_] = node
                self._waiting[id_] = call
                if call.stream is not None:
                    self._streams[call.stream] = call
                self.tracker.defer(id_)  # also sweeps the tracker's overdue streams
                self._prune()
            else:
                self._finish(call)
            return
        key = node.key
        if key is None or node.lazy is not None:
            return  # collapsed, or a plumbing root nothing needed
        if err is not None:
            self.tracker.fail(key, err)
        elif node.tool and get(result, "is_error") is True:
            self.tracker.fail(key, str(get(result, "raw_output")))  # a tool's reported failure
        else:
            self.tracker.end(key)

    def _finish(self, call: Call) -> None:
        for id_ in call.ids:
            self.nodes.pop(id_, None)
        call.ids.clear()
        key = call.key
        if self._waiting:
            self._waiting.pop(key, None)
        if call.stream is not None and self._streams.get(call.stream) is call:
            del self._streams[call.stream]
        if call.error is not None:
            self.tracker.fail(key, call.error, usage=call.usage, model=call.model)
        elif call.kind is _LLM:
            self.tracker.end(
                key, usage=call.usage, completion=reply_texts(call.reply), model=call.model
            )
        else:
            self.tracker.end(key, usage=call.usage, model=call.model)

    def sweep(self, *, everything: bool = False) -> int:
        """Record deferred streams past their deadline and forget their spans."""
        swept = self.tracker.sweep(everything=everything)
        self._prune()
        return swept

    def _prune(self) -> None:
        """Forget the spans of deferred calls the tracker recorded on its own (swept, evicted)."""
        while self._waiting:
            key, call = next(iter(self._waiting.items()))
            if key in self.tracker:
                break
            del self._waiting[key]
            for id_ in call.ids:
                self.nodes.pop(id_, None)
            if call.stream is not None and self._streams.get(call.stream) is call:
                del self._streams[call.stream]

    def close(self) -> None:
        """Record everything still open (streams with what they showed) and forget it."""
        self.tracker.close()
        self.nodes.clear()
        self._streams.clear()
        self._waiting.clear()

    # -- events -----------------------------------------------------------------------
    def event(self, event: Any) -> None:
        """Route one instrumentation event to the call it belongs to."""
        route = self._routes.get(event.__class__)
        if route is None:
            return
        span_id = event.span_id
        node = self.nodes.get(span_id) if span_id else None
        if node is not None and node.call is not None and route(node.call, event, self.tracker):
            self._finish(node.call)
