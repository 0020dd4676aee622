# pyright: basic
"""RoutedChatModel: LangChain's standard unit tests plus routing and fallback behaviour."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableBinding
from langchain_tests.unit_tests import ChatModelUnitTests
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field

import faremeter
from faremeter import BudgetExceeded, Meter, SpanKind, SpanRecord, SpanStatus, Usage
from faremeter.budgets import Budget, BudgetManager
from faremeter.cli import main
from faremeter.cost import format_usd
from faremeter.fallback import RetryPolicy
from faremeter.pricing import ModelPrice, PriceCatalog
from faremeter.routing import Router, RouteRule
from faremeter.routing.savings import routed_report
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_langchain import FaremeterCallbackHandler
from faremeter_langchain._routed import ROUTE_SPAN_NAME, ROUTED_LS_PROVIDER, RoutedChatModel


@pytest.fixture(autouse=True)
def _isolated(meter: Meter) -> Meter:
    """Calls without an explicit meter record into an in-memory default meter."""
    return meter


@pytest.fixture
def routed_runs_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler change proposed to the lead: a routed run is plumbing, not a model call.

    Without it the handler records the ``RoutedChatModel`` run itself as an
    ``llm`` span for the model ``routed`` — a $0 wrapper that nonetheless
    reserves an unpriced call, which an enforcing budget refuses. With it the
    route's ``chain`` span and the chosen model's ``llm`` span record the call.
    """
    original = FaremeterCallbackHandler._start_llm

    def start_llm(
        self: Any,
        serialized: Any,
        prompts: Any,
        chat: bool,
        run_id: Any,
        parent_run_id: Any,
        tags: Any,
        metadata: Any,
        kwargs: Any,
    ) -> None:
        if metadata and metadata.get("ls_provider") == ROUTED_LS_PROVIDER:
            return
        original(self, serialized, prompts, chat, run_id, parent_run_id, tags, metadata, kwargs)

    monkeypatch.setattr(FaremeterCallbackHandler, "_start_llm", start_llm)


CAPS = ("function_calling", "response_schema")


def catalog() -> PriceCatalog:
    return PriceCatalog(
        models={
            "cheap": ModelPrice(
                input_per_mtok="0.15",
                output_per_mtok="0.6",
                max_input_tokens=16_000,
                capabilities=CAPS,
            ),
            "cheap-notools": ModelPrice(
                input_per_mtok="0.1", output_per_mtok="0.4", max_input_tokens=16_000
            ),
            "strong": ModelPrice(
                input_per_mtok="2.5",
                output_per_mtok="10",
                max_input_tokens=128_000,
                capabilities=CAPS,
            ),
        }
    )


def make_router() -> Router:
    return Router(
        {"economy": ["cheap", "cheap-notools"], "standard": ["strong"]},
        catalog=catalog(),
        complexity=False,
        default_tier="standard",
        steps={"parse": "economy", "draft": "strong"},
    )


class ToolFake(GenericFakeChatModel):
    """LangChain's generic fake, answering forever, with tool binding."""

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)


def fake(name: str, *messages: AIMessage) -> ToolFake:
    replies = list(messages) or [AIMessage(content=f"hello from {name}")]
    return ToolFake(messages=itertools.cycle(replies), name=name)


class RateLimitError(Exception):
    status_code = 429


