"""``RoutedLLM``: a LlamaIndex LLM that picks one of your LLMs per call, within budget.

Give it faremeter's :class:`~faremeter.routing.Router` and one LlamaIndex LLM
per router model; every ``chat`` / ``complete`` / stream / async / tool call
is routed (rules by ``step``, the complexity score, capabilities: a call with
tools only goes to a function-calling model), admitted against the meter's
budgets (``deny`` raises :class:`~faremeter.BudgetExceeded` before anything is
sent, ``degrade`` shrinks ``max_tokens`` or routes to a model that fits) and
run through a :class:`~faremeter.fallback.FallbackChain` (retries, fallbacks,
breakers; every attempt a span). A ``FunctionAgent`` uses it like any LLM.

One charge per request: the chosen LLM's own call is the priced span (through
:func:`faremeter_llamaindex.instrument`); the routed call is a ``chain`` span
carrying the decision log. ``RoutedLLM``'s own methods deliberately open no
LlamaIndex instrumentation span (they are marked as already decorated), so
faremeter's handler never mistakes the router for a second model call.

With ``cache=ResponseCache(...)`` a repeated deterministic call (``chat``,
``complete``, with tools, streamed or not, sync or async) is served from the
cache before routing and budgets: no LLM is called, and the call is one
``cached`` span with ``saved`` = what the first one cost. The key is the
messages (or prompt), the tools and every answer-changing parameter, plus
this router's LLMs — not the LLM the router would pick, so an answer is
served whichever tier produced it (see :mod:`faremeter.routing.routed_cache`).
A call is deterministic when ``temperature=0`` is passed, or when every LLM
is configured with ``temperature=0``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.function_calling import FunctionCallingLLM
from pydantic import Field, PrivateAttr

from faremeter.routing.routed_call import ModelRouting, RoutePlan
from faremeter_llamaindex._routed_cache import (
    ChatCodec,
    ChatStreamCodec,
    CompletionCodec,
    CompletionStreamCodec,
    cache_identity,
    common_setting,
    message_parts,
)

if TYPE_CHECKING:
    from llama_index.core.llms.llm import ToolSelection
    from llama_index.core.tools.types import BaseTool

    from faremeter.caching import ResponseCache
    from faremeter.fallback import Attempt, Breaker, HealthTracker, RetryPolicy
    from faremeter.meter import Meter
    from faremeter.routing import Router
    from faremeter.routing.routed_cache import CacheTicket, ResponseCodec

__all__ = ["ROUTED_MODEL_KEY", "RoutedLLM"]

ROUTED_MODEL_KEY = "faremeter_routed_model"
"""``ChatResponse.additional_kwargs`` key naming the LLM that answered."""

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def _no_dispatcher_span(fn: _F) -> _F:
    """Keep LlamaIndex's mixin from wrapping ``fn`` in an instrumentation span.

    ``Dispatcher.span`` is idempotent through this marker; the routed call is
    plumbing around the chosen LLM's call, which keeps its own span.
    """
    fn.__dispatcher_span_decorated__ = True  # type: ignore[attr-defined]
    return fn


def _replay(chunks: list[Any]) -> Generator[Any, None, None]:
    """A cache hit on a stream call: the stored response as its one chunk."""
    yield from chunks


async def _areplay(chunks: list[Any]) -> AsyncGenerator[Any, None]:
    for chunk in chunks:
        yield chunk


def _extra(response: ChatResponse) -> dict[str, Any]:
    return cast("dict[str, Any]", getattr(response, "additional_kwargs"))  # noqa: B009 - typed as a bare dict


def _stamp_chat(response: ChatResponse, model: str) -> ChatResponse:
    _extra(response)[ROUTED_MODEL_KEY] = model
    return response


class RoutedLLM(FunctionCallingLLM):
    """A LlamaIndex LLM routing each call to one of ``llms`` through faremeter's router.

    Args:
        router: Chooses the model per call; every router model needs an LLM.
        llms: Router model name → the LlamaIndex LLM to call for it.
        meter: Spans and budgets (``None``: the process meter).
        attributes: Attribution the router matches rules on (``step`` ...),
            merged over what is in force (``faremeter.attributes``).
        retry: Retries and next steps per error class.
        breaker: Circuit breaker per model.
        health: Rolling health per model.
        max_attempts: Real attempts per call across models.
        deadline_s: No attempt starts later than this after the call began.
        clock: Monotonic clock of the chain (inject in tests).
        sleep: Sync sleep between retries (inject in tests).
        asleep: Async sleep between retries.
        on_attempt: Called with every attempt as it is decided.
        instrument: On first use, install faremeter's LlamaIndex handlers when
            none are installed (the chosen LLM's call is the priced layer).
        cache: Serve repeated deterministic calls from this response cache
            (before routing and budgets); misses are stored.

    Raises:
        ValueError: A router model has no LLM, or an LLM no router model.

    Example:
        >>> llm = RoutedLLM(router=router, llms={"gpt-4o-mini": OpenAI("gpt-4o-mini"),
        ...                                      "gpt-4o": OpenAI("gpt-4o")})
        >>> agent = FunctionAgent(tools=tools, llm=llm)
    """

    router: Any = Field(default=None, exclude=True, description="faremeter Router")
    llms: dict[str, Any] = Field(default_factory=dict, exclude=True, description="model -> LLM")
    attributes: dict[str, Any] = Field(default_factory=dict, description="routing attributes")
    instrument: bool = Field(default=True, description="install faremeter's handlers on use")
    _routing: ModelRouting = PrivateAttr()
    _meter: Any = PrivateAttr(default=None)
    _checked: bool = PrivateAttr(default=False)

    def __init__(
        self,
        router: Router,
        llms: Mapping[str, Any],
        *,
        meter: Meter | None = None,
        attributes: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        breaker: Breaker | None = None,
        health: HealthTracker | None = None,
        max_attempts: int = 6,
        deadline_s: float | None = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_attempt: Callable[[Attempt], None] | None = None,
        instrument: bool = True,
        cache: ResponseCache | None = None,
        **kwargs: Any,
    ) -> None:
        extra = sorted(set(llms) - {c.model for c in router.candidates})
        if extra:
            raise ValueError(
                f"llms {', '.join(extra)} are in no router tier "
                f"(router models: {', '.join(c.model for c in router.candidates)})"
            )
        super().__init__(
            router=router,
            llms=dict(llms),
            attributes=dict(attributes or {}),
            instrument=instrument,
            **kwargs,
        )
        self._meter = meter
        self._routing = ModelRouting(
            router,
            models=self.llms,
            meter=meter,
            retry=retry,
            breaker=breaker,
            health=health,
            max_attempts=max_attempts,
            deadline_s=deadline_s,
            clock=clock,
            sleep=sleep,
            asleep=asleep,
            on_attempt=on_attempt,
            name="llamaindex.route",
            cache=cache,
            cache_identity=cache_identity(self.llms) if cache is not None else None,
        )

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "RoutedLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """What holds for every routed LLM: the smallest window, any function calling."""
        metas = [llm.metadata for llm in self.llms.values()]
        return LLMMetadata(
            context_window=min(m.context_window for m in metas),
            num_output=min(m.num_output for m in metas),
            is_chat_model=all(m.is_chat_model for m in metas),
            is_function_calling_model=any(m.is_function_calling_model for m in metas),
            model_name="faremeter-routed",
        )

    @property
    def routing(self) -> ModelRouting:
        """The framework-neutral routing core (router, budgets, fallback chain)."""
        return self._routing

    # ---------------------------------------------------------------- planning

    def _ensure_instrumented(self) -> None:
        if self._checked or not self.instrument:
            return
        self._checked = True
        from llama_index_instrumentation import get_dispatcher

        import faremeter_llamaindex

        dispatcher = get_dispatcher()
        handlers: list[Any] = list(dispatcher.span_handlers)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        if not any(isinstance(h, faremeter_llamaindex.FaremeterSpanHandler) for h in handlers):
            faremeter_llamaindex.instrument(self._meter)

    def _max_tokens(self, kwargs: Mapping[str, Any]) -> int | None:
        value = kwargs.get("max_tokens")
        if type(value) is int:
            return value
        caps = [getattr(llm, "max_tokens", None) for llm in self.llms.values()]
        ints = [c for c in caps if type(c) is int]
        return max(ints) if ints and len(ints) == len(caps) else None

    def _plan(self, messages: Any, kwargs: Mapping[str, Any], tools: bool = False) -> RoutePlan:
        self._ensure_instrumented()
        return self._routing.plan(
            messages,
            capabilities=("tools",) if tools else (),
            max_tokens=self._max_tokens(kwargs),
            attributes=self.attributes,
        )

    async def _aplan(
        self, messages: Any, kwargs: Mapping[str, Any], tools: bool = False
    ) -> RoutePlan:
        self._ensure_instrumented()
        return await self._routing.aplan(
            messages,
            capabilities=("tools",) if tools else (),
            max_tokens=self._max_tokens(kwargs),
            attributes=self.attributes,
        )

    # ----------------------------------------------------------------- caching

    def _request(self, call: str, kwargs: Mapping[str, Any], **parts: Any) -> dict[str, Any]:
        """The call as the cache key sees it, ``temperature`` as it will run."""
        request = {**kwargs, **parts, "call": call}
        if "temperature" not in kwargs:
            request["temperature"] = common_setting(self.llms, "temperature")
        return request

    def _lookup(
        self, codec: ResponseCodec[_T], call: str, kwargs: Mapping[str, Any], **parts: Any
    ) -> CacheTicket[_T]:
        self._ensure_instrumented()
        return self._routing.lookup(
            lambda: self._request(call, kwargs, **parts), codec, attributes=self.attributes
        )

    async def _alookup(
        self, codec: ResponseCodec[_T], call: str, kwargs: Mapping[str, Any], **parts: Any
    ) -> CacheTicket[_T]:
        self._ensure_instrumented()
        return await self._routing.alookup(
            lambda: self._request(call, kwargs, **parts), codec, attributes=self.attributes
        )

    @staticmethod
    def _tool_parts(
        tools: Sequence[BaseTool],
        messages: Sequence[ChatMessage],
        allow_parallel_tool_calls: bool,
        tool_required: bool,
    ) -> dict[str, Any]:
        return {
            "messages": message_parts(messages),
            "tools": [t.metadata.to_openai_tool(skip_length_check=True) for t in tools],
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            "tool_required": tool_required,
        }

    @staticmethod
    def _kw(plan: RoutePlan, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        if plan.degraded is not None and plan.max_tokens is not None:
            out["max_tokens"] = plan.max_tokens
        return out

    def _stream(
        self,
        plan: RoutePlan,
        open_: Callable[[str], Any],
        stamp: bool,
        cache: CacheTicket[list[Any]],
    ) -> Generator[Any, None, None]:
        def opened(model: str) -> Generator[Any, None, None]:
            for chunk in open_(model):
                yield _stamp_chat(chunk, model) if stamp else chunk

        yield from self._routing.run_stream(plan, opened, cache=cache)

    async def _astream(
        self,
        plan: RoutePlan,
        open_: Callable[[str], Awaitable[Any]],
        stamp: bool,
        cache: CacheTicket[list[Any]],
    ) -> AsyncGenerator[Any, None]:
        async def opened(model: str) -> AsyncGenerator[Any, None]:
            inner = await open_(model)

            async def gen() -> AsyncGenerator[Any, None]:
                async for chunk in inner:
                    yield _stamp_chat(chunk, model) if stamp else chunk

            return gen()

        async for chunk in self._routing.arun_stream(plan, opened, cache=cache):
            yield chunk

    # -------------------------------------------------------------------- chat

    @_no_dispatcher_span
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat with the routed LLM."""
        ticket = self._lookup(ChatCodec(), "chat", kwargs, messages=message_parts(messages))
        if ticket.hit is not None:
            return ticket.hit
        plan = self._plan(messages, kwargs)
        return self._routing.run(
            plan,
            lambda m: _stamp_chat(self.llms[m].chat(messages, **self._kw(plan, kwargs)), m),
            cache=ticket,
        )

    @_no_dispatcher_span
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`."""
        ticket = await self._alookup(ChatCodec(), "chat", kwargs, messages=message_parts(messages))
        if ticket.hit is not None:
            return ticket.hit
        plan = await self._aplan(messages, kwargs)

        async def call(m: str) -> ChatResponse:
            return _stamp_chat(await self.llms[m].achat(messages, **self._kw(plan, kwargs)), m)

        return await self._routing.arun(plan, call, cache=ticket)

    @_no_dispatcher_span
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat; falls back only before the first chunk."""
        chunks = self._lookup(ChatStreamCodec(), "chat", kwargs, messages=message_parts(messages))
        if chunks.hit is not None:
            return _replay(chunks.hit)
        plan = self._plan(messages, kwargs)
        return self._stream(
            plan,
            lambda m: self.llms[m].stream_chat(messages, **self._kw(plan, kwargs)),
            True,
            chunks,
        )

    @_no_dispatcher_span
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""
        chunks = await self._alookup(
            ChatStreamCodec(), "chat", kwargs, messages=message_parts(messages)
        )
        if chunks.hit is not None:
            return _areplay(chunks.hit)
        plan = await self._aplan(messages, kwargs)
        return self._astream(
            plan,
            lambda m: self.llms[m].astream_chat(messages, **self._kw(plan, kwargs)),
            True,
            chunks,
        )

    # ---------------------------------------------------------------- complete

    @_no_dispatcher_span
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete with the routed LLM."""
        ticket = self._lookup(
            CompletionCodec(), "complete", kwargs, prompt=prompt, formatted=formatted
        )
        if ticket.hit is not None:
            return ticket.hit
        plan = self._plan(prompt, kwargs)
        return self._routing.run(
            plan,
            lambda m: self.llms[m].complete(prompt, formatted, **self._kw(plan, kwargs)),
            cache=ticket,
        )

    @_no_dispatcher_span
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async :meth:`complete`."""
        ticket = await self._alookup(
            CompletionCodec(), "complete", kwargs, prompt=prompt, formatted=formatted
        )
        if ticket.hit is not None:
            return ticket.hit
        plan = await self._aplan(prompt, kwargs)

        async def call(m: str) -> CompletionResponse:
            return await self.llms[m].acomplete(prompt, formatted, **self._kw(plan, kwargs))

        return await self._routing.arun(plan, call, cache=ticket)

    @_no_dispatcher_span
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a completion; falls back only before the first chunk."""
        chunks = self._lookup(
            CompletionStreamCodec(), "complete", kwargs, prompt=prompt, formatted=formatted
        )
        if chunks.hit is not None:
            return _replay(chunks.hit)
        plan = self._plan(prompt, kwargs)
        return self._stream(
            plan,
            lambda m: self.llms[m].stream_complete(prompt, formatted, **self._kw(plan, kwargs)),
            False,
            chunks,
        )

    @_no_dispatcher_span
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        chunks = await self._alookup(
            CompletionStreamCodec(), "complete", kwargs, prompt=prompt, formatted=formatted
        )
        if chunks.hit is not None:
            return _areplay(chunks.hit)
        plan = await self._aplan(prompt, kwargs)
        return self._astream(
            plan,
            lambda m: self.llms[m].astream_complete(prompt, formatted, **self._kw(plan, kwargs)),
            False,
            chunks,
        )

    # ------------------------------------------------------------------- tools

    @staticmethod
    def _tool_messages(
        user_msg: str | ChatMessage | None, chat_history: list[ChatMessage] | None
    ) -> list[ChatMessage]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        return messages

    @_no_dispatcher_span
    def chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Chat with tools on a function-calling model the router picks."""
        messages = self._tool_messages(user_msg, chat_history)
        parts = self._tool_parts(tools, messages, allow_parallel_tool_calls, tool_required)
        ticket = self._lookup(ChatCodec(), "chat_with_tools", kwargs, **parts)
        if ticket.hit is not None:
            return ticket.hit
        plan = self._plan(messages, kwargs, bool(tools))

        def call(m: str) -> ChatResponse:
            response = self.llms[m].chat_with_tools(
                tools,
                user_msg=user_msg,
                chat_history=chat_history,
                verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required,
                **self._kw(plan, kwargs),
            )
            return _stamp_chat(response, m)

        return self._routing.run(plan, call, cache=ticket)

    @_no_dispatcher_span
    async def achat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Async :meth:`chat_with_tools`."""
        messages = self._tool_messages(user_msg, chat_history)
        parts = self._tool_parts(tools, messages, allow_parallel_tool_calls, tool_required)
        ticket = await self._alookup(ChatCodec(), "chat_with_tools", kwargs, **parts)
        if ticket.hit is not None:
            return ticket.hit
        plan = await self._aplan(messages, kwargs, bool(tools))

        async def call(m: str) -> ChatResponse:
            response = await self.llms[m].achat_with_tools(
                tools,
                user_msg=user_msg,
                chat_history=chat_history,
                verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required,
                **self._kw(plan, kwargs),
            )
            return _stamp_chat(response, m)

        return await self._routing.arun(plan, call, cache=ticket)

    @_no_dispatcher_span
    def stream_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseGen:
        """Stream a chat with tools; falls back only before the first chunk."""
        messages = self._tool_messages(user_msg, chat_history)
        parts = self._tool_parts(tools, messages, allow_parallel_tool_calls, tool_required)
        chunks = self._lookup(ChatStreamCodec(), "chat_with_tools", kwargs, **parts)
        if chunks.hit is not None:
            return _replay(chunks.hit)
        plan = self._plan(messages, kwargs, bool(tools))
        return self._stream(
            plan,
            lambda m: self.llms[m].stream_chat_with_tools(
                tools,
                user_msg=user_msg,
                chat_history=chat_history,
                verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required,
                **self._kw(plan, kwargs),
            ),
            True,
            chunks,
        )

    @_no_dispatcher_span
    async def astream_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat_with_tools` (what a streaming ``FunctionAgent`` calls)."""
        messages = self._tool_messages(user_msg, chat_history)
        parts = self._tool_parts(tools, messages, allow_parallel_tool_calls, tool_required)
        chunks = await self._alookup(ChatStreamCodec(), "chat_with_tools", kwargs, **parts)
        if chunks.hit is not None:
            return _areplay(chunks.hit)
        plan = await self._aplan(messages, kwargs, bool(tools))
        return self._astream(
            plan,
            lambda m: self.llms[m].astream_chat_with_tools(
                tools,
                user_msg=user_msg,
                chat_history=chat_history,
                verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required,
                **self._kw(plan, kwargs),
            ),
            True,
            chunks,
        )

    def _answering(self, response: ChatResponse) -> Any:
        model = _extra(response).get(ROUTED_MODEL_KEY)
        if isinstance(model, str) and model in self.llms:
            return self.llms[model]
        for llm in self.llms.values():
            if llm.metadata.is_function_calling_model:
                return llm
        return next(iter(self.llms.values()))

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """Read tool calls the way the LLM that answered writes them."""
        return self._answering(response).get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Unused (every tool method is routed); kept for the abstract interface."""
        messages = self._tool_messages(user_msg, chat_history)
        return {"messages": messages, "tools": tools, **kwargs}
