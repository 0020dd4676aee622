# pyright: basic
"""RoutedLLM: a real LlamaIndex LLM routed by faremeter, with fallback and budgets."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

import faremeter
from faremeter import BudgetExceeded, Meter, SpanKind, SpanRecord, SpanStatus, Usage
from faremeter.budgets import Budget, BudgetManager
from faremeter.fallback import RetryPolicy
from faremeter.routing import Router
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_llamaindex import instrument
from faremeter_llamaindex._routed import ROUTED_MODEL_KEY, RoutedLLM
from faremeter_llamaindex.testing import Reply, ScriptedLLM

U1 = Usage(input_tokens=300, output_tokens=40)
U2 = Usage(input_tokens=420, output_tokens=25)
TIERS = {"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]}
NO_RETRY = RetryPolicy(retries={}, jitter_s=0)
MESSAGES = [ChatMessage(role="user", content="what is 2 + 3?")]


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _router(**kw: Any) -> Router:
    return Router(TIERS, steps={"parse": "gpt-4o-mini", "draft": "gpt-4o"}, complexity=False, **kw)


def _llms(cheap: list[Reply], strong: list[Reply]) -> dict[str, ScriptedLLM]:
    return {
        "gpt-4o-mini": ScriptedLLM(cheap, model="gpt-4o-mini"),
        "gpt-4o": ScriptedLLM(strong, model="gpt-4o"),
    }


def _routed(meter: Meter, llms: dict[str, ScriptedLLM], **kw: Any) -> RoutedLLM:
    return RoutedLLM(_router(), llms, meter=meter, retry=NO_RETRY, sleep=lambda s: None, **kw)


def _price(meter: Meter, model: str, *usages: Usage) -> Decimal:
    return sum((meter.catalog.cost(model, u).total or Decimal(0) for u in usages), Decimal(0))


def _llm_spans(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.kind is SpanKind.LLM]


def test_function_agent_runs_with_routed_llm_and_each_call_is_charged_once() -> None:
    meter = make_test_meter()
    llms = _llms(
        [Reply(tool_calls=[("add", {"a": 2, "b": 3})], usage=U1), Reply(text="5", usage=U2)], []
    )
    llm = _routed(meter, llms)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(add)], llm=llm)

    async def main() -> str:
        return str(await agent.run(user_msg="what is 2 + 3?"))

    with instrument(meter), meter.trace("job") as t, faremeter.attributes(step="parse"):
        assert asyncio.run(main()) == "5"
    meter.flush()
    calls = _llm_spans(meter)
    assert [s.model for s in calls] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [s.usage for s in calls] == [U1, U2]
    assert all(s.attributes["route.baseline_model"] == "gpt-4o" for s in calls)
    routes = [s for s in recorded_spans(meter) if s.name == "llamaindex.route"]
    assert len(routes) == 2
    assert all(r.kind is SpanKind.CHAIN and r.cost.total == Decimal(0) for r in routes)
    assert all("rule" in str(r.attributes["route.reason"]) for r in routes)
    assert t.cost == _price(meter, "gpt-4o-mini", U1, U2)  # no second charge by the router


def test_chat_falls_back_when_the_chosen_llm_fails() -> None:
    meter = make_test_meter()
    llms = _llms(
        [Reply(error=TimeoutError("provider timed out"))],
        [Reply(text="from the big one", usage=U1)],
    )
    llm = _routed(meter, llms)
    with instrument(meter), meter.trace("job") as t, faremeter.attributes(step="parse"):
        reply = llm.chat(MESSAGES)
    meter.flush()
    assert reply.message.content == "from the big one"
    assert reply.additional_kwargs[ROUTED_MODEL_KEY] == "gpt-4o"
    spans = recorded_spans(meter)
    attempts = [s.name for s in spans if s.name.startswith("attempt:")]
    assert attempts == ["attempt:gpt-4o-mini", "attempt:gpt-4o"]
    ok = [s for s in _llm_spans(meter) if s.status is SpanStatus.OK]
    assert [s.model for s in ok] == ["gpt-4o"]
    assert t.cost == _price(meter, "gpt-4o", U1)


def test_streams_sync_and_async() -> None:
    meter = make_test_meter()
    llms = _llms([Reply(text="hello world", usage=U1), Reply(text="async reply", usage=U2)], [])
    llm = _routed(meter, llms)

    async def astream() -> str:
        gen = await llm.astream_chat(MESSAGES)
        last = ""
        async for chunk in gen:
            last = chunk.message.content or ""
        return last

    with instrument(meter), meter.trace("job") as t, faremeter.attributes(step="parse"):
        chunks = list(llm.stream_chat(MESSAGES))
        assert chunks[-1].message.content == "hello world"
        assert all(c.additional_kwargs[ROUTED_MODEL_KEY] == "gpt-4o-mini" for c in chunks)
        assert asyncio.run(astream()) == "async reply"
    meter.flush()
    assert t.cost == _price(meter, "gpt-4o-mini", U1, U2)


def test_complete_and_acomplete_route() -> None:
    meter = make_test_meter()
    llms = _llms([], [])
    llm = _routed(meter, llms, attributes={"step": "draft"})
    with instrument(meter), meter.trace("job"):
        assert llm.complete("echo me").text == "echo me"
        assert asyncio.run(llm.acomplete("again")).text == "again"
    meter.flush()
    routes = [s for s in recorded_spans(meter) if s.name == "llamaindex.route"]
    assert [r.attributes["route.model"] for r in routes] == ["gpt-4o", "gpt-4o"]


def test_deny_budget_raises_to_the_caller_before_the_llm_is_called() -> None:
    meter = make_test_meter(budgets=[Budget("task", limit="0.0000001", window="trace")])
    llms = _llms([Reply(text="never", usage=U1)], [])
    llm = _routed(meter, llms)
    with instrument(meter), pytest.raises(BudgetExceeded), meter.trace("job"):
        llm.chat(MESSAGES, max_tokens=100)
    meter.flush()
    assert not _llm_spans(meter)
    assert llms["gpt-4o-mini"].chat(MESSAGES).message.content == "never"  # script untouched


@pytest.fixture
def adopting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The call-lifecycle wiring proposed to the lead: the priced call adopts the admission.

    Without it LlamaIndex's instrumented call reserves its own worst case (LlamaIndex
    reports no output cap), which a tight degrade budget refuses, and the call
    goes unrecorded.
    """
    from faremeter import calls
    from faremeter.routing.admission import take_admission

    original = calls.CallTracker._reserve

    def reserve(meter: Any, span: Any, amount: Any, *rest: Any) -> Any:
        if span.kind in (SpanKind.LLM, SpanKind.EMBEDDING):
            adopted = take_admission()
            if adopted is not None:
                return adopted
        return original(meter, span, amount, *rest)

    monkeypatch.setattr(calls.CallTracker, "_reserve", staticmethod(reserve))
    monkeypatch.setattr(calls, "ADOPTS_ADMISSIONS", True, raising=False)


