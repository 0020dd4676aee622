"""ModelRouting: the framework-neutral core of a routed model call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from faremeter import BudgetExceeded
from faremeter.budgets import Budget
from faremeter.context import current_attributes
from faremeter.fallback import RetryPolicy
from faremeter.routing import Router
from faremeter.routing.routed_call import ModelRouting
from faremeter.spans import SpanKind, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans

TIERS = {"economy": ["gpt-4o-mini"], "standard": ["gpt-4.1-mini"], "premium": ["gpt-4o"]}
MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o")


class RateLimited(Exception):
    status_code = 429


def _routing(**kw: object) -> ModelRouting:
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    return ModelRouting(
        router,
        models=MODELS,
        retry=RetryPolicy(retries={}, jitter_s=0),
        sleep=lambda s: None,
        **kw,  # type: ignore[arg-type]
    )


def test_plan_carries_decision_and_baseline() -> None:
    meter = make_test_meter()
    plan = _routing(meter=meter).plan("hello", attributes={"step": "parse"})
    assert plan.model == "gpt-4o-mini"
    assert plan.baseline_model == "gpt-4o"
    assert plan.baseline_estimated_cost > plan.decision.estimated_cost
    attrs = plan.span_attributes()
    assert attrs["route.baseline_model"] == "gpt-4o"
    assert attrs["route.rule"]
    assert plan.call_attributes() == {
        "route.model": "gpt-4o-mini",
        "route.baseline_model": "gpt-4o",
    }


def test_run_falls_back_and_stamps_each_attempt() -> None:
    meter = make_test_meter()
    routing = _routing(meter=meter)
    seen: list[tuple[str, object]] = []

    def call(model: str) -> str:
        seen.append((model, current_attributes().get("route.model")))
        if model == "gpt-4o-mini":
            raise RateLimited("slow down")
        return f"answer from {model}"

    with meter.trace("job"):
        plan = routing.plan("hello", attributes={"step": "parse"})
        assert routing.run(plan, call) == "answer from gpt-4.1-mini"
    assert seen == [("gpt-4o-mini", "gpt-4o-mini"), ("gpt-4.1-mini", "gpt-4o-mini")]
    spans = recorded_spans(meter)
    (route,) = [s for s in spans if s.name == "route"]
    assert route.kind is SpanKind.CHAIN
    assert route.attributes["fallback.used"] is True
    assert route.attributes["route.model"] == "gpt-4o-mini"


def test_streams_fall_back_before_the_first_chunk() -> None:
    meter = make_test_meter()
    routing = _routing(meter=meter)

    def opened(model: str) -> list[str]:
        if model == "gpt-4o-mini":
            raise RateLimited("busy")
        return ["a", "b"]

    async def aopened(model: str) -> AsyncIterator[str]:
        async def gen() -> AsyncIterator[str]:
            for x in opened(model):
                yield x

        return gen()

    async def drain() -> list[str]:
        plan = await routing.aplan("hi", attributes={"step": "parse"})
        return [x async for x in routing.arun_stream(plan, aopened)]

    plan = routing.plan("hi", attributes={"step": "parse"})
    assert list(routing.run_stream(plan, opened)) == ["a", "b"]
    assert asyncio.run(drain()) == ["a", "b"]


def test_deny_budget_raises_and_records_a_denied_route_span() -> None:
    meter = make_test_meter(budgets=[Budget("cap", limit="0.0000001", window="trace")])
    with pytest.raises(BudgetExceeded), meter.trace("job"):
        _routing(meter=meter).plan("hello", max_tokens=10)
    (route,) = [s for s in recorded_spans(meter) if s.name == "route"]
    assert route.status is SpanStatus.DENIED
    assert route.cost.total == Decimal(0)


def test_plan_holds_the_reservation_for_the_priced_call() -> None:
    # The call lifecycle adopts it (faremeter.calls.ADOPTS_ADMISSIONS): it stays
    # held until the priced call inside the routed call settles it.
    meter = make_test_meter(budgets=[Budget("cap", limit="1", window="month")])
    plan = _routing(meter=meter).plan("hello", max_tokens=10)
    (row,) = meter.budgets.status()
    assert plan.reservation is not None and row.reserved > 0


def test_every_router_model_needs_a_callable_model() -> None:
    router = Router(TIERS, complexity=False)
    with pytest.raises(ValueError, match="gpt-4o"):
        ModelRouting(router, models=("gpt-4o-mini", "gpt-4.1-mini"))


def _adopting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The call lifecycle change proposed to the lead: a priced call adopts the admission."""
    from faremeter import calls
    from faremeter.routing.admission import take_admission

    original = calls.CallTracker._reserve  # pyright: ignore[reportPrivateUsage]

    def reserve(meter: Any, span: Any, amount: Any, *rest: Any) -> Any:
        if span.kind in (SpanKind.LLM, SpanKind.EMBEDDING):
            adopted = take_admission()
            if adopted is not None:
                return adopted
        return original(meter, span, amount, *rest)

    monkeypatch.setattr(calls.CallTracker, "_reserve", staticmethod(reserve))
    monkeypatch.setattr(calls, "ADOPTS_ADMISSIONS", True, raising=False)


def test_priced_call_adopts_the_admission_and_settles_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _adopting(monkeypatch)
    from faremeter.calls import CallTracker
    from faremeter.usage import Usage

    meter = make_test_meter(budgets=[Budget("cap", limit="1", window="month")])
    tracker = CallTracker(meter)
    routing = _routing(meter=meter)
    plan = routing.plan("hello", max_tokens=10, attributes={"step": "parse"})
    assert plan.reservation is not None
    (row,) = meter.budgets.status()
    assert row.reserved > 0  # held for the priced call, not released

    def call(model: str) -> str:
        tracker.start("k", name=model, model=model, prompt="hello", max_tokens=10)
        tracker.end("k", usage=Usage(input_tokens=5, output_tokens=3))
        return "ok"

    routing.run(plan, call)
    (row,) = meter.budgets.status()
    assert row.reserved == Decimal(0)
    assert (
        row.spent == meter.catalog.cost("gpt-4o-mini", Usage(input_tokens=5, output_tokens=3)).total
    )


def test_unadopted_admission_is_released(monkeypatch: pytest.MonkeyPatch) -> None:
    _adopting(monkeypatch)
    meter = make_test_meter(budgets=[Budget("cap", limit="1", window="month")])
    routing = _routing(meter=meter)
    plan = routing.plan("hello", max_tokens=10, attributes={"step": "parse"})
    routing.run(plan, lambda model: "nothing priced ran")
    (row,) = meter.budgets.status()
    assert row.reserved == Decimal(0)
    assert row.spent == Decimal(0)


def test_a_broken_budget_store_does_not_stop_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    meter = make_test_meter(budgets=[Budget("cap", limit="1", window="month")])

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("faremeter bug")

    monkeypatch.setattr(meter.budgets, "reserve_call", broken)
    plan = _routing(meter=meter).plan("hello", attributes={"step": "parse"})
    assert plan.model == "gpt-4o-mini"
    assert plan.reservation is None
