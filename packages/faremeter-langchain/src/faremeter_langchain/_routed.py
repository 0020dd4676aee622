"""`RoutedChatModel`: a LangChain chat model that routes every call, within budget, with fallback.

It wraps the chat models you already have, one per router candidate::

    model = RoutedChatModel(
        router=Router({"economy": ["gpt-4o-mini"], "standard": ["gpt-4o"]}, steps=...),
        models={"gpt-4o-mini": ChatOpenAI(model="gpt-4o-mini"),
                "gpt-4o": ChatOpenAI(model="gpt-4o")},
    )

Every call goes through faremeter's framework-neutral routed call
(:class:`faremeter.routing.routed_call.ModelRouting`), the same one
``faremeter_llamaindex.RoutedLLM`` and ``faremeter_litellm``'s routed
completion use, so the three behave alike:

* **Route.** The router picks a model from the messages, the step (LangGraph's
  node by default), the run's tags and the attribution in force.
* **Admit.** With budgets on the meter, the call's worst case is reserved
  before anything is sent: a ``deny`` budget raises
  :class:`faremeter.BudgetExceeded` without calling any model; a ``degrade``
  budget shrinks ``max_tokens`` or routes to a cheaper model that fits.
  ``ainvoke`` / ``astream`` reserve through the async path, so a remote
  budget store never blocks the event loop.
* **Fall back.** A ``FallbackChain`` calls the chosen model — retrying, then
  moving to the decision's alternatives by error class. Streams fall back
  only before their first chunk.

The decision log: a ``chain`` span (``langchain.route``, $0) carries the
decision (``route.model``, ``route.reason``, ``route.baseline_model``,
``route.degraded`` ...) and every attempt is a span below it. The chosen
model's own run is the priced ``llm`` span (recorded by
:class:`~faremeter_langchain.FaremeterCallbackHandler`), stamped with
``route.model`` and ``route.baseline_model`` — what ``faremeter report
--routed`` reads. One provider request is charged once.

The decision is also in the reply's ``response_metadata["faremeter_route"]``.

**Response cache.** ``RoutedChatModel(..., cache=ResponseCache(...))`` serves
a repeated deterministic call (``invoke``/``ainvoke``/``stream``/``astream``)
from faremeter's cache before routing and budgets: no model is called, and
the call is one ``cached`` span with ``saved`` = what the first one cost. The
key is the messages, ``stop``, the call's parameters and this router's models
(their parameters and bound tools) — not the model the router would pick, so
an answer is served whichever tier produced it. A call is deterministic when
it passes ``temperature=0`` or every model is configured with it. Given a
``ResponseCache``, LangChain's own cache is turned off for the routed model
(``cache=False``; the models it wraps keep theirs), so replies are not cached
twice. ``with_structured_output`` calls are cached too, keyed by the schema
as well: a hit returns the parsed object (and the raw message with
``include_raw=True``); a reply that failed to parse is not stored.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast
from uuid import UUID

from langchain_core.caches import BaseCache
from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForChainRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, ensure_config
from pydantic import ConfigDict, Field, model_validator

from faremeter.caching import ResponseCache
from faremeter.context import current_attributes
from faremeter.routing import RouteDecision, Router, RouteRequest
from faremeter.routing.routed_call import ModelRouting, RoutePlan
from faremeter.spans import validate_attribute_name
from faremeter_langchain._handler import ROUTED_STRUCTURED_RUN
from faremeter_langchain._routed_cache import (
    MessageCodec,
    StreamCodec,
    StructuredCodec,
    cache_identity,
    message_parts,
    structured_request,
    temperature_of,
)

if TYPE_CHECKING:
    from faremeter.meter import Meter
    from faremeter.open_span import OpenSpan

__all__ = ["ROUTED_LS_PROVIDER", "ROUTE_SPAN_NAME", "RoutedChatModel"]

ROUTED_LS_PROVIDER: Final = "faremeter"
"""``ls_provider`` of a routed run: how callback handlers tell the router from a model call."""

ROUTE_SPAN_NAME: Final = "langchain.route"
"""Name of the ``chain`` span carrying each routed call's decision."""

_SIMPLE = (str, int, float, bool)
# Run metadata LangChain / LangGraph add for their own bookkeeping: not attribution.
_INTERNAL_PREFIXES = ("ls_", "langgraph_", "checkpoint_", "__")
_CHAIN_OPTIONS = frozenset(
    {
        "retry",
        "breaker",
        "health",
        "max_attempts",
        "deadline_s",
        "clock",
        "sleep",
        "asleep",
        "on_attempt",
        "name",
        "meter",
    }
)