@pytest.mark.usefixtures("adopting")
def test_degrade_budget_routes_async_calls_to_a_model_that_fits() -> None:
    # draft -> gpt-4o, but a $0.001 degrade budget cannot hold 400+ of its output
    # tokens: the router is asked for the best model that fits (gpt-4o-mini).
    manager = BudgetManager(
        [Budget("task", limit="0.001", window="trace", action="degrade")], min_output_tokens=400
    )
    meter = make_test_meter(budgets=manager)
    llms = _llms([Reply(text="cheap but fine", usage=U1)], [Reply(text="never", usage=U1)])
    llm = _routed(meter, llms, attributes={"step": "draft"})
    with instrument(meter), meter.trace("job") as t:
        reply = asyncio.run(llm.achat(MESSAGES, max_tokens=500))
    meter.flush()
    assert reply.additional_kwargs[ROUTED_MODEL_KEY] == "gpt-4o-mini"
    (route,) = [s for s in recorded_spans(meter) if s.name == "llamaindex.route"]
    assert "budget headroom" in str(route.attributes["route.reason"])
    assert "-> gpt-4o-mini" in str(route.attributes["route.degraded"])
    assert t.cost == _price(meter, "gpt-4o-mini", U1)


def test_tool_calls_need_a_function_calling_model() -> None:
    meter = make_test_meter()
    # gpt-4o-mini is declared unable to call tools: a tools call goes to gpt-4o.
    router = Router(
        TIERS,
        complexity=False,
        default_tier="economy",
        model_overrides={"gpt-4o-mini": {"capabilities": ["vision"]}},
    )
    llms = _llms([], [Reply(tool_calls=[("add", {"a": 1, "b": 1})], usage=U1)])
    llm = RoutedLLM(router, llms, meter=meter)
    tool = FunctionTool.from_defaults(add)
    with instrument(meter), meter.trace("job"):
        response = llm.chat_with_tools([tool], user_msg="1 + 1?")
        calls = llm.get_tool_calls_from_response(response)
        plain = llm.chat(MESSAGES)
    assert [c.tool_name for c in calls] == ["add"]
    assert response.additional_kwargs[ROUTED_MODEL_KEY] == "gpt-4o"
    assert plain.additional_kwargs[ROUTED_MODEL_KEY] == "gpt-4o-mini"


def test_metadata_and_validation() -> None:
    llm = RoutedLLM(_router(), _llms([], []), instrument=False)
    assert llm.metadata.is_function_calling_model
    with pytest.raises(ValueError, match="no model to call"):
        RoutedLLM(_router(), {"gpt-4o": ScriptedLLM([], model="gpt-4o")})
    with pytest.raises(ValueError, match="no router tier"):
        RoutedLLM(_router(), {**_llms([], []), "o3": ScriptedLLM([], model="o3")})


def test_routed_methods_open_no_llamaindex_span() -> None:
    meter = make_test_meter()
    llm = _routed(meter, _llms([Reply(text="hi", usage=U1)], []))
    with instrument(meter), meter.trace("job"), faremeter.attributes(step="parse"):
        llm.chat(MESSAGES)
    meter.flush()
    names = [s.name for s in _llm_spans(meter)]
    assert names and not any("RoutedLLM" in n for n in names)


def test_docs_example_runs_offline() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "docs" / "examples" / "router_llamaindex.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "agent: 2 + 3 = 5" in out
    assert "fallback: looked up by gpt-4o" in out
    assert "route gpt-4o-mini used gpt-4o      rule step=lookup -> gpt-4o-mini" in out
    assert "trace cost: $0.0089901" in out
    assert "saved against the most expensive candidate: $0.0045449" in out