class Failing(ToolFake):
    """Raises a provider rate-limit error on every call and stream."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise RateLimitError("429 too many requests")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise RateLimitError("429 too many requests")


NO_WAIT: dict[str, Any] = {
    "retry": RetryPolicy(retries={}, jitter_s=0),
    "sleep": lambda s: None,
    "clock": lambda: 0.0,
}


def routed(**models: Any) -> RoutedChatModel:
    defaults = {
        "cheap": fake("cheap"),
        "cheap-notools": fake("cheap-notools"),
        "strong": fake("strong"),
    }
    return RoutedChatModel(
        router=make_router(), models={**defaults, **models}, chain_options=NO_WAIT
    )


class TestRoutedChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[RoutedChatModel]:
        return RoutedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "router": make_router(),
            "models": {
                "cheap": fake("cheap"),
                "cheap-notools": fake("n"),
                "strong": fake("strong"),
            },
        }

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True


# --------------------------------------------------------------- behaviour


def test_invoke_routes_by_step_and_records_the_decision() -> None:
    model = routed()
    with faremeter.attributes(step="parse"):
        reply = model.invoke("hi")
    assert reply.content == "hello from cheap-notools"  # cheapest economy model
    route = reply.response_metadata["faremeter_route"]
    assert (
        route["model"] == "cheap-notools" and route["reason"] == "rule step=parse -> tier economy"
    )
    assert model.invoke("hi").content == "hello from strong"  # default tier


def test_langgraph_node_is_the_default_step() -> None:
    model = routed()
    reply = model.invoke("hi", config={"metadata": {"langgraph_node": "draft"}})
    assert reply.response_metadata["faremeter_route"]["model"] == "strong"


async def test_ainvoke_and_batch() -> None:
    model = routed()
    with faremeter.attributes(step="parse"):
        reply = await model.ainvoke("hi")
        replies = model.batch(["a", "b"])
    assert reply.content == "hello from cheap-notools"
    assert [r.content for r in replies] == ["hello from cheap-notools"] * 2


def test_falls_back_to_the_alternative_on_rate_limit() -> None:
    model = routed(strong=Failing(messages=iter([]), name="strong"))
    reply = model.invoke("hi")
    assert reply.content in {"hello from cheap", "hello from cheap-notools"}
    assert reply.response_metadata["faremeter_route"]["model"] == "strong"


def test_stream_falls_back_before_the_first_chunk() -> None:
    model = routed(strong=Failing(messages=iter([]), name="strong"))
    chunks = list(model.stream("hi"))
    text = "".join(str(c.content) for c in chunks)
    assert text.startswith("hello from cheap")
    assert chunks[0].response_metadata["faremeter_route"]["model"] == "strong"


async def test_astream_routes() -> None:
    model = routed()
    with faremeter.attributes(step="draft"):
        text = "".join([str(c.content) async for c in model.astream("hi")])
    assert text == "hello from strong"


def test_bind_tools_routes_only_to_tool_capable_models() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    model = routed()
    bound = model.bind_tools([add])
    assert isinstance(bound, RunnableBinding)
    with faremeter.attributes(step="parse"):
        reply = bound.invoke("add 1 and 2")
    # The economy tier's cheapest model cannot call tools: its tool-capable peer answers.
    assert reply.content == "hello from cheap"


class Answer(BaseModel):
    value: int


def test_with_structured_output_routes_to_json_capable_models() -> None:
    call = AIMessage(content="", tool_calls=[{"name": "Answer", "args": {"value": 42}, "id": "1"}])
    model = routed(cheap=fake("cheap", call), strong=fake("strong", call))
    structured = model.with_structured_output(Answer)
    with faremeter.attributes(step="parse"):
        assert structured.invoke("what is the answer?") == Answer(value=42)


async def test_with_structured_output_async() -> None:
    call = AIMessage(content="", tool_calls=[{"name": "Answer", "args": {"value": 7}, "id": "1"}])
    model = routed(cheap=fake("cheap", call), strong=fake("strong", call))
    assert await model.with_structured_output(Answer).ainvoke("q") == Answer(value=7)


def test_every_candidate_needs_a_model() -> None:
    with pytest.raises(ValueError, match="without a chat model in models=: strong"):
        RoutedChatModel(
            router=make_router(), models={"cheap": fake("c"), "cheap-notools": fake("n")}
        )


def test_route_is_inspectable() -> None:
    model = routed()
    decision = model.route([HumanMessage("x" * 400)], {"step": "parse"})
    assert decision.model == "cheap-notools" and decision.input_tokens == 100


def test_rules_match_run_tags() -> None:
    router = Router(
        {"economy": ["cheap", "cheap-notools"], "standard": ["strong"]},
        catalog=catalog(),
        complexity=False,
        rules=[RouteRule.of({"tags": ["bulk"]}, tier="economy")],
    )
    model = RoutedChatModel(
        router=router,
        models={"cheap": fake("cheap"), "cheap-notools": fake("n"), "strong": fake("strong")},
        chain_options=NO_WAIT,
    )
    assert model.invoke("x", config={"tags": ["bulk"]}).content == "hello from n"
    assert model.invoke("x").content == "hello from strong"


# ------------------------------------------------- budgets and the decision log

U1 = Usage(input_tokens=300, output_tokens=40)
TIERS = {"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]}
NO_RETRY: dict[str, Any] = {"retry": RetryPolicy(retries={}, jitter_s=0), "sleep": lambda s: None}


class UsageFake(BaseChatModel):
    """A chat model answering every call with a known usage, logging that it was called.

    The usage is looked up by the last message's text (the step name in the
    agent below), so the hand computation knows every call's tokens.
    """

    model: str
    usages: dict[str, Usage] = Field(default_factory=dict[str, Usage])
    log: Any = Field(default_factory=list[str])  # Any: pydantic would copy a list

    @property
    def _llm_type(self) -> str:
        return "usage-fake"

    def _reply(self, messages: list[BaseMessage]) -> ChatResult:
        text = str(messages[-1].content)
        self.log.append(f"{self.model}:{text}")
        usage = self.usages.get(text, U1)
        message = AIMessage(
            content=f"{text} done by {self.model}",
            usage_metadata={
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            },
            response_metadata={"model_name": self.model},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._reply(messages)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._reply(messages).generations[0].message
        assert isinstance(message, AIMessage)
        yield ChatGenerationChunk(message=AIMessageChunk(content=str(message.content)))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
            )
        )


def usage_models(log: list[str], usages: dict[str, Usage] | None = None) -> dict[str, UsageFake]:
    return {m: UsageFake(model=m, usages=usages or {}, log=log) for m in ("gpt-4o-mini", "gpt-4o")}


def routed_usage(models: dict[str, UsageFake]) -> RoutedChatModel:
    return RoutedChatModel(router=research_router(), models=models, chain_options=NO_WAIT)


def price(meter: Meter, model: str, *usages: Usage) -> Decimal:
    return sum((meter.catalog.cost(model, u).total or Decimal(0) for u in usages), Decimal(0))


def llm_spans(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.kind is SpanKind.LLM]


def route_spans(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.name == ROUTE_SPAN_NAME]


def research_router(**kw: Any) -> Router:
    return Router(TIERS, steps=RULES, complexity=False, **kw)


@pytest.mark.usefixtures("routed_runs_skipped")
def test_one_charge_route_chain_span_and_route_attributes() -> None:
    meter = make_test_meter()
    log: list[str] = []
    model = RoutedChatModel(
        router=research_router(), models=usage_models(log), chain_options=NO_WAIT
    )
    handler = FaremeterCallbackHandler(meter)
    with meter.trace("job") as t:
        reply = model.invoke(
            "parse", config={"callbacks": [handler], "metadata": {"step": "parse"}}
        )
    meter.flush()
    assert log == ["gpt-4o-mini:parse"]
    assert reply.response_metadata["faremeter_route"]["baseline_model"] == "gpt-4o"
    (route,) = route_spans(meter)
    assert route.kind is SpanKind.CHAIN and route.cost.total == Decimal(0)
    assert route.attributes["route.model"] == "gpt-4o-mini"
    assert route.attributes["route.baseline_model"] == "gpt-4o"
    assert route.attributes["step"] == "parse"
    (call,) = llm_spans(meter)  # the routed run itself is not a second model call
    assert call.model == "gpt-4o-mini" and call.usage == U1
    assert call.attributes["route.model"] == "gpt-4o-mini"
    assert call.attributes["route.baseline_model"] == "gpt-4o"
    attempt = next(s for s in recorded_spans(meter) if s.span_id == call.parent_span_id)
    assert attempt.name == "attempt:gpt-4o-mini" and attempt.parent_span_id == route.span_id
    assert t.cost == price(meter, "gpt-4o-mini", U1)  # charged once


@pytest.mark.usefixtures("routed_runs_skipped")
def test_streams_record_the_chosen_model_sync_and_async() -> None:
    meter = make_test_meter()
    log: list[str] = []
    model = RoutedChatModel(
        router=research_router(), models=usage_models(log), chain_options=NO_WAIT
    )
    handler = FaremeterCallbackHandler(meter)
    config: Any = {"callbacks": [handler], "metadata": {"langgraph_node": "draft"}}

    async def astream() -> str:
        return "".join([str(c.content) async for c in model.astream("draft", config=config)])

    with meter.trace("job") as t:
        parse: Any = {**config, "metadata": {"step": "parse"}}
        chunks = list(model.stream("parse", config=parse))
        text = asyncio.run(astream())
    meter.flush()
    assert "".join(str(c.content) for c in chunks) == "parse done by gpt-4o-mini"
    assert chunks[0].response_metadata["faremeter_route"]["model"] == "gpt-4o-mini"
    assert text == "draft done by gpt-4o"
    assert [(s.model, s.usage) for s in llm_spans(meter)] == [("gpt-4o-mini", U1), ("gpt-4o", U1)]
    assert [s.attributes["route.model"] for s in route_spans(meter)] == ["gpt-4o-mini", "gpt-4o"]
    assert t.cost == price(meter, "gpt-4o-mini", U1) + price(meter, "gpt-4o", U1)


@pytest.mark.usefixtures("routed_runs_skipped")
@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
def test_deny_budget_raises_before_any_model_is_called(mode: str) -> None:
    meter = make_test_meter(budgets=[Budget("task", limit="0.0000001", window="trace")])
    log: list[str] = []
    model = RoutedChatModel(
        router=research_router(), models=usage_models(log), chain_options=NO_WAIT
    )
    config: Any = {"callbacks": [FaremeterCallbackHandler(meter)], "metadata": {"step": "draft"}}

    async def acall() -> None:
        if mode == "ainvoke":
            await model.ainvoke("draft", config=config, max_tokens=100)
        else:
            async for _ in model.astream("draft", config=config, max_tokens=100):
                pass

    with pytest.raises(BudgetExceeded), meter.trace("job"):
        if mode == "invoke":
            model.invoke("draft", config=config, max_tokens=100)
        elif mode == "stream":
            list(model.stream("draft", config=config, max_tokens=100))
        else:
            asyncio.run(acall())
    meter.flush()
    assert log == []  # no model was called
    assert not llm_spans(meter)
    (denied,) = route_spans(meter)
    assert denied.status is SpanStatus.DENIED and denied.attributes["route.model"] == "gpt-4o"


@pytest.mark.usefixtures("routed_runs_skipped")
@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_degrade_budget_routes_to_a_cheaper_model_that_fits(mode: str) -> None:
    # draft -> gpt-4o, but a $0.001 degrade budget cannot hold 400+ of its output
    # tokens: the router is asked for the best model that fits (gpt-4o-mini).
    manager = BudgetManager(
        [Budget("task", limit="0.001", window="trace", action="degrade")], min_output_tokens=400
    )
    meter = make_test_meter(budgets=manager)
    log: list[str] = []
    model = RoutedChatModel(
        router=research_router(), models=usage_models(log), chain_options=NO_WAIT
    )
    config: Any = {"callbacks": [FaremeterCallbackHandler(meter)], "metadata": {"step": "draft"}}
    with meter.trace("job") as t:
        if mode == "invoke":
            reply = model.invoke("draft", config=config, max_tokens=500)
        else:
            reply = asyncio.run(model.ainvoke("draft", config=config, max_tokens=500))
    meter.flush()
    assert log == ["gpt-4o-mini:draft"]
    assert reply.response_metadata["faremeter_route"]["degraded"]
    (route,) = route_spans(meter)
    assert "-> gpt-4o-mini" in str(route.attributes["route.degraded"])
    assert route.attributes["route.model"] == "gpt-4o-mini"
    assert t.cost == price(meter, "gpt-4o-mini", U1)


def test_degrade_budget_shrinks_max_tokens_when_the_model_fits() -> None:
    # parse -> gpt-4o-mini; $0.0002 holds 300 input tokens and ~260 output tokens
    # of gpt-4o-mini, not the 2000 asked for: the cap is fitted, the model kept.
    manager = BudgetManager(
        [Budget("task", limit="0.0002", window="trace", action="degrade")], min_output_tokens=50
    )
    meter = make_test_meter(budgets=manager)
    seen: list[Any] = []

    class CapFake(UsageFake):
        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            seen.append(kw.get("max_tokens"))
            return self._reply(messages)

    log: list[str] = []
    models = {m: CapFake(model=m, log=log) for m in ("gpt-4o-mini", "gpt-4o")}
    model = RoutedChatModel(
        router=research_router(), models=models, meter=meter, chain_options=NO_WAIT
    )
    with meter.trace("job"):
        reply = model.invoke(
            [HumanMessage("x" * 1200)], config={"metadata": {"step": "parse"}}, max_tokens=2000
        )
    meter.flush()
    assert log and log[0].startswith("gpt-4o-mini:")
    assert isinstance(seen[0], int) and 50 <= seen[0] < 2000
    assert "max_tokens" in str(reply.response_metadata["faremeter_route"]["degraded"])
    (route,) = route_spans(meter)
    assert route.attributes["route.degraded"]


# ------------------------------------------- the research agent, routed by step

# The ten steps of the research agent, with the tokens each reports.
STEPS: dict[str, Usage] = {
    "parse": Usage(input_tokens=500, output_tokens=100),
    "plan": Usage(input_tokens=800, output_tokens=300),
    "web_search": Usage(input_tokens=1200, output_tokens=150),
    "read_page_1": Usage(input_tokens=2500, output_tokens=200),
    "read_page_2": Usage(input_tokens=3800, output_tokens=200),
    "summarize": Usage(input_tokens=4500, output_tokens=500),
    "fact_check": Usage(input_tokens=5200, output_tokens=150),
    "read_verification_source": Usage(input_tokens=6000, output_tokens=200),
    "draft": Usage(input_tokens=6800, output_tokens=1000),
    "format": Usage(input_tokens=7500, output_tokens=400),
}
RULES = {
    "parse": "gpt-4o-mini",
    "plan": "gpt-4o",
    "web_search": "gpt-4o-mini",
    "read_page_1": "gpt-4o-mini",
    "read_page_2": "gpt-4o-mini",
    "summarize": "gpt-4o-mini",
    "fact_check": "gpt-4o",
    "read_verification_source": "gpt-4o-mini",
    "draft": "gpt-4o",
    "format": "gpt-4o-mini",
}


class Research(TypedDict):
    notes: list[str]


def research_agent(model: RoutedChatModel) -> Any:
    """A LangGraph agent whose nodes are the ten steps, each asking the one routed model."""
    graph = StateGraph(Research)

    def node(step: str) -> Any:
        def run(state: Research) -> dict[str, list[str]]:
            reply = model.invoke([HumanMessage(step)])
            return {"notes": [*state["notes"], str(reply.content)]}

        return run

    previous = START
    for step in STEPS:
        graph.add_node(step, node(step))
        graph.add_edge(previous, step)
        previous = step
    graph.add_edge(previous, END)
    return graph.compile()


@pytest.mark.usefixtures("routed_runs_skipped")
def test_research_agent_routes_each_step_and_reports_savings_against_all_gpt_4o(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    meter = Meter(ledger=url, _register=False)
    log: list[str] = []
    model = RoutedChatModel(router=research_router(), models=usage_models(log, STEPS))
    agent = research_agent(model)
    handler = FaremeterCallbackHandler(meter)

    with meter.trace("research") as t:
        state = agent.invoke({"notes": []}, config={"callbacks": [handler]})
    meter.flush()

    assert state["notes"] == [f"{step} done by {RULES[step]}" for step in STEPS]
    assert log == [f"{RULES[step]}:{step}" for step in STEPS]
    calls = llm_spans(meter)
    assert [(s.attributes["step"], s.model, s.usage) for s in calls] == [
        (step, RULES[step], usage) for step, usage in STEPS.items()
    ]
    assert all(s.attributes["route.baseline_model"] == "gpt-4o" for s in calls)
    by_id = {s.span_id: s for s in recorded_spans(meter)}
    for call in calls:  # node -> route decision -> attempt -> the chosen model's call
        attempt = by_id[call.parent_span_id or ""]
        route = by_id[attempt.parent_span_id or ""]
        node = by_id[route.parent_span_id or ""]
        assert attempt.name == f"attempt:{call.model}" and route.name == ROUTE_SPAN_NAME
        assert node.kind is SpanKind.CHAIN and node.name == call.attributes["step"]
    real = sum((price(meter, RULES[step], u) for step, u in STEPS.items()), Decimal(0))
    all_4o = price(meter, "gpt-4o", *STEPS.values())
    assert t.cost == real  # one charge per step

    report = routed_report(meter.ledger, meter.catalog)
    assert report.calls == 10 and report.fallback_calls == 0
    assert report.cost == real
    assert report.baseline_cost == all_4o
    assert report.saved == all_4o - real
    assert report.saved == sum(
        (
            price(meter, "gpt-4o", u) - price(meter, "gpt-4o-mini", u)
            for step, u in STEPS.items()
            if RULES[step] == "gpt-4o-mini"
        ),
        Decimal(0),
    )
    assert {r.step: r.chosen for r in report.rows} == RULES
    meter.close()

    monkeypatch.setenv("COLUMNS", "200")  # rich would shorten cells on a narrow capture
    assert main(["report", "--routed", "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert format_usd(report.saved) in out
    assert format_usd(report.baseline_cost) in out
    for step in STEPS:
        assert step in out


def test_docs_example_runs_offline() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[3] / "docs" / "examples" / "router_langchain.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[:3] == [
        "parse: done by gpt-4o-mini",
        "draft: done by gpt-4o",
        "format: done by gpt-4o-mini",
    ]
    # 2 x (2000 in, 300 out) on gpt-4o-mini + 1 on gpt-4o; baseline 3 on gpt-4o.
    assert "trace cost: $0.00896" in out
    assert "denied before the call: tiny" in out
    assert "routed calls: 3, cost $0.00896, all on gpt-4o $0.0240000" in out
    assert "saved against the most expensive candidate: $0.0150400" in out
