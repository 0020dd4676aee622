"""Routed ``completion`` / ``acompletion``: faremeter picks the model string, then falls back.

Use these when your code calls ``litellm.completion`` directly (no
``litellm.Router``): faremeter's :class:`~faremeter.routing.Router` picks the
cheapest capable model for each call (rules by ``step``/``workflow``, the
complexity score, budget headroom), a :class:`~faremeter.fallback.FallbackChain`
retries and falls back across the decision's alternatives, and budgets are
enforced before anything is sent. If you already run a ``litellm.Router``
(deployments, keys, rate limits), plug faremeter in as its routing strategy
instead: :mod:`faremeter_litellm.routing_strategy`.

Each LiteLLM request is priced by faremeter's LiteLLM logger
(:func:`faremeter_litellm.instrument`, installed on first use when nothing is
instrumented yet); the routed call itself is a ``chain`` span carrying the
decision log, so a request is charged once.

With ``cache=ResponseCache(...)`` a repeated deterministic request is served
from the cache before routing and budgets: no request is sent, and the call
is one ``cached`` span with ``saved`` = what the first one cost. The key is
the messages and every parameter that changes the answer, plus this routed
completion's models — not the model the router would pick, so an answer is
served whichever tier produced it (see :mod:`faremeter.routing.routed_cache`).

Example:
    >>> from faremeter.routing import Router
    >>> from faremeter_litellm.routed import RoutedCompletion
    >>> routed = RoutedCompletion(Router({"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]}))
    >>> reply = routed.completion(messages=[{"role": "user", "content": "hi"}])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from faremeter.routing.routed_call import ModelRouting, RoutePlan
from faremeter_litellm._routed_cache import (
    CompletionCodec,
    StreamCodec,
    cache_identity,
    cache_request,
)

if TYPE_CHECKING:
    from faremeter.caching import ResponseCache
    from faremeter.fallback import Attempt, Breaker, HealthTracker, RetryPolicy
    from faremeter.meter import Meter
    from faremeter.routing import Router

__all__ = ["RoutedCompletion", "acompletion", "completion", "request_capabilities"]


def request_capabilities(kwargs: Mapping[str, Any]) -> frozenset[str]:
    """The capabilities a LiteLLM request needs: ``tools``, ``json``, ``vision``."""
    caps: set[str] = set()
    if kwargs.get("tools") or kwargs.get("functions"):
        caps.add("tools")
    fmt = kwargs.get("response_format")
    if fmt is not None and not (isinstance(fmt, Mapping) and fmt.get("type") == "text"):  # pyright: ignore[reportUnknownMemberType]
        caps.add("json")
    messages = kwargs.get("messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        for message in cast("Sequence[object]", messages):
            content = _content(message)
            if any(_is_image(part) for part in content):
                caps.add("vision")
                break
    return frozenset(caps)


def _content(message: object) -> list[object]:
    if not isinstance(message, Mapping):
        return []
    content = cast("Mapping[str, object]", message).get("content")
    return cast("list[object]", content) if isinstance(content, list) else []


def _is_image(part: object) -> bool:
    if not isinstance(part, Mapping):
        return False
    return cast("Mapping[str, object]", part).get("type") in ("image_url", "image")


class RoutedCompletion:
    """``completion`` / ``acompletion`` that route, enforce budgets and fall back by model string.

    Args:
        router: Chooses the model per call.
        models: Router model name → what to send LiteLLM for it: a model
            string (``"azure/my-gpt4o"``) or a dict of LiteLLM kwargs for that
            model (``{"model": "azure/x", "api_base": ...}``). Models not listed
            are sent as named.
        meter: Where spans and budgets live (``None``: the process meter).
        retry: Retries and next steps per error class.
        breaker: Circuit breaker per model.
        health: Rolling health per model.
        max_attempts: Real attempts per call across models.
        deadline_s: No attempt starts later than this after the call began.
        clock: Monotonic clock of the chain (inject in tests).
        sleep: Sync sleep between retries (inject in tests).
        asleep: Async sleep between retries.
        on_attempt: Called with every attempt as it is decided.
        instrument: Install faremeter's LiteLLM logger when none is active
            (the priced layer; without it the calls are not recorded).
        cache: Serve repeated deterministic requests from this response cache
            (before routing and budgets); misses are stored.
        **defaults: LiteLLM kwargs sent with every call (``temperature`` ...).
    """

    def __init__(
        self,
        router: Router,
        *,
        models: Mapping[str, str | Mapping[str, Any]] | None = None,
        meter: Meter | None = None,
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
        **defaults: Any,
    ) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        for cand in router.candidates:
            target = (models or {}).get(cand.model, cand.model)
            if isinstance(target, str):
                self.models[cand.model] = {"model": target}
            else:
                spec = dict(target)
                spec.setdefault("model", cand.model)
                self.models[cand.model] = spec
        unknown = sorted(set(models or {}) - set(self.models))
        if unknown:
            raise ValueError(
                f"models {', '.join(unknown)} are in no router tier "
                f"(router models: {', '.join(self.models)})"
            )
        self.routing = ModelRouting(
            router,
            models=self.models,
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
            name="litellm.route",
            cache=cache,
            cache_identity=cache_identity(self.models) if cache is not None else None,
        )
        self.instrument = instrument
        self.defaults = defaults

    def _ensure_instrumented(self) -> None:
        if not self.instrument:
            return
        import faremeter_litellm

        if faremeter_litellm._active is None:  # pyright: ignore[reportPrivateUsage]
            faremeter_litellm.instrument(self.routing.meter)

    def _kwargs(self, plan: RoutePlan, model: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        out = {**self.defaults, **kwargs, **self.models[model]}
        if plan.degraded is not None and plan.max_tokens is not None:
            key = "max_completion_tokens" if "max_completion_tokens" in out else "max_tokens"
            out[key] = plan.max_tokens
        return out

    @staticmethod
    def _max_tokens(kwargs: Mapping[str, Any]) -> int | None:
        value = kwargs.get("max_tokens", kwargs.get("max_completion_tokens"))
        return value if type(value) is int else None

    def _plan_args(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if "model" in kwargs:
            raise TypeError(
                "a routed completion chooses the model: pass messages (and the rest), not model="
            )
        merged = {**self.defaults, **kwargs}
        md = merged.get("metadata")
        attrs: dict[str, Any] = {}
        if isinstance(md, Mapping):
            known = cast("Mapping[str, object]", md)
            for key in ("step", "workflow", "user_id", "team", "feature", "tenant"):
                value = known.get(key)
                if isinstance(value, str):
                    attrs[key] = value
        return {
            "capabilities": request_capabilities(merged),
            "max_tokens": self._max_tokens(merged),
            "attributes": attrs,
        }

    def _cache_request(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return cache_request({**self.defaults, **kwargs}, self.models)

    def completion(self, **kwargs: Any) -> Any:
        """Route, admit and call ``litellm.completion`` down the fallback chain.

        Takes LiteLLM's kwargs except ``model``. A stream (``stream=True``)
        falls back only until its first chunk.

        Raises:
            BudgetExceeded: A budget refused the call before anything was sent.
            Exception: The last provider error when every candidate failed.
        """
        import litellm

        self._ensure_instrumented()
        args = self._plan_args(kwargs)
        request = lambda: self._cache_request(kwargs)  # noqa: E731 - built only if cached
        send: Callable[..., Any] = litellm.completion
        if kwargs.get("stream") is True:
            chunks = self.routing.lookup(
                request, StreamCodec(kwargs.get("messages")), attributes=args["attributes"]
            )
            if chunks.hit is not None:
                return iter(chunks.hit)
            plan = self.routing.plan(kwargs.get("messages"), **args)
            return self.routing.run_stream(
                plan, lambda model: send(**self._kwargs(plan, model, kwargs)), cache=chunks
            )
        ticket = self.routing.lookup(request, CompletionCodec(), attributes=args["attributes"])
        if ticket.hit is not None:
            return ticket.hit
        plan = self.routing.plan(kwargs.get("messages"), **args)
        return self.routing.run(
            plan, lambda model: send(**self._kwargs(plan, model, kwargs)), cache=ticket
        )

    async def acompletion(self, **kwargs: Any) -> Any:
        """:meth:`completion` for asyncio (``litellm.acompletion``).

        With ``stream=True`` it returns an async iterator of chunks.
        """
        import litellm

        self._ensure_instrumented()
        args = self._plan_args(kwargs)
        request = lambda: self._cache_request(kwargs)  # noqa: E731 - built only if cached
        if kwargs.get("stream") is True:
            chunks = await self.routing.alookup(
                request, StreamCodec(kwargs.get("messages")), attributes=args["attributes"]
            )
            if chunks.hit is not None:
                return _replay(chunks.hit)
            plan = await self.routing.aplan(kwargs.get("messages"), **args)

            async def open_stream(model: str) -> Any:
                return await litellm.acompletion(**self._kwargs(plan, model, kwargs))

            return self.routing.arun_stream(plan, open_stream, cache=chunks)

        ticket = await self.routing.alookup(
            request, CompletionCodec(), attributes=args["attributes"]
        )
        if ticket.hit is not None:
            return ticket.hit
        plan = await self.routing.aplan(kwargs.get("messages"), **args)

        async def call(model: str) -> Any:
            return await litellm.acompletion(**self._kwargs(plan, model, kwargs))

        return await self.routing.arun(plan, call, cache=ticket)

    def __repr__(self) -> str:
        return f"RoutedCompletion({list(self.models)})"


async def _replay(chunks: list[Any]) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


def completion(*, router: Router, **kwargs: Any) -> Any:
    """One routed ``litellm.completion`` (see :class:`RoutedCompletion`; build one to reuse)."""
    return RoutedCompletion(router).completion(**kwargs)


async def acompletion(*, router: Router, **kwargs: Any) -> Any:
    """One routed ``litellm.acompletion`` (see :class:`RoutedCompletion`)."""
    return await RoutedCompletion(router).acompletion(**kwargs)
