"""LangChain callback events → core call-lifecycle calls.

Every LangChain run reports ``run_id`` / ``parent_run_id``; that pair *is* the
tree. This module only reads what LangChain hands over (names, metadata,
generations, usage) and tells the core's :class:`~faremeter.calls.CallTracker`
that a run started, ended or failed. Pricing, estimation, budgets, error
classes and redaction are the core's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from faremeter import BudgetExceeded, Cost, Meter, SpanKind, Usage, get_meter
from faremeter.calls import CallTracker, log_fault, safe_hook
from faremeter.context import clean_attributes
from faremeter.normalize import safe_parse_usage
from faremeter.spans import ATTRIBUTION_KEYS, validate_attribute_name
from faremeter_langchain._translate import (
    chat_texts,
    first_model,
    has_priced_tool_child,
    is_map,
    reported_tool_cost,
    texts,
    user_tags,
    valid_str,
)

__all__ = ["DEFAULT_METADATA_KEYS", "FaremeterCallbackHandler"]

logger = logging.getLogger("faremeter.langchain")

DEFAULT_METADATA_KEYS: tuple[str, ...] = (*ATTRIBUTION_KEYS, "thread_id")
"""Run-metadata keys copied onto spans as attribution (``config={"metadata": ...}``)."""

ROUTED_STRUCTURED_RUN = "RoutedStructuredOutput"
"""The run name of ``RoutedChatModel.with_structured_output`` (not a span of its own)."""

_WHERE = "langchain"
_GRAPH_STEP_TAG = "graph:step:"


def _args_hash(inputs: Any, input_str: str) -> str:
    from faremeter.caching.keys import canonical_json, digest

    try:
        return digest(canonical_json(inputs if isinstance(inputs, Mapping) else input_str))
    except (TypeError, ValueError):  # arguments with no canonical form: hash their text
        return digest(canonical_json(str(input_str)))


# LangGraph control flow (interrupts, Command(graph=PARENT)) travels as exceptions.
_CONTROL_FLOW = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"})


class FaremeterCallbackHandler(BaseCallbackHandler):
    """Prices and attributes every chat model, tool and retriever run it sees.

    Pass it in ``config={"callbacks": [handler]}`` (or use :func:`track`). One
    handler can serve a whole process: it holds only the runs in flight.

    Runs ``inline`` (``run_inline = True``): under ``ainvoke`` LangChain would
    otherwise hop to an executor thread for every event; the handler does no
    I/O (the ledger enqueues), so inline is cheaper and keeps events ordered.
    ``raise_error = True`` so that a budget denial raised before a model or
    tool call reaches the caller; every other fault of the handler is logged
    and swallowed by :func:`~faremeter.calls.safe_hook`, never raised. (Async
    handlers under a sync call are always swallowed by LangChain: enforce
    budgets in a routed model there.)

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
            (run metadata and the enclosing trace win over them for the same key).
    """

    run_inline = True
    raise_error = True

    def __init__(
        self,
        meter: Meter | None = None,
        *,
        all_chains: bool = False,
        metadata_keys: Iterable[str] = DEFAULT_METADATA_KEYS,
        **attributes: Any,
    ) -> None:
        super().__init__()
        self._all_chains = all_chains
        self._keys = tuple(validate_attribute_name(k) for k in metadata_keys)
        # Every metadata key _attrs reads: metadata without any of them (a plain
        # model call's ls_* keys) adds nothing, checked in one set operation.
        self._read_keys = frozenset((*self._keys, "langgraph_node", "lc_agent_name"))
        self.calls = CallTracker(meter, attributes=clean_attributes(attributes), where=_WHERE)
        # Chain runs of a routed structured-output call (the lambda and the chosen
        # model's own runnable): plumbing, so the model's run nests under the
        # route's attempt span.
        self._plumbing: set[UUID] = set()

    @property
    def meter(self) -> Meter:
        """The meter this handler records into."""
        return self.calls._meter or get_meter()  # pyright: ignore[reportPrivateUsage]

    @property
    def open_runs(self) -> int:
        """Runs started and not yet ended (0 when idle: nothing accumulates)."""
        return self.calls.open_calls + len(self._plumbing)

    # -- translation ------------------------------------------------------------
    def _attrs(self, metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Attribution from run metadata (``None`` when it carries none)."""
        if not metadata or metadata.keys().isdisjoint(self._read_keys):
            return None
        attrs: dict[str, Any] = {}
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
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
        **call: Any,
    ) -> None:
        if kind is SpanKind.CHAIN:
            parent = self.calls.span(parent_run_id) if parent_run_id is not None else None
            if parent is None:
                kind = SpanKind.AGENT  # the run's root: one agent run, one trace
            elif parent.kind is SpanKind.TOOL:
                kind = SpanKind.AGENT  # an agent (or chain) run by a tool
            elif not (self._all_chains or any(t.startswith(_GRAPH_STEP_TAG) for t in tags or ())):
                self.calls.alias(run_id, parent_run_id)
                return
        self.calls.start(
            run_id,
            name=name,
            kind=kind,
            parent_key=parent_run_id,
            attributes=self._attrs(metadata),
            provider=valid_str(metadata.get("ls_provider")) if metadata else None,
            tags=user_tags(tags) if tags else (),
            **call,
        )

    def _read(self, response: Any) -> tuple[Usage | None, str | None, bool, list[Any]]:
        """Usage summed over every generation, the answering model, cache hit, generations."""
        usage: Usage | None = None
        model: str | None = None
        cached = False
        gens: list[Any] = []
        for batch in getattr(response, "generations", None) or ():
            if not batch:
                continue
            seen: list[Any] | None = None  # usage payloads of this batch (built on the 2nd)
            for gen in batch:
                gens.append(gen)
                message = getattr(gen, "message", None)
                if model is None:
                    model = first_model(getattr(message, "response_metadata", None)) or (
                        first_model(getattr(gen, "generation_info", None))
                    )
                raw = getattr(message, "usage_metadata", None)
                if not raw:
                    continue
                if seen is None:
                    seen = [raw]
                elif raw in seen:
                    continue  # n>1 choices: providers copy the request's usage onto each
                else:
                    seen.append(raw)
                if is_map(raw) and raw.get("total_cost") == 0:
                    # BaseChatModel._convert_cached_generations stamps total_cost=0
                    # on every message it replays from the LLM cache.
                    cached = True
                parsed = safe_parse_usage(raw, where=_WHERE)
                if parsed is not None:
                    usage = parsed if usage is None else usage + parsed
        llm_output = getattr(response, "llm_output", None)
        if llm_output is not None and is_map(llm_output):
            if usage is None:
                raw = llm_output.get("token_usage") or llm_output.get("usage")
                usage = safe_parse_usage(raw, where=_WHERE) if raw else None
            model = model or first_model(llm_output)
        return usage, model, cached, gens

    # -- model calls ----------------------------------------------------------
    def _start_llm(
        self,
        serialized: Mapping[str, Any] | None,
        prompts: Sequence[Any],
        chat: bool,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        if metadata and metadata.get("ls_provider") == "faremeter":
            # A RoutedChatModel run: plumbing, not a model call. Its route span
            # ($0) and the chosen model's own run (priced, reserved) record the
            # call; registering nothing lets that run nest under the attempt span.
            return
        params = kwargs.get("invocation_params")
        model: str | None = None
        provider: str | None = None
        if metadata:  # valid_str inlined: this runs for every model call
            model = metadata.get("ls_model_name")
            if type(model) is not str or not model:
                model = None
            provider = metadata.get("ls_provider")
            if type(provider) is not str or not provider:
                provider = None
        if model is None:
            model = first_model(params)
        name = kwargs.get("name")
        if type(name) is not str or not name:
            name = model or valid_str((serialized or {}).get("name")) or "llm"
        max_tokens = params.get("max_tokens") if params is not None and is_map(params) else None
        self.calls.start(
            run_id,
            name=name,
            kind=SpanKind.LLM,
            parent_key=parent_run_id,
            model=model,
            provider=provider,
            attributes=self._attrs(metadata),
            tags=user_tags(tags) if tags else (),
            # Read only when usage needs checking (or a budget estimates the call).
            prompt=(lambda: chat_texts(prompts)) if chat else (lambda: texts(prompts)),
            max_tokens=max_tokens if type(max_tokens) is int else None,
            # Current while it runs: a provider layer called inside (LiteLLM)
            # nests under it, and the one-charge rule makes this a wrapper.
            activate=True,
        )

    # The two hooks every model call runs catch inline (log_fault) rather
    # than through safe_hook's wrapper: same rule, one call frame less.
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
        """Open an ``llm`` span for a chat model call (reserving its budget first)."""
        try:
            self._start_llm(
                serialized, messages, True, run_id, parent_run_id, tags, metadata, kwargs
            )
        except BudgetExceeded:
            raise
        except Exception as exc:
            log_fault(_WHERE, "on_chat_model_start", exc)

    @safe_hook(_WHERE)
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
        self._start_llm(serialized, prompts, False, run_id, parent_run_id, tags, metadata, kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the ``llm`` span with the usage of every generation."""
        try:
            usage, model, cached, gens = self._read(response)
            self.calls.end(
                run_id, usage=usage, completion=lambda: texts(gens), model=model, cached=cached
            )
        except BudgetExceeded:
            raise
        except Exception as exc:
            log_fault(_WHERE, "on_llm_end", exc)

    @safe_hook(_WHERE)
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the ``llm`` span as an error, keeping usage a partial response carried."""
        usage, model, _, _ = self._read(kwargs.get("response"))
        self.calls.fail(run_id, error, usage=usage, model=model)

    # -- chains, tools, retrievers -----------------------------------------------
    @safe_hook(_WHERE)
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
        name = valid_str(kwargs.get("name")) or valid_str((serialized or {}).get("name")) or "chain"
        if name == ROUTED_STRUCTURED_RUN or (
            parent_run_id is not None and parent_run_id in self._plumbing
        ):
            # A RoutedChatModel's structured-output call: plumbing, like its LLM
            # run. Registering nothing lets the chosen model's run nest under the
            # attempt span, so the route knows what the call was charged.
            self._plumbing.add(run_id)
            return
        self._start(run_id, parent_run_id, name, SpanKind.CHAIN, tags, metadata)

    @safe_hook(_WHERE)
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the chain's span."""
        if self._plumbing and run_id in self._plumbing:
            self._plumbing.discard(run_id)
            return
        self.calls.end(run_id)

    @safe_hook(_WHERE)
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the chain's span as an error (LangGraph interrupts are not errors)."""
        if self._plumbing and run_id in self._plumbing:
            self._plumbing.discard(run_id)
            return
        if type(error).__name__ in _CONTROL_FLOW:
            self.calls.end(run_id, attributes={"interrupted": type(error).__name__})
        else:
            self.calls.fail(run_id, error)

    @safe_hook(_WHERE)
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
        name = valid_str((serialized or {}).get("name")) or valid_str(kwargs.get("name")) or "tool"
        # Current while the tool body runs: @meter.priced_tool or another
        # framework called inside nests here.
        self._start(run_id, parent_run_id, name, SpanKind.TOOL, tags, metadata, activate=True)
        span = self.calls.span(run_id)
        if span is not None:
            # A digest of the canonical arguments (never the arguments): what the
            # runaway-loop detector and the cache suggestions group repeated calls by.
            span.attributes["tool_args_hash"] = _args_hash(kwargs.get("inputs"), input_str)

    @safe_hook(_WHERE)
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the tool span: reported cost, else a priced child, else the catalog."""
        span = self.calls.span(run_id)
        if span is None:
            return
        cost = reported_tool_cost(output)
        if cost is None and has_priced_tool_child(span):
            cost = Cost()  # @meter.priced_tool inside already charged this call
        self.calls.end(run_id, cost=cost)

    @safe_hook(_WHERE)
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the tool span as an error; a failed call is not charged."""
        self.calls.fail(run_id, error)

    @safe_hook(_WHERE)
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
        name = (
            valid_str(kwargs.get("name"))
            or valid_str((serialized or {}).get("name"))
            or "retriever"
        )
        self._start(run_id, parent_run_id, name, SpanKind.RETRIEVAL, tags, metadata)

    @safe_hook(_WHERE)
    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the retrieval span."""
        self.calls.end(run_id, attributes={"documents": len(documents or ())})

    @safe_hook(_WHERE)
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the retrieval span as an error."""
        self.calls.fail(run_id, error)