class RoutedChatModel(BaseChatModel):
    """Route each call to the cheapest capable model, within budget, with fallback tiers.

    Attributes:
        router: A :class:`faremeter.routing.Router` over the models' catalog ids.
        models: Catalog id → the chat model (or bound runnable) that serves it;
            every router candidate needs one.
        meter: Where route spans and budgets live. ``None``: the meter of the
            run's ``FaremeterCallbackHandler`` if one is attached, else the
            process meter.
        chain_options: Keyword arguments for each call's fallback chain
            (``retry``, ``breaker``, ``health``, ``max_attempts``, ``deadline_s``,
            ``clock``, ``sleep``, ``asleep``, ``on_attempt``, ``name``, ``meter``).
        capabilities: Capabilities every call requires (``tools``, ``json``,
            ``vision``); ``bind_tools`` and ``with_structured_output`` add theirs.
        max_tokens: Completion cap assumed by the budget and cost estimates
            (a call's own ``max_tokens`` wins; else the models' common cap).
        response_cache: faremeter's response cache for routed calls; pass it as
            ``cache=`` (which then turns LangChain's own cache off for this model).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    router: Any
    models: dict[str, Any]
    meter: Any = Field(default=None, exclude=True)
    chain_options: dict[str, Any] = Field(default_factory=dict[str, Any])
    capabilities: frozenset[str] = frozenset()
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    stop: list[str] | None = None
    max_retries: int | None = None
    # LangChain's slot, also taking faremeter's cache (moved to response_cache).
    cache: BaseCache | bool | ResponseCache | None = Field(default=None, exclude=True)  # pyright: ignore[reportIncompatibleVariableOverride]
    response_cache: ResponseCache | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _take_response_cache(cls, data: Any) -> Any:
        """``cache=ResponseCache(...)`` is faremeter's; LangChain's slot is then off."""
        if isinstance(data, dict):
            given: dict[str, Any] = cast("dict[str, Any]", data)
            if isinstance(given.get("cache"), ResponseCache):
                return {**given, "response_cache": given["cache"], "cache": False}
        return cast("Any", data)

    @model_validator(mode="after")
    def _check_models(self) -> RoutedChatModel:
        if not isinstance(self.router, Router):
            raise ValueError("router must be a faremeter.routing.Router")
        missing = [c.model for c in self.router.candidates if c.model not in self.models]
        if missing:
            raise ValueError(
                f"router candidates without a chat model in models=: {', '.join(missing)}"
            )
        unknown = sorted(set(self.chain_options) - _CHAIN_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown chain_options {', '.join(unknown)} "
                f"(accepted: {', '.join(sorted(_CHAIN_OPTIONS))})"
            )
        return self

    # ------------------------------------------------------------ identity

    @property
    def _llm_type(self) -> str:
        return "faremeter-routed"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"models": sorted(self.models), "tiers": list(self.router.tiers)}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = ROUTED_LS_PROVIDER
        params["ls_model_name"] = kwargs.get("model", "routed")
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # ------------------------------------------------------------- routing

    def route(
        self,
        messages: Sequence[BaseMessage],
        metadata: Mapping[str, Any] | None = None,
        *,
        tags: Sequence[str] = (),
        capabilities: frozenset[str] = frozenset(),
    ) -> RouteDecision:
        """The routing decision for these messages, before budgets (what a call would pick).

        Attribution comes from ``faremeter.attributes(...)`` in force, then the
        run's metadata (LangGraph's node is the default ``step``); ``tags`` are
        the run's tags, which rules can match.
        """
        return self.router.route(
            RouteRequest(
                messages=messages,
                max_tokens=self.max_tokens,
                capabilities=self.capabilities | capabilities,
                attributes=_attribution(metadata),
                tags=tuple(tags),
            )
        )

    def routing(self, meter: Meter | None = None) -> ModelRouting:
        """The framework-neutral routed call this model runs (router, budgets, fallback).

        Args:
            meter: The meter to record into (``None``: this model's ``meter``,
                else the process meter).
        """
        options = {k: v for k, v in self.chain_options.items() if k != "meter"}
        options.setdefault("name", ROUTE_SPAN_NAME)
        cache = self.response_cache
        return ModelRouting(
            self.router,
            models=self.models,
            meter=meter,
            cache=cache,
            cache_identity=cache_identity(self.models) if cache is not None else None,
            **options,
        )

    def _cache_request(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The call as the cache key sees it, ``temperature`` as the models will run it."""
        request = {**kwargs, "messages": message_parts(messages), "stop": stop}
        if "temperature" not in kwargs:
            request["temperature"] = temperature_of(self.models)
        return request

    def _meter(self, handlers: Sequence[Any]) -> Meter | None:
        meter = self.meter or self.chain_options.get("meter")
        if meter is not None:
            return cast("Meter", meter)
        handler = _faremeter_handler(handlers)
        return handler.meter if handler is not None else None

    def _max_tokens(self, kwargs: Mapping[str, Any]) -> int | None:
        value = kwargs.get("max_tokens")
        if type(value) is int:
            return value
        if self.max_tokens is not None:
            return self.max_tokens
        caps = [getattr(m, "max_tokens", None) for m in self.models.values()]
        ints = [c for c in caps if type(c) is int]
        return max(ints) if ints and len(ints) == len(caps) else None

    def _prepare(self, messages: list[BaseMessage], run: _Run, kwargs: Mapping[str, Any]) -> _Call:
        handlers = _handlers(run.source)
        return _Call(
            routing=self.routing(self._meter(handlers)),
            messages=messages,
            capabilities=self.capabilities,
            max_tokens=self._max_tokens(kwargs),
            attributes=_attribution(_metadata(run.source)),
            tags=_tags(run.source),
            enclosing=_enclosing_span(handlers, run),
        )

    def _run(self, run_manager: Any, is_async: bool) -> _Run:
        """This run's callbacks: its run manager, else what ``stream``/``astream`` stashed.

        ``BaseChatModel.stream`` does not hand its run manager to ``_stream``;
        :meth:`stream` fixes the run's id and stashes its config, from which
        the same callbacks (and so the LangGraph node, tags and handlers) are
        rebuilt here.
        """
        if run_manager is not None:
            return _Run(run_id=run_manager.run_id, source=run_manager, is_async=is_async)
        stashed = _STREAM_RUN.get()
        if stashed is None:
            return _Run(run_id=None, source=None, is_async=is_async)
        run_id, config = stashed
        manager_cls = AsyncCallbackManager if is_async else CallbackManager
        manager = manager_cls.configure(
            config.get("callbacks"),
            self.callbacks,
            self.verbose,
            config.get("tags"),
            self.tags,
            config.get("metadata"),
            self.metadata,
        )
        return _Run(run_id=run_id, source=manager, is_async=is_async)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream from the routed model (falls back only before the first chunk)."""
        run_id, config = _with_run_id(config)
        token = _STREAM_RUN.set((run_id, config))
        try:
            chunks = super().stream(input, config, stop=stop, **kwargs)
            head = next(chunks, None)  # runs _stream's routing with the stash in place
        finally:
            _STREAM_RUN.reset(token)
        if head is None:
            return
        yield head
        yield from chunks

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async :meth:`stream`."""
        run_id, config = _with_run_id(config)
        token = _STREAM_RUN.set((run_id, config))
        try:
            chunks = super().astream(input, config, stop=stop, **kwargs)
            head = await anext(chunks, None)
        finally:
            _STREAM_RUN.reset(token)
        if head is None:
            return
        yield head
        async for chunk in chunks:
            yield chunk

    @staticmethod
    def _kwargs(plan: RoutePlan, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        if plan.degraded is not None and plan.max_tokens is not None:
            out["max_tokens"] = plan.max_tokens  # a degrade budget fitted the call
        return out

    @staticmethod
    def _with_route(message: BaseMessage, plan: RoutePlan) -> None:
        decision = plan.decision
        meta = dict(message.response_metadata or {})
        meta["faremeter_route"] = {
            "model": decision.model,
            "tier": decision.tier,
            "reason": decision.reason,
            "estimated_cost": str(decision.estimated_cost),
            "alternatives": list(decision.alternatives),
            "baseline_model": plan.baseline_model,
            "degraded": plan.degraded,
        }
        message.response_metadata = meta

    # ----------------------------------------------------------- generating

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        run = self._run(run_manager, False)
        call = self._prepare(messages, run, kwargs)
        config = _child_config(run)
        stop = stop or self.stop
        with call.inside():
            ticket = call.routing.lookup(
                lambda: self._cache_request(messages, stop, kwargs),
                MessageCodec(),
                attributes=call.attributes,
            )
            if ticket.hit is not None:
                return ChatResult(generations=[ChatGeneration(message=ticket.hit)])
            plan = call.plan()
            inner = self._kwargs(plan, kwargs)
            message: BaseMessage = call.routing.run(
                plan,
                lambda model: self.models[model].invoke(
                    messages, config=config, stop=stop, **inner
                ),
                cache=ticket,
            )
        self._with_route(message, plan)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        run = self._run(run_manager, True)
        call = self._prepare(messages, run, kwargs)
        config = _child_config(run)
        stop = stop or self.stop
        with call.inside():
            ticket = await call.routing.alookup(
                lambda: self._cache_request(messages, stop, kwargs),
                MessageCodec(),
                attributes=call.attributes,
            )
            if ticket.hit is not None:
                return ChatResult(generations=[ChatGeneration(message=ticket.hit)])
            plan = await call.aplan()
            inner = self._kwargs(plan, kwargs)

            async def invoke(model: str) -> BaseMessage:
                return await self.models[model].ainvoke(messages, config=config, stop=stop, **inner)

            message = await call.routing.arun(plan, invoke, cache=ticket)
        self._with_route(message, plan)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        run = self._run(run_manager, False)
        call = self._prepare(messages, run, kwargs)
        config = _child_config(run)
        stop = stop or self.stop
        # Route, admit and open the stream (falling back until a first chunk)
        # with the enclosing span current; the rest streams outside it.
        with call.inside():
            ticket = call.routing.lookup(
                lambda: self._cache_request(messages, stop, kwargs),
                StreamCodec(),
                attributes=call.attributes,
            )
        if ticket.hit is not None:  # served from the cache: no route, no model
            for cached in ticket.hit:
                yield self._emit(_as_chunk(cached), run_manager)
            return
        with call.inside():
            plan = call.plan()
            inner = self._kwargs(plan, kwargs)

            def open_stream(model: str) -> Iterator[BaseMessage]:
                return iter(self.models[model].stream(messages, config=config, stop=stop, **inner))

            chunks = call.routing.run_stream(plan, open_stream, cache=ticket)
            head = next(chunks, None)
        if head is None:
            return
        message = _as_chunk(head)
        self._with_route(message, plan)
        yield self._emit(message, run_manager)
        for chunk in chunks:
            yield self._emit(_as_chunk(chunk), run_manager)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        run = self._run(run_manager, True)
        call = self._prepare(messages, run, kwargs)
        config = _child_config(run)
        stop = stop or self.stop
        with call.inside():
            ticket = await call.routing.alookup(
                lambda: self._cache_request(messages, stop, kwargs),
                StreamCodec(),
                attributes=call.attributes,
            )
        if ticket.hit is not None:  # served from the cache: no route, no model
            for cached in ticket.hit:
                yield await self._aemit(_as_chunk(cached), run_manager)
            return
        with call.inside():
            plan = await call.aplan()
            inner = self._kwargs(plan, kwargs)

            async def open_stream(model: str) -> AsyncIterator[BaseMessage]:
                return aiter(
                    self.models[model].astream(messages, config=config, stop=stop, **inner)
                )

            chunks = call.routing.arun_stream(plan, open_stream, cache=ticket)
            head = await anext(chunks, None)
        if head is None:
            return
        message = _as_chunk(head)
        self._with_route(message, plan)
        yield await self._aemit(message, run_manager)
        async for chunk in chunks:
            yield await self._aemit(_as_chunk(chunk), run_manager)

    @staticmethod
    def _emit(
        message: AIMessageChunk, run_manager: CallbackManagerForLLMRun | None
    ) -> ChatGenerationChunk:
        chunk = ChatGenerationChunk(message=message)
        if run_manager is not None and isinstance(message.content, str):
            run_manager.on_llm_new_token(message.content, chunk=chunk)
        return chunk

    @staticmethod
    async def _aemit(
        message: AIMessageChunk, run_manager: AsyncCallbackManagerForLLMRun | None
    ) -> ChatGenerationChunk:
        chunk = ChatGenerationChunk(message=message)
        if run_manager is not None and isinstance(message.content, str):
            await run_manager.on_llm_new_token(message.content, chunk=chunk)
        return chunk

    # ------------------------------------------------------ tools and schemas

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind the tools to every routed model; only tool-calling models are routed to."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        bound = {name: m.bind_tools(tools, **kwargs) for name, m in self.models.items()}
        routed = self.model_copy(
            update={"models": bound, "capabilities": self.capabilities | {"tools"}}
        )
        return routed.bind()

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Route between the models' own structured-output runnables (JSON-capable only)."""
        structured = {
            name: m.with_structured_output(schema, include_raw=include_raw, **kwargs)
            for name, m in self.models.items()
        }
        needs = frozenset({"json"})

        def prepare(value: LanguageModelInput, config: RunnableConfig, manager: Any) -> _Call:
            messages = self._convert_input(value).to_messages()
            callbacks = config.get("callbacks")
            handlers = _handlers(callbacks) if callbacks is not None else []
            # This run is plumbing to faremeter's handler (ROUTED_STRUCTURED_RUN):
            # the route nests under the caller's span, as a routed invoke's does.
            run = _Run(run_id=getattr(manager, "run_id", None), source=manager, is_async=False)
            return _Call(
                routing=self.routing(self._meter(handlers)),
                messages=messages,
                capabilities=self.capabilities | needs,
                max_tokens=self._max_tokens({}),
                attributes=_attribution(config.get("metadata")),
                tags=tuple(config.get("tags") or ()),
                enclosing=_enclosing_span(handlers, run),
            )

        codec = StructuredCodec(schema, include_raw)

        def request(call: _Call) -> dict[str, Any]:
            return structured_request(call.messages, schema, include_raw, kwargs, self.models)

        def invoke(
            value: LanguageModelInput,
            run_manager: CallbackManagerForChainRun,
            config: RunnableConfig,
        ) -> Any:
            call = prepare(value, config, run_manager)
            with call.inside():
                ticket = call.routing.lookup(
                    lambda: request(call), codec, attributes=call.attributes
                )
                if ticket.hit is not None:
                    return ticket.hit
                plan = call.plan()
                return call.routing.run(
                    plan,
                    lambda model: structured[model].invoke(call.messages, config=config),
                    cache=ticket,
                )

        async def ainvoke(
            value: LanguageModelInput,
            run_manager: AsyncCallbackManagerForChainRun,
            config: RunnableConfig,
        ) -> Any:
            call = prepare(value, config, run_manager)
            with call.inside():
                ticket = await call.routing.alookup(
                    lambda: request(call), codec, attributes=call.attributes
                )
                if ticket.hit is not None:
                    return ticket.hit
                plan = await call.aplan()

                async def run(model: str) -> Any:
                    return await structured[model].ainvoke(call.messages, config=config)

                return await call.routing.arun(plan, run, cache=ticket)

        return RunnableLambda(invoke, afunc=ainvoke, name=ROUTED_STRUCTURED_RUN)


class _Call:
    """One routed call's inputs, gathered from the LangChain run before planning."""

    __slots__ = (
        "attributes",
        "capabilities",
        "enclosing",
        "max_tokens",
        "messages",
        "routing",
        "tags",
    )

    def __init__(
        self,
        *,
        routing: ModelRouting,
        messages: list[BaseMessage],
        capabilities: frozenset[str],
        max_tokens: int | None,
        attributes: dict[str, Any],
        tags: tuple[str, ...],
        enclosing: OpenSpan | None,
    ) -> None:
        self.routing = routing
        self.messages = messages
        self.capabilities = capabilities
        self.max_tokens = max_tokens
        self.attributes = attributes
        self.tags = tags
        self.enclosing = enclosing

    def plan(self) -> RoutePlan:
        return self.routing.plan(
            self.messages,
            capabilities=self.capabilities,
            max_tokens=self.max_tokens,
            attributes=self.attributes,
            tags=self.tags,
        )

    async def aplan(self) -> RoutePlan:
        return await self.routing.aplan(
            self.messages,
            capabilities=self.capabilities,
            max_tokens=self.max_tokens,
            attributes=self.attributes,
            tags=self.tags,
        )

    @contextlib.contextmanager
    def inside(self) -> Generator[None]:
        """The run's enclosing span current and its attribution in force while routing.

        So the route span (and a denial) nests under the LangGraph node that
        made the call and carries its ``step``, like the chosen model's span.
        """
        from faremeter.context import activate, attributes, deactivate

        token = activate(self.enclosing) if self.enclosing is not None else None
        try:
            with attributes(**self.attributes):
                yield
        finally:
            if token is not None:
                deactivate(token)


def _attribution(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes in force, then the run's user metadata (LangGraph's node as ``step``)."""
    attrs: dict[str, Any] = dict(current_attributes())
    if not metadata:
        return attrs
    node = metadata.get("langgraph_node")
    if "step" not in attrs and isinstance(node, str):
        attrs["step"] = node
    agent = metadata.get("lc_agent_name")
    if "agent" not in attrs and isinstance(agent, str):
        attrs["agent"] = agent
    for key, value in metadata.items():
        if key in attrs or not isinstance(value, _SIMPLE) or key.startswith(_INTERNAL_PREFIXES):
            continue
        try:
            validate_attribute_name(key)
        except ValueError:
            continue  # not an attribute name faremeter can record: not attribution
        attrs[key] = value
    return attrs


def _metadata(run_manager: Any) -> Mapping[str, Any]:
    meta = getattr(run_manager, "metadata", None)
    return cast("Mapping[str, Any]", meta) if isinstance(meta, Mapping) else {}


def _tags(run_manager: Any) -> tuple[str, ...]:
    tags = getattr(run_manager, "tags", None)
    if not isinstance(tags, list):
        return ()
    return tuple(t for t in cast("list[Any]", tags) if isinstance(t, str))


def _handlers(source: Any) -> list[Any]:
    """The callback handlers of a run manager, a callback manager or a list of handlers."""
    if isinstance(source, list | tuple):
        return list(cast("Sequence[Any]", source))
    handlers = getattr(source, "handlers", None)
    if isinstance(source, BaseCallbackManager) or isinstance(handlers, list):
        return list(cast("list[Any]", handlers or []))
    return []


def _faremeter_handler(handlers: Sequence[Any]) -> Any:
    from faremeter_langchain._handler import FaremeterCallbackHandler

    for handler in handlers:
        if isinstance(handler, FaremeterCallbackHandler):
            return handler
    return None


def _enclosing_span(handlers: Sequence[Any], run: _Run) -> OpenSpan | None:
    """The faremeter span of the run calling this model (its LangGraph node), if recorded.

    A handler that records this routed run itself keeps it current; otherwise
    the route span nests under the caller's span rather than wherever the
    context happens to point.
    """
    handler = _faremeter_handler(handlers)
    if handler is None or run.source is None:
        return None
    if run.run_id is not None and handler.calls.span(run.run_id) is not None:
        return None  # recorded as a span of its own, already current
    parent = getattr(run.source, "parent_run_id", None)
    return handler.calls.span(parent) if parent is not None else None


def _child_config(run: _Run) -> RunnableConfig:
    """Callbacks for the delegated call, as children of this (LLM) run.

    LLM run managers have no ``get_child`` (only chain runs do); this builds
    the same manager ``ParentRunManager.get_child`` would, so tracers see the
    chosen model's run nested under the routed one. The router's own
    ``ls_*`` metadata is dropped: the chosen model reports its own.
    """
    source = run.source
    if source is None:
        return {}
    manager_cls = AsyncCallbackManager if run.is_async else CallbackManager
    manager = manager_cls(handlers=[], parent_run_id=run.run_id)
    manager.set_handlers(source.inheritable_handlers)
    manager.add_tags(source.inheritable_tags)
    metadata = cast("Mapping[str, Any]", source.inheritable_metadata or {})
    manager.add_metadata({k: v for k, v in metadata.items() if not k.startswith("ls_")})
    return {"callbacks": manager}


@dataclass(frozen=True, kw_only=True, slots=True)
class _Run:
    """This model's LangChain run: its id and where its callbacks, tags and metadata are."""

    run_id: UUID | None
    source: Any  # a run manager, or a callback manager rebuilt from a stream's config
    is_async: bool


# (run id, config) of the ``stream``/``astream`` call whose ``_stream`` is starting.
_STREAM_RUN: contextvars.ContextVar[tuple[UUID, RunnableConfig] | None] = contextvars.ContextVar(
    "faremeter_routed_stream_run", default=None
)


def _with_run_id(config: RunnableConfig | None) -> tuple[UUID, RunnableConfig]:
    """The config with a fixed run id, so ``_stream`` knows which run it serves."""
    out = ensure_config(config)
    run_id = out.get("run_id")
    if run_id is None:
        run_id = out["run_id"] = uuid.uuid4()
    return run_id, out


def _as_chunk(chunk: Any) -> AIMessageChunk:
    if isinstance(chunk, AIMessageChunk):
        return chunk
    if isinstance(chunk, BaseMessage):
        return AIMessageChunk(
            content=chunk.content,
            response_metadata=dict(chunk.response_metadata or {}),
            id=chunk.id,
        )
    return AIMessageChunk(content=str(chunk))
