"""LangChain callback events → faremeter spans.

Every LangChain run reports ``run_id`` / ``parent_run_id``; that pair *is* the
tree, so the handler keeps one map from run id to open span and nothing else.
Pricing, attribution, estimation and storage are the core's; this module only
reads what LangChain hands over and decides which span it belongs to.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from faremeter import BudgetExceeded, Cost, Meter, OpenSpan, SpanKind, SpanStatus, Usage, get_meter
from faremeter.context import activate, clean_attributes, deactivate
from faremeter.cost import to_decimal
from faremeter.estimate import estimate_usage
from faremeter.normalize import parse_usage
from faremeter.spans import ATTRIBUTION_KEYS, validate_attribute_name

__all__ = ["DEFAULT_METADATA_KEYS", "FaremeterCallbackHandler"]

logger = logging.getLogger("faremeter")

DEFAULT_METADATA_KEYS: tuple[str, ...] = (*ATTRIBUTION_KEYS, "thread_id")
"""Run-metadata keys copied onto spans as attribution (``config={"metadata": ...}``)."""

_MODEL_KEYS = ("model_name", "model", "model_id", "deployment_name")
_MODEL_KEY_SET = frozenset(_MODEL_KEYS)
_GRAPH_STEP_TAG = "graph:step:"
_INTERNAL_TAG_PARTS = (":step:", "langsmith:")
# LangGraph control flow (interrupts, Command(graph=PARENT)) travels as exceptions.
_CONTROL_FLOW = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"})

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str, *args: object) -> None:
    with _warned_lock:
        first = key not in _warned
        _warned.add(key)
    logger.log(logging.WARNING if first else logging.DEBUG, message, *args)


def _warn_parse(exc: Exception) -> None:
    _warn_once(f"usage:{type(exc).__name__}", "faremeter: rejected LangChain usage: %s", exc)


class _Run:
    """What the handler holds between a run's start and end."""

    __slots__ = ("owned", "prompts", "span", "token")

    def __init__(
        self,
        span: OpenSpan | None,
        owned: bool,
        token: contextvars.Token[OpenSpan | None] | None = None,
        prompts: Sequence[Any] | None = None,
    ) -> None:
        self.span = span
        self.owned = owned  # False: a collapsed chain run standing for its parent
        self.token = token
        self.prompts = prompts


