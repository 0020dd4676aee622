"""One routed model call, framework-neutral: route, admit against budgets, fall back.

The framework glue (``faremeter_llamaindex.RoutedLLM``, ``faremeter_litellm``'s
routed ``completion``) is thin because everything that does not depend on
the framework lives here:

1. **Route.** :meth:`ModelRouting.plan` asks the :class:`~faremeter.routing.Router`
   for a model, with the attribution in force (``step``, ``workflow`` ...) so
   rules match, and picks the route's *baseline*: its most expensive capable
   candidate, the model "not routing" would have sent the call to.
2. **Admit.** With budgets on the meter, the call's worst case is reserved on
   the chosen model *before* anything is sent. A ``deny`` budget raises
   :class:`~faremeter.BudgetExceeded` to the caller; a ``degrade`` budget first
   shrinks ``max_tokens``, then asks the router for a model that fits the
   money left. The framework's own instrumented call (the priced layer) must
   not reserve the same request again: where the call lifecycle supports it
   (``faremeter.calls.ADOPTS_ADMISSIONS``), it *adopts* this reservation
   (:mod:`faremeter.routing.admission`) and settles it to the real cost;
   otherwise the reservation is released as the call starts and the priced
   call reserves its own.
3. **Fall back.** :meth:`ModelRouting.run` runs the call through a
   :class:`~faremeter.fallback.FallbackChain` over the decision's model and
   alternatives: retries, fallbacks and breakers, every attempt a span.

With ``cache=ResponseCache(...)``, :meth:`ModelRouting.lookup` comes first:
a hit is served before routing and admission (no model called, no budget
reserved, one ``cached`` span), and a miss's final response is stored by
:meth:`ModelRouting.run` (streams: once complete). The rules are in
:mod:`faremeter.routing.routed_cache`; the adapters only (de)serialise.

The decision log: the chain's call span (kind ``chain``, $0) carries
:meth:`RouteDecision.as_attributes` plus ``route.baseline_model``; every
priced model span made inside the call carries ``route.model`` and
``route.baseline_model``, which is what ``faremeter report --routed``
(:mod:`faremeter.routing.savings`) reads. Spans of kind ``chain`` never
carry cost, so a provider request is charged once, by the framework layer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from faremeter.errors import BudgetExceeded
from faremeter.routing.admission import Admission, admitted
from faremeter.routing.decision import RouteDecision, RouteRequest
from faremeter.routing.routed_cache import NO_TICKET, CacheTicket, CallWatch, RoutedCache
from faremeter.routing.savings import BASELINE_ATTRIBUTE, CHOSEN_ATTRIBUTE

if TYPE_CHECKING:
    from faremeter.budgets.manager import FitRequest
    from faremeter.caching.response_cache import ResponseCache
    from faremeter.fallback import Attempt, Breaker, FallbackChain, HealthTracker, RetryPolicy
    from faremeter.meter import Meter
    from faremeter.routing.routed_cache import ResponseCodec
    from faremeter.routing.router import Router
    from faremeter.spans import AttributeValue

__all__ = ["ModelRouting", "RoutePlan"]

_log = logging.getLogger("faremeter")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, kw_only=True, slots=True)
class RoutePlan:
    """What one routed call will do, decided before anything is sent.

    Attributes:
        decision: The router's decision (after any budget fitting).
        baseline_model: The route's most expensive capable candidate.
        baseline_estimated_cost: Its estimate for the same prompt and completion size.
        max_tokens: The completion cap to send (smaller than asked when a
            ``degrade`` budget fitted the call; ``None``: the caller's own).
        degraded: Why a budget changed the call, or ``None``.
        attributes: The attribution the decision was made with.
        reservation: The budget reservation held for the call's priced
            model call to adopt (``None``: none held; see :meth:`ModelRouting.run`).
    """

    decision: RouteDecision
    baseline_model: str
    baseline_estimated_cost: Decimal
    max_tokens: int | None = None
    degraded: str | None = None
    attributes: Mapping[str, AttributeValue]
    reservation: Any = field(default=None, compare=False, repr=False)

    @property
    def model(self) -> str:
        """The model the router chose."""
        return self.decision.model

    def span_attributes(self) -> dict[str, AttributeValue]:
        """The decision log stamped on the routed call's span."""
        attrs = self.decision.as_attributes()
        attrs[BASELINE_ATTRIBUTE] = self.baseline_model
        attrs["route.baseline_estimated_cost"] = str(self.baseline_estimated_cost)
        if self.degraded is not None:
            attrs["route.degraded"] = self.degraded
        return attrs

    def call_attributes(self) -> dict[str, AttributeValue]:
        """Stamped on every priced model span made inside the call (the savings input)."""
        return {CHOSEN_ATTRIBUTE: self.decision.model, BASELINE_ATTRIBUTE: self.baseline_model}


class ModelRouting:
    """A router, the models it may call, and how to fall back: the core of a routed model.

    Args:
        router: Picks the model per call.
        models: The models the caller can actually call (an LLM per name, a
            LiteLLM model string ...). Every router candidate must be one.
        meter: Where spans and budgets live (``None``: the process meter, per call).
        retry: Retries and next steps per error class (the chain's default otherwise).
        breaker: Circuit breaker per model.
        health: Rolling health per model (struggling models tried last).
        max_attempts: Real attempts per call across all candidates.
        deadline_s: No attempt starts later than this after the call began.
        clock: Monotonic seconds for the chain (inject in tests).
        sleep: Sync sleep between retries (inject in tests).
        asleep: Async sleep between retries.
        on_attempt: Called with every attempt as it is decided.
        name: The routed call span's name.
        cache: Serve repeated requests from this response cache, before
            routing and budgets (see :mod:`faremeter.routing.routed_cache`).
        cache_identity: JSON data describing how the adapter's models are
            configured, so differently configured routed models never share
            cached answers (the tiers and model names are always part of it).

    Raises:
        ValueError: A router candidate has no model to call.
    """

    def __init__(
        self,
        router: Router,
        *,
        models: Collection[str],
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
        name: str = "route",
        cache: ResponseCache | None = None,
        cache_identity: Any = None,
    ) -> None:
        missing = [c.model for c in router.candidates if c.model not in models]
        if missing:
            raise ValueError(
                f"the router can choose {', '.join(missing)} but no model to call is given "
                f"for {'it' if len(missing) == 1 else 'them'} (given: {', '.join(models)})"
            )
        self.router = router
        self.meter = meter
        self.chain_options: dict[str, Any] = {
            "retry": retry,
            "breaker": breaker,
            "health": health,
            "max_attempts": max_attempts,
            "deadline_s": deadline_s,
            "clock": clock,
            "sleep": sleep,
            "asleep": asleep,
            "on_attempt": on_attempt,
            "name": name,
        }
        self.name = name
        self.cache = cache
        self._cached: RoutedCache | None = None
        if cache is not None:
            tiers: dict[str, list[str]] = {}
            for cand in router.candidates:
                tiers.setdefault(cand.tier, []).append(cand.model)
            self._cached = RoutedCache(
                cache, name=name, identity={"tiers": tiers, "models": cache_identity}
            )

    # ------------------------------------------------------------------ planning

    def _meter(self) -> Meter:
        if self.meter is not None:
            return self.meter
        from faremeter.default_meter import get_meter

        return get_meter()

    @staticmethod
    def _attribution(attributes: Mapping[str, Any] | None) -> dict[str, AttributeValue]:
        from faremeter.context import clean_attributes, current_attributes, current_span

        merged: dict[str, AttributeValue] = {}
        span = current_span()
        if span is not None:
            merged.update(span.attributes)
        merged.update(current_attributes())
        if attributes:
            merged.update(clean_attributes(attributes))
        return merged

    def _request(
        self,
        messages: Any,
        capabilities: Collection[str],
        max_tokens: int | None,
        attrs: Mapping[str, AttributeValue],
        tags: tuple[str, ...],
        headroom: Decimal | None = None,
        input_tokens: int | None = None,
    ) -> RouteRequest:
        return RouteRequest(
            messages=messages,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            capabilities=frozenset(capabilities),
            attributes=attrs,
            tags=tags,
            budget_headroom=headroom,
        )

    def _baseline(self, decision: RouteDecision) -> tuple[str, Decimal]:
        router = self.router
        best = decision.model
        best_cost = decision.estimated_cost
        for model in decision.alternatives:
            cost = router.candidate(model).estimate(decision.input_tokens, decision.output_tokens)
            if cost > best_cost:
                best, best_cost = model, cost
        return best, best_cost

    def plan(
        self,
        messages: Any,
        *,
        capabilities: Collection[str] = (),
        max_tokens: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        tags: tuple[str, ...] = (),
        hold: bool = True,
    ) -> RoutePlan:
        """Route one call and admit it against the meter's budgets.

        With ``hold`` (the default) the reservation stays in the plan for the
        priced call made by :meth:`run` to adopt, when the call lifecycle
        supports it; otherwise (or with ``hold=False``, when the call is not
        made through :meth:`run`) it is released as soon as the call is
        admitted and the priced call reserves again.

        Raises:
            BudgetExceeded: A budget refused the call and nothing fits (recorded
                as a ``denied`` span carrying the decision).
            NoCandidateError: No candidate has the capabilities or the window.
        """
        meter = self._meter()
        attrs = self._attribution(attributes)
        decision = self.router.route(self._request(messages, capabilities, max_tokens, attrs, tags))
        budgets = meter.budgets
        if budgets is None:
            return self._plan(decision, max_tokens, None, attrs)
        fitted: list[RouteDecision] = []
        fit = self._fitter(messages, capabilities, attrs, tags, fitted)
        try:
            res = budgets.reserve_call(
                catalog=meter.catalog,
                model=decision.model,
                messages=_budget_messages(messages),
                max_tokens=max_tokens,
                attributes=attrs,
                trace_id=_trace_id(),
                fit=fit,
            )
        except BudgetExceeded as exc:
            self._denied(meter, decision, attrs, exc)
            raise
        except Exception:  # faremeter's own fault must not stop the call
            _log.exception("faremeter: budget admission failed; the call goes unadmitted")
            return self._plan(decision, max_tokens, None, attrs)
        return self._admitted(res, decision, fitted, max_tokens, attrs, hold)

    async def aplan(
        self,
        messages: Any,
        *,
        capabilities: Collection[str] = (),
        max_tokens: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        tags: tuple[str, ...] = (),
        hold: bool = True,
    ) -> RoutePlan:
        """:meth:`plan` for asyncio (a remote budget store is not called on the loop)."""
        meter = self._meter()
        attrs = self._attribution(attributes)
        decision = self.router.route(self._request(messages, capabilities, max_tokens, attrs, tags))
        budgets = meter.budgets
        if budgets is None:
            return self._plan(decision, max_tokens, None, attrs)
        fitted: list[RouteDecision] = []
        fit = self._fitter(messages, capabilities, attrs, tags, fitted)
        try:
            res = await budgets.areserve_call(
                catalog=meter.catalog,
                model=decision.model,
                messages=_budget_messages(messages),
                max_tokens=max_tokens,
                attributes=attrs,
                trace_id=_trace_id(),
                fit=fit,
            )
        except BudgetExceeded as exc:
            self._denied(meter, decision, attrs, exc)
            raise
        except Exception:  # faremeter's own fault must not stop the call
            _log.exception("faremeter: budget admission failed; the call goes unadmitted")
            return self._plan(decision, max_tokens, None, attrs)
        return self._admitted(res, decision, fitted, max_tokens, attrs, hold)

    def _fitter(
        self,
        messages: Any,
        capabilities: Collection[str],
        attrs: Mapping[str, AttributeValue],
        tags: tuple[str, ...],
        fitted: list[RouteDecision],
    ) -> Callable[[FitRequest], tuple[str, int | None] | None]:
        """The ``degrade`` hook: ask the router for a model whose estimate fits the money left."""

        def fit(req: FitRequest) -> tuple[str, int | None] | None:
            decision = self.router.route(
                self._request(
                    messages,
                    capabilities,
                    req.max_tokens,
                    attrs,
                    tags,
                    headroom=req.available,
                    input_tokens=req.input_tokens,
                )
            )
            if not decision.within_budget or decision.model == req.model:
                return None
            fitted.append(decision)
            return decision.model, req.max_tokens

        return fit

    def _admitted(
        self,
        res: Any,
        decision: RouteDecision,
        fitted: list[RouteDecision],
        max_tokens: int | None,
        attrs: Mapping[str, AttributeValue],
        hold: bool,
    ) -> RoutePlan:
        model: str = res.model or decision.model
        if model != decision.model:
            decision = next((d for d in reversed(fitted) if d.model == model), decision)
        degraded: str | None = res.degraded
        new_max: int | None = res.max_tokens if degraded else max_tokens
        if hold and _lifecycle_adopts():
            return self._plan(decision, new_max, degraded, attrs, res)
        # Hand over by releasing: the framework's instrumented call reserves
        # this call again and settles it to its real cost.
        Admission(res).release_unclaimed()
        return self._plan(decision, new_max, degraded, attrs)

    def _plan(
        self,
        decision: RouteDecision,
        max_tokens: int | None,
        degraded: str | None,
        attrs: Mapping[str, AttributeValue],
        reservation: Any = None,
    ) -> RoutePlan:
        baseline, baseline_cost = self._baseline(decision)
        return RoutePlan(
            decision=decision,
            baseline_model=baseline,
            baseline_estimated_cost=baseline_cost,
            max_tokens=max_tokens,
            degraded=degraded,
            attributes=attrs,
            reservation=reservation,
        )

    def _denied(
        self,
        meter: Meter,
        decision: RouteDecision,
        attrs: Mapping[str, AttributeValue],
        exc: BaseException,
    ) -> None:
        from faremeter.cost import Cost
        from faremeter.spans import SpanKind, SpanStatus

        try:
            attributes = dict(self._plan(decision, None, None, attrs).span_attributes())
            span = meter.start_span(self.name, kind=SpanKind.CHAIN, attributes=attributes)
            span.end(status=SpanStatus.DENIED, error=exc, error_class="budget", cost=Cost())
        except Exception:
            _log.exception("faremeter: recording a denial failed")

    # ------------------------------------------------------------------- caching

    def lookup(
        self,
        request: Callable[[], Mapping[str, Any]],
        codec: ResponseCodec[R],
        *,
        attributes: Mapping[str, Any] | None = None,
    ) -> CacheTicket[R]:
        """Serve the call from the cache, before :meth:`plan` (no routing, no budget).

        Args:
            request: Builds the request as the key sees it: ``messages`` and
                every parameter that can change the answer, ``temperature`` as
                the call will run (only called when a cache is set).
            codec: The adapter's JSON form of its response objects.
            attributes: Attribution for the hit span (merged over what is in force).

        Returns:
            A ticket: ``ticket.hit`` is the revived response on a hit (recorded
            as one ``cached`` span); otherwise pass it to :meth:`run` (or a
            stream method) so the final response is stored.
        """
        cached = self._cached
        if cached is None:
            return NO_TICKET
        return cached.lookup(self._meter(), request, codec, self._attribution(attributes))

    async def alookup(
        self,
        request: Callable[[], Mapping[str, Any]],
        codec: ResponseCodec[R],
        *,
        attributes: Mapping[str, Any] | None = None,
    ) -> CacheTicket[R]:
        """:meth:`lookup` for asyncio (a shared store is not called on the loop)."""
        cached = self._cached
        if cached is None:
            return NO_TICKET
        return await cached.alookup(self._meter(), request, codec, self._attribution(attributes))

    def _storing(
        self, plan: RoutePlan, cache: CacheTicket[Any] | None
    ) -> tuple[dict[str, AttributeValue], dict[str, AttributeValue], CallWatch | None]:
        """The attempt stamp, the route span's attributes and the watch of a call to store."""
        stamp = plan.call_attributes()
        attrs = plan.span_attributes()
        if cache is None or not cache.storing or self._cached is None:
            return stamp, attrs, None
        miss = cache.miss_attributes()
        stamp.update(miss)
        attrs.update(miss)
        if plan.degraded is not None:
            # A budget changed the call (a smaller max_tokens): its answer may
            # be cut short, so it is not what the request asked for.
            return stamp, attrs, None
        return stamp, attrs, CallWatch()

    # ------------------------------------------------------------------- calling

    def chain(self, plan: RoutePlan) -> FallbackChain:
        """The fallback chain over the plan's model and alternatives."""
        from faremeter.fallback import FallbackChain

        options = {k: v for k, v in self.chain_options.items() if v is not None}
        return FallbackChain.from_decision(
            plan.decision, self.router, meter=self._meter(), **options
        )

    def run(
        self, plan: RoutePlan, fn: Callable[[str], T], *, cache: CacheTicket[T] | None = None
    ) -> T:
        """Call ``fn(model)`` down the plan's chain; every attempt is a span.

        Inside each attempt the priced call sees ``route.model`` and
        ``route.baseline_model`` as attributes, and may adopt the plan's
        reservation; one nobody adopted is released when the chain ends.
        With the ticket of a cache miss (:meth:`lookup`), the response is stored.
        """
        try:
            stamp, attrs, watch = self._storing(plan, cache)
            admission = _admission(plan)

            def attempt(model: str) -> T:
                from faremeter.context import attributes

                with attributes(**stamp), admitted(admission):
                    if watch is not None:
                        watch.enter(model)
                    return fn(model)

            try:
                result = self.chain(plan).call(
                    attempt, input_tokens=plan.decision.input_tokens, attributes=attrs
                )
            finally:
                if admission is not None:
                    admission.release_unclaimed()
            if watch is not None and cache is not None and self._cached is not None:
                self._cached.store(self._meter(), cache, result, watch)
            return result
        finally:
            if cache is not None:
                cache.release()  # identical requests waiting on this miss look again

    async def arun(
        self,
        plan: RoutePlan,
        fn: Callable[[str], Awaitable[T]],
        *,
        cache: CacheTicket[T] | None = None,
    ) -> T:
        """:meth:`run` for coroutines."""
        try:
            stamp, attrs, watch = self._storing(plan, cache)
            admission = _admission(plan)

            async def attempt(model: str) -> T:
                from faremeter.context import attributes

                with attributes(**stamp), admitted(admission):
                    if watch is not None:
                        watch.enter(model)
                    return await fn(model)

            try:
                result = await self.chain(plan).acall(
                    attempt, input_tokens=plan.decision.input_tokens, attributes=attrs
                )
            finally:
                if admission is not None:
                    admission.release_unclaimed()
            if watch is not None and cache is not None and self._cached is not None:
                await self._cached.astore(self._meter(), cache, result, watch)
            return result
        finally:
            if cache is not None:
                cache.release()

    def run_stream(
        self,
        plan: RoutePlan,
        fn: Callable[[str], Iterable[T]],
        *,
        cache: CacheTicket[list[T]] | None = None,
    ) -> Generator[T]:
        """Stream from the first candidate that yields a first chunk.

        Errors while opening the stream or before its first chunk fall back
        like :meth:`run`; after the first chunk they surface unchanged (the
        caller has shown partial output). With the ticket of a cache miss,
        the chunks are stored (as the codec assembles them) once the stream
        is complete; an abandoned or failed stream stores nothing.
        """
        try:
            stamp, attrs, watch = self._storing(plan, cache)
            admission = _admission(plan)

            def first(model: str) -> tuple[Iterator[T], list[T]]:
                from faremeter.context import attributes

                with attributes(**stamp), admitted(admission):
                    if watch is not None:
                        watch.enter(model)
                    it = iter(fn(model))
                    for head in it:
                        return it, [head]
                    return it, []

            try:
                it, head = self.chain(plan).call(
                    first, input_tokens=plan.decision.input_tokens, attributes=attrs
                )
            finally:
                if admission is not None:
                    admission.release_unclaimed()
            if watch is None or cache is None or self._cached is None:
                yield from head
                yield from it
                return
            chunks = list(head)
            yield from head
            for item in it:
                chunks.append(item)
                yield item
            self._cached.store(self._meter(), cache, chunks, watch)
        finally:
            if cache is not None:
                cache.release()  # also when the caller abandons the stream

    async def arun_stream(
        self,
        plan: RoutePlan,
        fn: Callable[[str], Awaitable[AsyncIterable[T]]],
        *,
        cache: CacheTicket[list[T]] | None = None,
    ) -> AsyncGenerator[T]:
        """Async :meth:`run_stream`; ``fn(model)`` is awaited to open the stream."""
        try:
            stamp, attrs, watch = self._storing(plan, cache)
            admission = _admission(plan)

            async def first(model: str) -> tuple[AsyncIterator[T], list[T]]:
                from faremeter.context import attributes

                with attributes(**stamp), admitted(admission):
                    if watch is not None:
                        watch.enter(model)
                    it = aiter(await fn(model))
                    async for head in it:
                        return it, [head]
                    return it, []

            try:
                it, head = await self.chain(plan).acall(
                    first, input_tokens=plan.decision.input_tokens, attributes=attrs
                )
            finally:
                if admission is not None:
                    admission.release_unclaimed()
            chunks: list[T] | None = None if watch is None else list(head)
            for item in head:
                yield item
            async for item in it:
                if chunks is not None:
                    chunks.append(item)
                yield item
            if watch is not None and chunks is not None and cache is not None and self._cached:
                await self._cached.astore(self._meter(), cache, chunks, watch)
        finally:
            if cache is not None:
                cache.release()

    def __repr__(self) -> str:
        return f"ModelRouting({self.router!r})"


def _admission(plan: RoutePlan) -> Admission | None:
    return Admission(plan.reservation) if plan.reservation is not None else None


def _lifecycle_adopts() -> bool:
    """Whether the call lifecycle adopts a routed call's reservation (else: release it)."""
    from faremeter import calls

    return bool(getattr(calls, "ADOPTS_ADMISSIONS", False))


def _trace_id() -> str | None:
    from faremeter.context import current_span

    span = current_span()
    return span.trace_id if span is not None else None


def _budget_messages(messages: Any) -> Any:
    """Messages as the budget estimator reads them (a string, dicts, objects with ``.content``)."""
    if messages is None:
        return ""
    if isinstance(messages, str | list | tuple):
        return messages  # pyright: ignore[reportUnknownVariableType]
    return [messages]
