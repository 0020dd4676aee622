"""Routed LiteLLM calls (offline, ``mock_response=``): routing, fallback, budgets, one charge."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import litellm
import pytest

import faremeter
import faremeter_litellm
from faremeter import BudgetExceeded
from faremeter.budgets import Budget, BudgetManager
from faremeter.fallback import RetryPolicy
from faremeter.meter import Meter
from faremeter.routing import Router
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage
from faremeter_litellm.routed import RoutedCompletion, request_capabilities
from faremeter_litellm.routing_strategy import FaremeterRoutingStrategy

from .helpers import MESSAGES, mock

USAGE = Usage(input_tokens=400, output_tokens=120)
TIERS = {"economy": ["gpt-4o-mini"], "standard": ["gpt-4.1-mini"], "premium": ["gpt-4o"]}
NO_RETRY = RetryPolicy(retries={}, jitter_s=0)


def _router() -> Router:
    return Router(TIERS, steps={"parse": "gpt-4o-mini", "draft": "gpt-4o"}, complexity=False)


@pytest.fixture
def meter() -> Iterator[Meter]:
    m = make_test_meter()
    previous = faremeter.set_meter(m)
    handle = faremeter_litellm.instrument(m)
    yield m
    handle.uninstrument()
    faremeter.set_meter(previous)
    m.close()


def _models(fail: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tier in TIERS.values():
        for model in tier:
            response: Any = "litellm.RateLimitError" if model in fail else mock(USAGE, model=model)
            out[model] = {"model": model, "mock_response": response}
    return out


def _routed(meter: Meter, **kw: Any) -> RoutedCompletion:
    kw.setdefault("models", _models())
    return RoutedCompletion(_router(), meter=meter, retry=NO_RETRY, sleep=lambda s: None, **kw)


def _llm(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.kind is SpanKind.LLM]


def _charge(meter: Meter, model: str) -> Decimal:
    total = meter.catalog.cost(model, USAGE).total
    assert total is not None
    return total


def test_rule_picks_model_and_the_call_is_charged_once(meter: Meter) -> None:
    routed = _routed(meter)
    with meter.trace("job") as t, faremeter.attributes(step="parse"):
        reply = routed.completion(messages=MESSAGES)
    meter.flush()
    assert reply.choices[0].message.content == "ok"
    (llm,) = _llm(meter)
    assert llm.model == "gpt-4o-mini"
    assert llm.attributes["route.model"] == "gpt-4o-mini"
    assert llm.attributes["route.baseline_model"] == "gpt-4o"
    route = next(s for s in recorded_spans(meter) if s.name == "litellm.route")
    assert route.kind is SpanKind.CHAIN
    assert route.cost.total == Decimal(0)
    assert route.attributes["route.rule"]
    assert route.attributes["route.baseline_model"] == "gpt-4o"
    assert llm.parent_span_id is not None
    assert t.cost == _charge(meter, "gpt-4o-mini")  # one charge, not two


def test_rate_limited_model_falls_back_and_every_attempt_is_a_span(meter: Meter) -> None:
    routed = _routed(meter, models=_models(fail=("gpt-4o-mini",)))
    with meter.trace("job") as t, faremeter.attributes(step="parse"):
        routed.completion(messages=MESSAGES)
    meter.flush()
    spans = recorded_spans(meter)
    attempts = [s for s in spans if s.name.startswith("attempt:")]
    assert [a.name for a in attempts] == ["attempt:gpt-4o-mini", "attempt:gpt-4.1-mini"]
    assert attempts[0].status is SpanStatus.FALLBACK
    ok = [s for s in _llm(meter) if s.status is SpanStatus.OK]
    assert [s.model for s in ok] == ["gpt-4.1-mini"]
    assert ok[0].attributes["route.model"] == "gpt-4o-mini"  # chosen, then fell back
    route = next(s for s in spans if s.name == "litellm.route")
    assert route.attributes["fallback.used"] is True
    assert t.cost == _charge(meter, "gpt-4.1-mini")


def test_deny_budget_raises_before_any_request(meter: Meter) -> None:
    m = make_test_meter(budgets=[Budget("task", limit="0.0000001", window="trace")])
    handle = faremeter_litellm.instrument(m)
    try:
        routed = _routed(m)
        with pytest.raises(BudgetExceeded), m.trace("job"):
            routed.completion(messages=MESSAGES, max_tokens=500)
        m.flush()
        spans = recorded_spans(m)
        assert not [s for s in spans if s.kind is SpanKind.LLM]
        (denied,) = [s for s in spans if s.name == "litellm.route"]
        assert denied.status is SpanStatus.DENIED
        assert denied.attributes["route.model"] == "gpt-4.1-mini"  # the default tier
    finally:
        handle.uninstrument()
        m.close()


def _degrade_meter(min_output_tokens: int) -> Meter:
    manager = BudgetManager(
        [Budget("task", limit="0.001", window="trace", action="degrade")],
        min_output_tokens=min_output_tokens,
    )
    return make_test_meter(budgets=manager)


def test_degrade_budget_first_shrinks_max_tokens() -> None:
    # The draft rule wants gpt-4o; 500 output tokens of it cost ~$0.005 but a
    # $0.001 degrade budget holds ~95 of them: the call is sent smaller.
    m = _degrade_meter(16)
    handle = faremeter_litellm.instrument(m)
    try:
        with m.trace("job"), faremeter.attributes(step="draft"):
            _routed(m).completion(messages=MESSAGES, max_tokens=500)
        m.flush()
        (llm,) = _llm(m)
        assert llm.model == "gpt-4o"
        route = next(s for s in recorded_spans(m) if s.name == "litellm.route")
        assert "-> gpt-4o max_tokens=" in str(route.attributes["route.degraded"])
    finally:
        handle.uninstrument()
        m.close()


def test_degrade_budget_asks_the_router_for_a_model_that_fits() -> None:
    # When shrinking would leave fewer than 400 output tokens, the router is
    # asked for the best model whose estimate fits the money left.
    m = _degrade_meter(400)
    handle = faremeter_litellm.instrument(m)
    try:
        with m.trace("job") as t, faremeter.attributes(step="draft"):
            _routed(m).completion(messages=MESSAGES, max_tokens=500)
        m.flush()
        (llm,) = _llm(m)
        assert llm.model == "gpt-4.1-mini"
        assert llm.attributes["route.model"] == "gpt-4.1-mini"
        route = next(s for s in recorded_spans(m) if s.name == "litellm.route")
        assert "budget headroom" in str(route.attributes["route.reason"])
        assert t.cost == _charge(m, "gpt-4.1-mini")
    finally:
        handle.uninstrument()
        m.close()


async def test_acompletion_routes_and_records(meter: Meter) -> None:
    routed = _routed(meter)
    with meter.trace("job") as t, faremeter.attributes(step="draft"):
        await routed.acompletion(messages=MESSAGES)
    await faremeter_litellm.instrument(meter).aflush()
    (llm,) = _llm(meter)
    assert llm.model == "gpt-4o"
    assert t.cost == _charge(meter, "gpt-4o")


def test_stream_returns_every_chunk(meter: Meter) -> None:
    routed = _routed(meter, models={m: m for m in ("gpt-4o-mini",)}, mock_response="hello there")
    with meter.trace("job"), faremeter.attributes(step="parse"):
        chunks = list(routed.completion(messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "hello there"


def test_model_kwarg_is_refused() -> None:
    routed = RoutedCompletion(_router(), instrument=False)
    with pytest.raises(TypeError, match="chooses the model"):
        routed.completion(model="gpt-4o", messages=MESSAGES)


def test_unknown_model_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="no router tier"):
        RoutedCompletion(_router(), models={"claude-x": "anthropic/claude-x"})


def test_request_capabilities() -> None:
    assert request_capabilities({"tools": [{"type": "function"}]}) == {"tools"}
    assert request_capabilities({"response_format": {"type": "json_object"}}) == {"json"}
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert request_capabilities({"messages": image}) == {"vision"}


# -- faremeter's router as a litellm.Router routing strategy ---------------------------
def _litellm_router() -> Any:
    router_cls: Any = litellm.Router  # pyright: ignore[reportPrivateImportUsage]
    return router_cls(
        model_list=[
            {
                "model_name": "auto",
                "litellm_params": {"model": model, "mock_response": mock(USAGE, model=model)},
            }
            for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini")
        ]
    )


def test_litellm_router_uses_faremeters_strategy(meter: Meter) -> None:
    llm_router = _litellm_router()
    strategy = FaremeterRoutingStrategy(llm_router, _router(), meter=meter).install()
    with meter.trace("job"):
        cheap = llm_router.completion(model="auto", messages=MESSAGES, metadata={"step": "parse"})
        strong = llm_router.completion(model="auto", messages=MESSAGES, metadata={"step": "draft"})
    assert cheap.model.endswith("gpt-4o-mini")
    assert strong.model.endswith("gpt-4o")
    assert strategy.decisions == 2
    meter.flush()
    models = sorted((s.model or "", s.attributes.get("route.model")) for s in _llm(meter))
    assert models == [("gpt-4o", "gpt-4o"), ("gpt-4o-mini", "gpt-4o-mini")]
    assert all(s.attributes.get("route.baseline_model") == "gpt-4o" for s in _llm(meter))


async def test_litellm_router_async_strategy(meter: Meter) -> None:
    llm_router = _litellm_router()
    FaremeterRoutingStrategy(llm_router, _router(), meter=meter).install()
    with meter.trace("job"), faremeter.attributes(step="parse"):
        reply = await llm_router.acompletion(model="auto", messages=MESSAGES)
    assert reply.model.endswith("gpt-4o-mini")


def test_strategy_skips_cooled_down_deployment(meter: Meter) -> None:
    llm_router = _litellm_router()
    strategy = FaremeterRoutingStrategy(llm_router, _router(), meter=meter)
    deployments: list[Any] = llm_router.get_model_list(model_name="auto") or []
    healthy = [d for d in deployments if d["litellm_params"]["model"] != "gpt-4o-mini"]
    chosen: Any = strategy.choose("auto", healthy, MESSAGES, {"metadata": {"step": "parse"}})
    # gpt-4o-mini is cooling down: the next candidate of the decision is taken.
    assert chosen["litellm_params"]["model"] == "gpt-4.1-mini"


def test_docs_example_runs_offline() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "docs" / "examples" / "router_litellm.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "classify: hi from gpt-4.1-mini" in out  # gpt-4o-mini was rate limited
    assert "router classify -> gpt-4o-mini" in out
    assert "router answer   -> gpt-4o" in out
    assert "called gpt-4.1-mini (fallback)" in out
    assert "routed completion trace cost: $0.005416" in out


def test_priced_litellm_call_adopts_the_routed_reservation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The call-lifecycle wiring proposed to the lead, simulated: the LiteLLM
    # logger's call adopts the reservation made by the routed call.
    from faremeter import calls
    from faremeter.routing.admission import take_admission

    original = calls.CallTracker._reserve  # pyright: ignore[reportPrivateUsage]
    adopted: list[Any] = []

    def reserve(meter: Any, span: Any, amount: Any, *rest: Any) -> Any:
        taken = take_admission() if span.kind is SpanKind.LLM else None
        if taken is not None:
            adopted.append(taken)
            return taken
        return original(meter, span, amount, *rest)

    monkeypatch.setattr(calls.CallTracker, "_reserve", staticmethod(reserve))
    monkeypatch.setattr(calls, "ADOPTS_ADMISSIONS", True, raising=False)
    m = make_test_meter(budgets=[Budget("month", limit="5", window="month")])
    handle = faremeter_litellm.instrument(m)
    try:
        with m.trace("job") as t, faremeter.attributes(step="parse"):
            _routed(m).completion(messages=MESSAGES, max_tokens=200)
        m.flush()
        assert len(adopted) == 1
        (row,) = m.budgets.status()
        assert row.reserved == Decimal(0)
        assert row.spent == t.cost == _charge(m, "gpt-4o-mini")
    finally:
        handle.uninstrument()
        m.close()
