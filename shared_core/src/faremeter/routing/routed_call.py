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
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
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
from faremeter.routing.savings import BASELINE_ATTRIBUTE, CHOSEN_ATTRIBUTE

if TYPE_CHECKING:
    from faremeter.budgets.manager import FitRequest
    from faremeter.fallback import Attempt, Breaker, FallbackChain, HealthTracker, RetryPolicy
    from faremeter.meter import Meter
    from faremeter.routing.router import Router
    from faremeter.spans import AttributeValue

__all__ = ["ModelRouting", "RoutePlan"]

_log = logging.getLogger("faremeter")

T = TypeVar("T")


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

    # ------------------------------------------------------------------- calling

    def chain(self, plan: RoutePlan) -> FallbackChain:
        """The fallback chain over the plan's model and alternatives."""
        from faremeter.fallback import FallbackChain

        options = {k: v for k, v in self.chain_options.items() if v is not None}
        return FallbackChain.from_decision(
            plan.decision, self.router, meter=self._meter(), **options
        )

    def run(self, plan: RoutePlan, fn: Callable[[str], T]) -> T:
        """Call ``fn(model)`` down the plan's chain; every attempt is a span.

        Inside each attempt the priced call sees ``route.model`` and
        ``route.baseline_model`` as attributes, and may adopt the plan's
        reservation; one nobody adopted is released when the chain ends.
        """
        stamp = plan.call_attributes()
        admission = _admission(plan)

        def attempt(model: str) -> T:
            from faremeter.context import attributes

            with attributes(**stamp), admitted(admission):
                return fn(model)

        try:
            return self.chain(plan).call(
                attempt, input_tokens=plan.decision.input_tokens, attributes=plan.span_attributes()
            )
        finally:
            if admission is not None:
                admission.release_unclaimed()

    async def arun(self, plan: RoutePlan, fn: Callable[[str], Awaitable[T]]) -> T:
        """:meth:`run` for coroutines."""
        stamp = plan.call_attributes()
        admission = _admission(plan)

        async def attempt(model: str) -> T:
            from faremeter.context import attributes

            with attributes(**stamp), admitted(admission):
                return await fn(model)

        try:
            return await self.chain(plan).acall(
                attempt, input_tokens=plan.decision.input_tokens, attributes=plan.span_attributes()
            )
        finally:
            if admission is not None:
                admission.release_unclaimed()

    def run_stream(self, plan: RoutePlan, fn: Callable[[str], Iterable[T]]) -> Iterator[T]:
        """Stream from the first candidate that yields a first chunk.

        Errors while opening the stream or before its first chunk fall back
        like :meth:`run`; after the first chunk they surface unchanged (the
        caller has shown partial output).
        """
        stamp = plan.call_attributes()
        admission = _admission(plan)

        def first(model: str) -> tuple[Iterator[T], list[T]]:
            from faremeter.context import attributes

            with attributes(**stamp), admitted(admission):
                it = iter(fn(model))
                for head in it:
                    return it, [head]
                return it, []

        try:
            it, head = self.chain(plan).call(
                first, input_tokens=plan.decision.input_tokens, attributes=plan.span_attributes()
            )
        finally:
            if admission is not None:
                admission.release_unclaimed()
        yield from head
        yield from it

    async def arun_stream(
        self, plan: RoutePlan, fn: Callable[[str], Awaitable[AsyncIterable[T]]]
    ) -> AsyncIterator[T]:
        """Async :meth:`run_stream`; ``fn(model)`` is awaited to open the stream."""
        stamp = plan.call_attributes()
        admission = _admission(plan)

        async def first(model: str) -> tuple[AsyncIterator[T], list[T]]:
            from faremeter.context import attributes

            with attributes(**stamp), admitted(admission):
                it = aiter(await fn(model))
                async for head in it:
                    return it, [head]
                return it, []

        try:
            it, head = await self.chain(plan).acall(
                first, input_tokens=plan.decision.input_tokens, attributes=plan.span_attributes()
            )
        finally:
            if admission is not None:
                admission.release_unclaimed()
        for item in head:
            yield item
        async for item in it:
            yield item

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
