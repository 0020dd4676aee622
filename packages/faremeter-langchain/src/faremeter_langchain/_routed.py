"""`RoutedChatModel`: a LangChain chat model that routes every call, with fallback.

It wraps the chat models you already have, one per router candidate::

    model = RoutedChatModel(
        router=Router({"economy": ["gpt-4o-mini"], "standard": ["gpt-4o"]}, steps=...),
        models={"gpt-4o-mini": ChatOpenAI(model="gpt-4o-mini"),
                "gpt-4o": ChatOpenAI(model="gpt-4o")},
    )

Per call, the faremeter router picks a model from the messages, the step
(LangGraph's node by default) and the attribution in force, and a
``FallbackChain`` calls it — retrying, then moving to the decision's
alternatives by error class. ``bind_tools`` requires tool calling from every
routed model and binds the tools to each; ``with_structured_output`` requires
JSON output and routes between the models' structured runnables. Streams fall
back only before their first chunk.

The decision (model, reason, estimated cost, alternatives) is in the run's
``response_metadata["faremeter_route"]``, and with a ``meter`` on the chain's
call span as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from pydantic import ConfigDict, Field, model_validator

from faremeter.context import current_attributes
from faremeter.fallback import FallbackChain
from faremeter.routing import RouteDecision, Router, RouteRequest

__all__ = ["RoutedChatModel"]

_SIMPLE = (str, int, float, bool)


class RoutedChatModel(BaseChatModel):
    """Route each call to the cheapest capable model, with fallback tiers.

    Attributes:
        router: A :class:`faremeter.routing.Router` over the models' catalog ids.
        models: Catalog id → the chat model (or bound runnable) that serves it;
            every router candidate needs one.
        chain_options: Keyword arguments for each call's ``FallbackChain``
            (``retry``, ``breaker``, ``health``, ``max_attempts``, ``deadline_s``,
            ``meter``, ``last_resort`` ...).
        capabilities: Capabilities every call requires (``tools``, ``json``,
            ``vision``); ``bind_tools`` and ``with_structured_output`` add theirs.
        max_tokens: Completion cap assumed by the cost estimate.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    router: Any
    models: dict[str, Any]
    chain_options: dict[str, Any] = Field(default_factory=dict[str, Any])
    capabilities: frozenset[str] = frozenset()
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    stop: list[str] | None = None
    max_retries: int | None = None

    @model_validator(mode="after")
    def _check_models(self) -> RoutedChatModel:
        if not isinstance(self.router, Router):
            raise ValueError("router must be a faremeter.routing.Router")
        missing = [c.model for c in self.router.candidates if c.model not in self.models]
        if missing:
            raise ValueError(
                f"router candidates without a chat model in models=: {', '.join(missing)}"
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
        params["ls_provider"] = "faremeter"
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
        """The routing decision for these messages (what a call would use).

        Attribution comes from ``faremeter.attributes(...)`` in force, then the
        run's metadata (LangGraph's node is the default ``step``); ``tags`` are
        the run's tags, which rules can match.
        """
        attrs: dict[str, Any] = dict(current_attributes())
        for key, value in (metadata or {}).items():
            if isinstance(value, _SIMPLE) and key not in attrs:
                attrs[key] = value
        if "step" not in attrs and isinstance(attrs.get("langgraph_node"), str):
            attrs["step"] = attrs["langgraph_node"]
        return self.router.route(
            RouteRequest(
                messages=messages,
                max_tokens=self.max_tokens,
                capabilities=self.capabilities | capabilities,
                attributes=attrs,
                tags=tuple(tags),
            )
        )

    def _chain(self, decision: RouteDecision) -> FallbackChain:
        options = dict(self.chain_options)
        options.setdefault("name", "routed")
        return FallbackChain.from_decision(decision, self.router, **options)

    @staticmethod
    def _with_route(message: BaseMessage, decision: RouteDecision) -> None:
        meta = dict(message.response_metadata or {})
        meta["faremeter_route"] = {
            "model": decision.model,
            "tier": decision.tier,
            "reason": decision.reason,
            "estimated_cost": str(decision.estimated_cost),
            "alternatives": list(decision.alternatives),
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
        decision = self.route(messages, _metadata(run_manager), tags=_tags(run_manager))
        config = _child_config(run_manager)
        stop = stop or self.stop

        def call(model: str) -> BaseMessage:
            return self.models[model].invoke(messages, config=config, stop=stop, **kwargs)

        message = self._chain(decision).call(call, attributes=decision.as_attributes())
        self._with_route(message, decision)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        decision = self.route(messages, _metadata(run_manager), tags=_tags(run_manager))
        config = _child_config(run_manager)
        stop = stop or self.stop

        async def call(model: str) -> BaseMessage:
            return await self.models[model].ainvoke(messages, config=config, stop=stop, **kwargs)

        message = await self._chain(decision).acall(call, attributes=decision.as_attributes())
        self._with_route(message, decision)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        decision = self.route(messages, _metadata(run_manager), tags=_tags(run_manager))
        config = _child_config(run_manager)
        stop = stop or self.stop

        def open_stream(model: str) -> Iterator[BaseMessage]:
            return iter(self.models[model].stream(messages, config=config, stop=stop, **kwargs))

        first = True
        chain = self._chain(decision)
        for chunk in chain.stream(open_stream, attributes=decision.as_attributes()):
            message = _as_chunk(chunk)
            if first:
                self._with_route(message, decision)
                first = False
            if run_manager is not None and isinstance(message.content, str):
                run_manager.on_llm_new_token(
                    message.content, chunk=ChatGenerationChunk(message=message)
                )
            yield ChatGenerationChunk(message=message)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        decision = self.route(messages, _metadata(run_manager), tags=_tags(run_manager))
        config = _child_config(run_manager)
        stop = stop or self.stop

        def open_stream(model: str) -> AsyncIterator[BaseMessage]:
            return aiter(self.models[model].astream(messages, config=config, stop=stop, **kwargs))

        first = True
        chain = self._chain(decision)
        async for chunk in chain.astream(open_stream, attributes=decision.as_attributes()):
            message = _as_chunk(chunk)
            if first:
                self._with_route(message, decision)
                first = False
            if run_manager is not None and isinstance(message.content, str):
                await run_manager.on_llm_new_token(
                    message.content, chunk=ChatGenerationChunk(message=message)
                )
            yield ChatGenerationChunk(message=message)

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
        needs = self.capabilities | {"json"}

        def pick(value: LanguageModelInput) -> tuple[RouteDecision, list[BaseMessage]]:
            messages = self._convert_input(value).to_messages()
            return self.route(messages, capabilities=needs), messages

        def invoke(value: LanguageModelInput, config: RunnableConfig) -> Any:
            decision, messages = pick(value)
            return self._chain(decision).call(
                lambda model: structured[model].invoke(messages, config=config),
                attributes=decision.as_attributes(),
            )

        async def ainvoke(value: LanguageModelInput, config: RunnableConfig) -> Any:
            decision, messages = pick(value)

            async def call(model: str) -> Any:
                return await structured[model].ainvoke(messages, config=config)

            return await self._chain(decision).acall(call, attributes=decision.as_attributes())

        return RunnableLambda(invoke, afunc=ainvoke, name="RoutedStructuredOutput")


def _metadata(run_manager: Any) -> Mapping[str, Any]:
    meta = getattr(run_manager, "metadata", None)
    return cast("Mapping[str, Any]", meta) if isinstance(meta, Mapping) else {}


def _tags(run_manager: Any) -> tuple[str, ...]:
    tags = getattr(run_manager, "tags", None)
    if not isinstance(tags, list):
        return ()
    return tuple(t for t in cast("list[Any]", tags) if isinstance(t, str))


def _child_config(run_manager: Any) -> RunnableConfig:
    """Callbacks for the delegated call, as children of this (LLM) run.

    LLM run managers have no ``get_child`` (only chain runs do); this builds
    the same manager ``ParentRunManager.get_child`` would, so tracers and
    faremeter's handler see the chosen model's run nested under the routed one.
    """
    if run_manager is None:
        return {}
    manager_cls = (
        AsyncCallbackManager
        if isinstance(run_manager, AsyncCallbackManagerForLLMRun)
        else CallbackManager
    )
    manager = manager_cls(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return {"callbacks": manager}


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