def _str(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _is_map(value: Any) -> bool:
    # LangChain's payloads are dicts; skip the slow ABC check for them.
    return type(value) is dict or isinstance(value, Mapping)


def _first_model(source: Any) -> str | None:
    if type(source) is dict:  # the usual payload: skip the probes when no key can match
        if not source or source.keys().isdisjoint(_MODEL_KEY_SET):
            return None
    elif not (source and isinstance(source, Mapping)):
        return None
    mapping = cast("Mapping[str, Any]", source)
    for key in _MODEL_KEYS:
        found = mapping.get(key)
        if type(found) is str and found:
            return found
    return None


def _text(value: Any) -> str:
    """Text of a message, generation or prompt, for token estimates and content."""
    if isinstance(value, str):
        return value
    message = getattr(value, "message", None)  # a generation: read its message
    if message is not None:
        value = message
    try:
        text = getattr(value, "text", None)
    except Exception:  # malformed content (None, numbers) from a buggy integration
        text = None
    out = str(text) if isinstance(text, str) else ""
    calls: Any = getattr(value, "tool_calls", None)
    if isinstance(calls, list):
        for call in cast("list[Any]", calls):
            if isinstance(call, Mapping):  # tool-call arguments are generated tokens too
                out += f"{call.get('name', '')}{call.get('args', '')}"  # pyright: ignore[reportUnknownMemberType]
    return out


def _user_tags(tags: list[str]) -> tuple[str, ...]:
    """The run's own tags, without LangChain/LangGraph bookkeeping (``seq:step:1``…)."""
    return tuple(t for t in tags if not any(p in t for p in _INTERNAL_TAG_PARTS))


def _texts(items: Sequence[Any] | None) -> list[str]:
    return [_text(item) for item in items or ()]


def _reported_tool_cost(output: Any) -> Cost | None:
    """A cost the tool reported: ``Cost``, ``{"cost": x}`` or ``.cost`` (or on its artifact)."""
    for candidate in (getattr(output, "artifact", None), output):
        if candidate is None:
            continue
        if isinstance(candidate, Cost):
            return candidate
        if isinstance(candidate, Mapping):
            raw: Any = candidate.get("cost")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        else:
            raw = getattr(candidate, "cost", None)
        if isinstance(raw, Cost):
            return raw
        if raw is None or isinstance(raw, bool) or not isinstance(raw, Decimal | int | float | str):
            continue
        try:
            amount = to_decimal(raw)
        except (ValueError, ArithmeticError):
            _warn_once("toolcost:invalid", "faremeter: ignoring tool-reported cost %r", raw)
            continue
        if amount < 0:
            _warn_once("toolcost:negative", "faremeter: ignoring negative tool cost %s", amount)
            continue
        return Cost.of_tool(amount)
    return None


class FaremeterCallbackHandler(BaseCallbackHandler):
    """Prices and attributes every chat model, tool and retriever run it sees.

    Pass it in ``config={"callbacks": [handler]}`` (or use :func:`track`). One
    handler can serve a whole process: it holds only the runs in flight.

    Runs ``inline`` (``run_inline = True``): under ``ainvoke`` LangChain would
    otherwise hop to an executor thread for every event; the handler does no
    I/O (the ledger enqueues), so inline is cheaper and keeps events ordered.
    ``batch`` and LangGraph call it from threads: its map is only touched by
    single dict operations (``get``, item assignment, ``pop``), which are atomic,
    so no lock is taken on the per-call path.

    Chain runs are collapsed to the structure that matters: the root run (an
    ``agent`` span), LangGraph nodes (``chain`` spans named after the node) and
    runs directly under a tool (a sub-agent). LCEL plumbing (``RunnableSequence``,
    prompts, parsers, routers) costs nothing and is folded into its parent;
    ``all_chains=True`` records every chain run instead.

    Args:
        meter: Where spans go; the process default meter when omitted.
        all_chains: Record every chain run, not only roots, nodes and sub-agents.
        metadata_keys: Run-metadata keys copied onto spans as attributes.
        **attributes: Attribution for every span this handler records
            (run metadata wins over them for the same key).
    """

    run_inline = True

    def __init__(
        self,
        meter: Meter | None = None,
        *,
        all_chains: bool = False,
        metadata_keys: Iterable[str] = DEFAULT_METADATA_KEYS,
        **attributes: Any,
    ) -> None:
        super().__init__()
        self._meter = meter
        self._all_chains = all_chains
        self._keys = tuple(validate_attribute_name(k) for k in metadata_keys)
        # Every metadata key _attrs reads: metadata without any of them (a plain
        # model call's ls_* keys) adds nothing, checked in one set operation.
        self._read_keys = frozenset((*self._keys, "langgraph_node", "lc_agent_name"))
        self._attributes = clean_attributes(attributes)  # clean once, not per span
        self._runs: dict[UUID, _Run] = {}

    @property
    def meter(self) -> Meter:
        """The meter this handler records into."""
        return self._meter or get_meter()

    @property
    def open_runs(self) -> int:
        """Runs started and not yet ended (0 when idle: nothing accumulates)."""
        return len(self._runs)

    # -- bookkeeping ----------------------------------------------------------
    def _attrs(self, metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Attribution from run metadata on top of the handler's, or ``None`` for none.

        ``None`` means "the handler's own (already clean) attributes only":
        :meth:`_open` then adds them to the span without re-cleaning.
        """
        if not metadata or metadata.keys().isdisjoint(self._read_keys):
            return None
        attrs: dict[str, Any] = dict(self._attributes)
        if metadata:
            node = metadata.get("langgraph_node")
            if isinstance(node, str):
                attrs["step"] = node
            agent = metadata.get("lc_agent_name")
            if isinstance(agent, str):
                attrs["agent"] = agent
            for key in self._keys:
                value = metadata.get(key)
                if value is not None:
                    attrs[key] = value
        return attrs

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        kind: SpanKind,
        *,
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
        current: bool = False,
    ) -> None:
        """Start a chain, tool or retrieval run (model runs go to :meth:`_open`)."""
        parent_run = self._runs.get(parent_run_id) if parent_run_id is not None else None
        parent = parent_run.span if parent_run is not None else None
        if kind is SpanKind.CHAIN:
            if parent is None:
                kind = SpanKind.AGENT  # the run's root: one agent run, one trace
            elif parent.kind is SpanKind.TOOL:
                kind = SpanKind.AGENT  # an agent (or chain) run by a tool
            elif not (self._all_chains or any(t.startswith(_GRAPH_STEP_TAG) for t in tags or ())):
                self._runs[run_id] = _Run(parent, False)
                return
        self._open(run_id, parent, name, kind, tags, metadata, None, None, current)

    def _open(
        self,
        run_id: UUID,
        parent: OpenSpan | None,
        name: str,
        kind: SpanKind,
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
        model: str | None,
        prompts: Sequence[Any] | None,
        current: bool,
    ) -> None:
        """Start the run's span under ``parent`` and remember it."""
        if metadata:
            provider = _str(metadata.get("ls_provider"))
            attrs = self._attrs(metadata)
        else:
            provider = attrs = None
        span = (self._meter or get_meter()).start_span(
            name,
            kind=kind,
            parent=parent,
            attributes=attrs,
            model=model,
            provider=provider,
            tags=_user_tags(tags) if tags else (),
        )
        if attrs is None and self._attributes:
            # start_span applies ``attributes`` last, over the inherited ones;
            # these are clean already, so apply them the same way directly.
            span.attributes.update(self._attributes)
        if span.parent_span_id is None and span.trace.root is None:
            span.trace.root = span
        # Only tool spans become the context's current span: their start and end
        # fire in the same context around the user's code (so @meter.priced_tool
        # or another framework called inside nests here). Async chain ends are
        # shielded into a copied context, where a reset would leak the span.
        token = activate(span) if current else None
        self._runs[run_id] = _Run(span, True, token, prompts)

    def _pop(self, run_id: UUID) -> _Run | None:
        run = self._runs.pop(run_id, None)
        if run is not None and run.token is not None:
            deactivate(run.token)
        return run if run is not None and run.owned else None

    def _fail(self, run_id: UUID, error: BaseException, **end: Any) -> None:
        run = self._pop(run_id)
        if run is None or run.span is None:
            return
        if isinstance(error, BudgetExceeded):
            run.span.end(status=SpanStatus.DENIED, error=error, error_class="budget", **end)
        elif type(error).__name__ in _CONTROL_FLOW:
            run.span.end(attributes={"interrupted": type(error).__name__}, **end)
        else:
            run.span.end(status=SpanStatus.ERROR, error=error, **end)

    # -- model calls ----------------------------------------------------------
    def _start_llm(
        self,
        serialized: Mapping[str, Any] | None,
        prompts: Sequence[Any],
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        try:
            model = _str(metadata.get("ls_model_name")) if metadata else None
            model = model or _first_model(kwargs.get("invocation_params"))
            name = (
                _str(kwargs.get("name")) or model or _str((serialized or {}).get("name")) or "llm"
            )
            # Model runs never collapse: straight to _open, past _start's chain logic.
            parent_run = self._runs.get(parent_run_id) if parent_run_id is not None else None
            parent = parent_run.span if parent_run is not None else None
            self._open(run_id, parent, name, SpanKind.LLM, tags, metadata, model, prompts, False)
        except Exception:
            logger.exception("faremeter: on_llm_start failed")

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open an ``llm`` span for a chat model call."""
        flat = [m for batch in messages for m in batch]
        self._start_llm(serialized, flat, run_id, parent_run_id, tags, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open an ``llm`` span for a completion-style model call."""
        self._start_llm(serialized, prompts, run_id, parent_run_id, tags, metadata, kwargs)

    def _read(self, response: Any) -> tuple[Usage | None, str | None, bool, list[Any]]:
        """Usage summed over every generation, the answering model, cache hit, generations."""
        usage: Usage | None = None
        model: str | None = None
        cached = False
        gens: list[Any] = []
        llm_output = getattr(response, "llm_output", None)
        for batch in getattr(response, "generations", None) or ():
            seen: list[Any] | None = None
            for gen in batch or ():
                gens.append(gen)
                message = getattr(gen, "message", None)
                if model is None:
                    model = _first_model(getattr(message, "response_metadata", None)) or (
                        _first_model(getattr(gen, "generation_info", None))
                    )
                raw = getattr(message, "usage_metadata", None)
                if not raw:
                    continue
                if _is_map(raw) and raw.get("total_cost") == 0:
                    # BaseChatModel._convert_cached_generations stamps total_cost=0
                    # on every message it replays from the LLM cache.
                    cached = True
                if seen is None:
                    seen = [raw]
                elif raw in seen:
                    # n>1 choices: providers copy the request's usage onto each.
                    continue
                else:
                    seen.append(raw)
                try:
                    parsed = parse_usage(raw)
                except Exception as exc:  # as _parse: dropped and logged, never raised
                    _warn_parse(exc)
                    parsed = None
                if parsed is not None:
                    usage = parsed if usage is None else usage + parsed
        if llm_output is not None and _is_map(llm_output):
            if usage is None:
                usage = self._parse(llm_output.get("token_usage") or llm_output.get("usage"))
            model = model or _first_model(llm_output)
        return usage, model, cached, gens

    @staticmethod
    def _parse(raw: Any) -> Usage | None:
        try:
            return parse_usage(raw)
        except Exception as exc:  # a bad payload is dropped and logged, never raised
            _warn_parse(exc)
            return None

    def _end_llm(self, run: _Run, response: Any, error: BaseException | None) -> None:
        span = run.span
        if span is None:
            return
        usage, model, cached, gens = self._read(response)
        model = model or span.model
        meter = span.meter
        content = None
        if meter.store_content:
            content = {"prompts": _texts(run.prompts), "completions": _texts(gens)}
        if cached and error is None:
            saved = meter.price(model, usage).total if model and usage else None
            span.end(
                status=SpanStatus.CACHED, model=model, cost=Cost(), saved=saved, content=content
            )
            return
        if usage is None and error is None:
            completion = _texts(gens)
            if any(completion):
                # No usage on the wire (stream without include_usage, LangGraph
                # "messages" mode): estimate rather than record a free call.
                usage = estimate_usage(model, _texts(run.prompts), completion)
        if error is None:
            span.end(usage=usage, model=model, content=content)
        elif isinstance(error, BudgetExceeded):
            span.end(
                status=SpanStatus.DENIED,
                usage=usage,
                model=model,
                error=error,
                error_class="budget",
            )
        else:
            span.end(
                status=SpanStatus.ERROR, usage=usage, model=model, error=error, content=content
            )

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the ``llm`` span with the usage of every generation."""
        try:
            run = self._runs.pop(run_id, None)  # _pop, inlined: once per model call
            if run is not None:
                if run.token is not None:
                    deactivate(run.token)
                if run.owned and run.span is not None:
                    self._end_llm(run, response, None)
        except Exception:
            logger.exception("faremeter: on_llm_end failed")

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the ``llm`` span as an error, keeping usage a partial response carried."""
        try:
            run = self._pop(run_id)
            if run is not None and run.span is not None:
                self._end_llm(run, kwargs.get("response"), error)
        except Exception:
            logger.exception("faremeter: on_llm_error failed")

    # -- chains, tools, retrievers -----------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open an ``agent`` (root) or ``chain`` (graph node) span."""
        try:
            name = _str(kwargs.get("name")) or _str((serialized or {}).get("name")) or "chain"
            self._start(run_id, parent_run_id, name, SpanKind.CHAIN, tags=tags, metadata=metadata)
        except Exception:
            logger.exception("faremeter: on_chain_start failed")

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the chain's span."""
        try:
            run = self._pop(run_id)
            if run is not None and run.span is not None:
                run.span.end()
        except Exception:
            logger.exception("faremeter: on_chain_end failed")

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the chain's span as an error (LangGraph interrupts are not errors)."""
        try:
            self._fail(run_id, error)
        except Exception:
            logger.exception("faremeter: on_chain_error failed")

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a ``tool`` span named after the tool (the catalog prices by name)."""
        try:
            name = _str((serialized or {}).get("name")) or _str(kwargs.get("name")) or "tool"
            self._start(
                run_id,
                parent_run_id,
                name,
                SpanKind.TOOL,
                tags=tags,
                metadata=metadata,
                current=True,
            )
        except Exception:
            logger.exception("faremeter: on_tool_start failed")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the tool span: reported cost, else a priced child, else the catalog."""
        try:
            run = self._pop(run_id)
            if run is None or run.span is None:
                return
            span = run.span
            cost = _reported_tool_cost(output)
            if cost is None and self._has_priced_tool_child(span):
                cost = Cost()  # @meter.priced_tool inside already charged this call
            span.end(cost=cost)
        except Exception:
            logger.exception("faremeter: on_tool_end failed")

    @staticmethod
    def _has_priced_tool_child(span: OpenSpan) -> bool:
        for record in reversed(span.trace.records):
            if record.end_ns < span.start_ns:
                return False
            if record.parent_span_id == span.span_id and record.kind is SpanKind.TOOL:
                return record.cost.priced
        return False

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the tool span as an error; a failed call is not charged."""
        try:
            self._fail(run_id, error, cost=Cost())
        except Exception:
            logger.exception("faremeter: on_tool_error failed")

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a ``retrieval`` span."""
        try:
            name = _str(kwargs.get("name")) or _str((serialized or {}).get("name")) or "retriever"
            self._start(
                run_id, parent_run_id, name, SpanKind.RETRIEVAL, tags=tags, metadata=metadata
            )
        except Exception:
            logger.exception("faremeter: on_retriever_start failed")

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the retrieval span."""
        try:
            run = self._pop(run_id)
            if run is not None and run.span is not None:
                run.span.end(attributes={"documents": len(documents or ())})
        except Exception:
            logger.exception("faremeter: on_retriever_end failed")

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the retrieval span as an error."""
        try:
            self._fail(run_id, error)
        except Exception:
            logger.exception("faremeter: on_retriever_error failed")
