# pyright: basic
"""The LangChain handler's "must hold" list, each against real LangChain / LangGraph runs."""

from __future__ import annotations

import asyncio
import logging
import sys
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool

from faremeter import Cost, Meter, SpanKind, SpanRecord, SpanStatus, Usage
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.tree import TraceTree
from faremeter_langchain import FaremeterCallbackHandler

sys.path.insert(0, str(Path(__file__).parent))
from lc_fakes import NamedFake, StreamingFake, ToolFake, ai, make_agent, scripted

MODEL = "gpt-4o-mini"
U1 = Usage(input_tokens=1200, output_tokens=150)
U2 = Usage(input_tokens=1500, output_tokens=300, cache_read_tokens=1024)
U3 = Usage(input_tokens=1900, output_tokens=90)


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return "42"


@pytest.fixture
def meter() -> Any:
    m = make_test_meter(tools={"lookup": "0.001"})
    yield m
    m.close()


def twice_agent() -> Any:
    """model → tool → model → tool → model."""
    model = ToolFake(
        messages=scripted(
            ai(U1, MODEL, tool="lookup", call_id="a"),
            ai(U2, MODEL, tool="lookup", call_id="b"),
            ai(U3, MODEL, content="done"),
        )
    )
    return make_agent(model, [lookup])


INPUT = {"messages": [("user", "hi")]}


def by_id(spans: list[SpanRecord]) -> dict[str, SpanRecord]:
    return {s.span_id: s for s in spans}


def check_agent_trace(meter: Meter, spans: list[SpanRecord]) -> None:
    """Tree shape, node parents and exact totals of one ``twice_agent`` run."""
    ids = by_id(spans)
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert root.kind is SpanKind.AGENT
    llm = [s for s in spans if s.kind is SpanKind.LLM]
    tools = [s for s in spans if s.kind is SpanKind.TOOL]
    assert len(llm) == 3 and len(tools) == 2
    for span in llm:
        node = ids[span.parent_span_id or ""]
        assert (node.kind, node.name, node.parent_span_id) == (
            SpanKind.CHAIN,
            "model",
            root.span_id,
        )
        assert span.attributes["step"] == "model"
    for span in tools:
        node = ids[span.parent_span_id or ""]
        assert (node.kind, node.name, node.parent_span_id) == (
            SpanKind.CHAIN,
            "tools",
            root.span_id,
        )
        assert span.cost.total == Decimal("0.001")
    tree = TraceTree.from_spans(root.trace_id, spans)
    leaves = sum((s.cost.total or Decimal(0) for s in spans), Decimal(0))
    expected = sum(
        (meter.price(MODEL, u).total or Decimal(0) for u in (U1, U2, U3)), Decimal("0.002")
    )
    assert tree.total_cost == leaves == expected


def test_graph_totals_match_usage_metadata_callback(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    reference = UsageMetadataCallbackHandler()
    twice_agent().invoke(INPUT, config={"callbacks": [handler, reference]})
    spans = recorded_spans(meter)
    check_agent_trace(meter, spans)
    ref = reference.usage_metadata[MODEL]
    total = sum((s.usage for s in spans if s.usage), Usage())
    assert (total.input_tokens, total.output_tokens, total.total_tokens) == (
        ref["input_tokens"],
        ref["output_tokens"],
        ref["total_tokens"],
    )
    assert total.cache_read_tokens == ref.get("input_token_details", {}).get("cache_read")
    assert handler.open_runs == 0


async def test_ainvoke_and_astream(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    await twice_agent().ainvoke(INPUT, config={"callbacks": [handler]})
    check_agent_trace(meter, recorded_spans(meter))
    meter2 = make_test_meter(tools={"lookup": "0.001"})
    handler2 = FaremeterCallbackHandler(meter2)
    async for _ in twice_agent().astream(INPUT, config={"callbacks": [handler2]}):
        pass
    check_agent_trace(meter2, recorded_spans(meter2))
    assert handler.open_runs == handler2.open_runs == 0


def test_batch_is_one_trace_per_input(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    # Three agents (each with its own scripted model) batched through one runnable.
    agents = [twice_agent() for _ in range(3)]
    from langchain_core.runnables import RunnableLambda

    def run_one(i: int) -> Any:
        return agents[i].invoke(INPUT)

    run = RunnableLambda(run_one)
    run.batch(
        [0, 1, 2],
        config=[{"callbacks": [handler], "metadata": {"user_id": f"b{i}"}} for i in range(3)],
    )
    spans = recorded_spans(meter)
    traces: dict[str, list[SpanRecord]] = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    assert len(traces) == 3
    assert {s.attributes["user_id"] for s in spans} == {"b0", "b1", "b2"}
    for trace_spans in traces.values():
        assert len({s.attributes["user_id"] for s in trace_spans}) == 1
        assert len([s for s in trace_spans if s.kind is SpanKind.LLM]) == 3


def test_graph_batch(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    model = ToolFake(messages=scripted(*(ai(U1, MODEL, content=f"a{i}") for i in range(4))))
    agent = make_agent(model, [lookup])
    agent.batch([INPUT] * 4, config={"callbacks": [handler]})
    spans = recorded_spans(meter)
    assert len({s.trace_id for s in spans}) == 4
    assert len([s for s in spans if s.kind is SpanKind.LLM]) == 4
    assert handler.open_runs == 0


async def test_fifty_concurrent_ainvokes_do_not_mix(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)

    async def one(i: int) -> None:
        await twice_agent().ainvoke(
            INPUT, config={"callbacks": [handler], "metadata": {"user_id": f"u{i}"}}
        )

    await asyncio.gather(*(one(i) for i in range(50)))
    spans = recorded_spans(meter)
    traces: dict[str, list[SpanRecord]] = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    assert len(traces) == 50
    users = set()
    for trace_spans in traces.values():
        owners = {s.attributes.get("user_id") for s in trace_spans}
        assert len(owners) == 1
        users |= owners
        check_agent_trace(meter, trace_spans)
    assert users == {f"u{i}" for i in range(50)}
    assert handler.open_runs == 0


def test_create_react_agent(meter: Meter) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        model = ToolFake(
            messages=scripted(ai(U1, MODEL, tool="lookup"), ai(U2, MODEL, content="ok"))
        )
        agent = create_react_agent(model, [lookup])
    agent.invoke(
        INPUT, config={"callbacks": [FaremeterCallbackHandler(meter)], "metadata": {"team": "t1"}}
    )
    spans = recorded_spans(meter)
    ids = by_id(spans)
    llm = [s for s in spans if s.kind is SpanKind.LLM]
    (tool_span,) = [s for s in spans if s.kind is SpanKind.TOOL]
    assert [ids[s.parent_span_id or ""].name for s in llm] == ["agent", "agent"]
    assert ids[tool_span.parent_span_id or ""].name == "tools"
    assert all(s.attributes["team"] == "t1" for s in spans)


# -- errors -----------------------------------------------------------------------
class Boom(RuntimeError):
    pass


def test_error_mid_graph_reaches_caller_unchanged(meter: Meter) -> None:
    boom = Boom("rate limited")
    model = ToolFake(messages=scripted(ai(U1, MODEL, tool="lookup"), boom))
    handler = FaremeterCallbackHandler(meter)
    with pytest.raises(Boom) as info:
        make_agent(model, [lookup]).invoke(INPUT, config={"callbacks": [handler]})
    assert info.value is boom
    spans = recorded_spans(meter)
    errors = [s for s in spans if s.status is SpanStatus.ERROR]
    assert {s.kind for s in errors} >= {SpanKind.LLM, SpanKind.AGENT}
    assert all("rate limited" in (s.error or "") for s in errors)
    ok = [s for s in spans if s.kind is SpanKind.LLM and s.status is SpanStatus.OK]
    assert len(ok) == 1 and ok[0].cost.total == meter.price(MODEL, U1).total
    assert handler.open_runs == 0


def test_llm_error_keeps_partial_usage(meter: Meter) -> None:
    import uuid

    handler = FaremeterCallbackHandler(meter)
    run_id = uuid.uuid4()
    handler.on_chat_model_start({}, [[]], run_id=run_id, metadata={"ls_model_name": MODEL})
    partial = LLMResult(generations=[[ChatGeneration(message=ai(U1, MODEL, "partial"))]])
    handler.on_llm_error(Boom("cut"), run_id=run_id, response=partial)
    (span,) = recorded_spans(meter)
    assert span.status is SpanStatus.ERROR and span.usage == U1
    assert span.cost.total == meter.price(MODEL, U1).total


def test_tool_error_is_recorded_and_not_charged(meter: Meter) -> None:
    @tool
    def flaky(query: str) -> str:
        """Fails."""
        raise Boom("tool down")

    handler = FaremeterCallbackHandler(meter)
    with pytest.raises(Boom):
        flaky.invoke({"query": "x"}, config={"callbacks": [handler]})
    (span,) = recorded_spans(meter)
    assert (span.kind, span.status, span.cost.total) == (SpanKind.TOOL, SpanStatus.ERROR, 0)
    assert handler.open_runs == 0


# -- models and usage -------------------------------------------------------------
def test_unknown_model_unpriced_warned_once(meter: Meter, caplog: pytest.LogCaptureFixture) -> None:
    handler = FaremeterCallbackHandler(meter)
    fake = ToolFake(messages=scripted(*(ai(U1, "acme-llm-9000", "x") for _ in range(3))))
    with caplog.at_level(logging.WARNING, logger="faremeter"):
        for _ in range(3):
            fake.invoke("hi", config={"callbacks": [handler]})
    spans = recorded_spans(meter)
    assert [(s.model, s.cost.total, s.usage) for s in spans] == [("acme-llm-9000", None, U1)] * 3
    assert len([r for r in caplog.records if "acme-llm-9000" in r.getMessage()]) == 1


def test_model_name_fallbacks(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    # response_metadata has no model_name: ls_model_name (from the model's field) prices it.
    NamedFake(messages=scripted(ai(U1, None, "x"))).invoke("hi", config={"callbacks": [handler]})
    # No name anywhere: usage is kept, the span is unpriced, never dropped (#40518).
    ToolFake(messages=scripted(ai(U1, None, "x"))).invoke("hi", config={"callbacks": [handler]})
    named, anonymous = recorded_spans(meter)
    assert named.model == MODEL and named.cost.total == meter.price(MODEL, U1).total
    assert anonymous.usage == U1 and anonymous.cost.total is None
    assert anonymous.cost.unpriced_reason


def test_response_metadata_snapshot_wins(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    fake = NamedFake(messages=scripted(ai(U1, "gpt-4o-2024-08-06", "x")))  # requested gpt-4o-mini
    fake.invoke("hi", config={"callbacks": [handler]})
    (span,) = recorded_spans(meter)
    assert span.model == "gpt-4o-2024-08-06"
    assert span.cost.total == meter.price("gpt-4o-2024-08-06", U1).total


def test_every_generation_is_read(meter: Meter) -> None:
    import uuid

    handler = FaremeterCallbackHandler(meter)
    run_id = uuid.uuid4()
    handler.on_chat_model_start({}, [[]], run_id=run_id)
    result = LLMResult(
        generations=[
            [
                ChatGeneration(message=ai(U1, MODEL, "a")),
                ChatGeneration(message=ai(U2, MODEL, "b")),
            ],
            [ChatGeneration(message=ai(U3, MODEL, "c"))],
        ]
    )
    handler.on_llm_end(result, run_id=run_id)
    (span,) = recorded_spans(meter)
    assert span.usage == U1 + U2 + U3


def test_attribution_from_metadata_and_handler(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter, environment="prod", team="default-team")
    metadata = {"user_id": "u7", "team": "t7", "workflow": "wf", "feature": "f", "tenant": "acme"}
    twice_agent().invoke(INPUT, config={"callbacks": [handler], "metadata": metadata})
    for span in recorded_spans(meter):
        assert {k: span.attributes[k] for k in metadata} == metadata
        assert span.attributes["environment"] == "prod"


# -- streaming --------------------------------------------------------------------
def test_stream_without_usage_is_estimated(meter: Meter) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    handler = FaremeterCallbackHandler(meter)
    fake = GenericFakeChatModel(messages=iter(["the answer is forty two"]))
    list(fake.stream("what is the answer to everything?", config={"callbacks": [handler]}))
    (span,) = recorded_spans(meter)
    assert span.usage is not None and span.usage.source == "estimated"
    assert span.usage.input_tokens > 0 and span.usage.output_tokens > 0


def test_stream_with_usage_is_reported(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    fake = StreamingFake(messages=scripted(ai(U1, MODEL, "a long streamed answer")))
    list(fake.stream("hi", config={"callbacks": [handler]}))
    (span,) = recorded_spans(meter)
    assert span.usage == U1 and span.cost.total == meter.price(MODEL, U1).total


async def test_langgraph_messages_mode_without_usage_is_estimated(meter: Meter) -> None:
    # GenericFakeChatModel streams (as LangGraph's "messages" mode makes every model
    # do) without usage_metadata: the calls must be estimated, never free.
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    class Fake(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kw: Any) -> Any:
            return self

    agent = make_agent(Fake(messages=iter([AIMessage(content="hello there friend")])), [lookup])
    handler = FaremeterCallbackHandler(meter)
    got = [
        c
        async for c in agent.astream(INPUT, config={"callbacks": [handler]}, stream_mode="messages")
    ]
    assert got
    (span,) = [s for s in recorded_spans(meter) if s.kind is SpanKind.LLM]
    assert (
        span.usage is not None and span.usage.source == "estimated" and span.usage.output_tokens > 0
    )


# -- LangChain's own cache -----------------------------------------------------------
@pytest.mark.parametrize("use_async", [False, True])
async def test_llm_cache_hit_is_cached_not_charged(meter: Meter, use_async: bool) -> None:
    handler = FaremeterCallbackHandler(meter)
    fake = ToolFake(
        messages=scripted(ai(U1, MODEL, "first"), ai(U2, MODEL, "second")), cache=InMemoryCache()
    )
    config: Any = {"callbacks": [handler]}
    for _ in range(2):
        if use_async:
            await fake.ainvoke("same prompt", config=config)
        else:
            fake.invoke("same prompt", config=config)
    paid, hit = recorded_spans(meter)
    assert paid.status is SpanStatus.OK and paid.cost.total == meter.price(MODEL, U1).total
    assert hit.status is SpanStatus.CACHED and hit.cost.total == 0
    assert hit.saved == paid.cost.total


def test_global_llm_cache(meter: Meter) -> None:
    from langchain_core.globals import set_llm_cache

    set_llm_cache(InMemoryCache())
    try:
        handler = FaremeterCallbackHandler(meter)
        fake = ToolFake(messages=scripted(ai(U1, MODEL, "first"), ai(U2, MODEL, "second")))
        fake.invoke("p", config={"callbacks": [handler]})
        fake.invoke("p", config={"callbacks": [handler]})
    finally:
        set_llm_cache(None)
    assert [s.status for s in recorded_spans(meter)] == [SpanStatus.OK, SpanStatus.CACHED]


# -- tools ---------------------------------------------------------------------------
def test_tool_reported_cost_via_artifact(meter: Meter) -> None:
    @tool(response_format="content_and_artifact")
    def search(query: str) -> tuple[str, dict[str, Any]]:
        """Search the paid API."""
        return "results", {"cost": "0.0125", "hits": 3}

    handler = FaremeterCallbackHandler(meter)
    call = {"name": "search", "args": {"query": "x"}, "id": "c1", "type": "tool_call"}
    search.invoke(call, config={"callbacks": [handler]})
    (span,) = recorded_spans(meter)
    assert span.cost == Cost.of_tool("0.0125")


def test_tool_reported_cost_object_return(meter: Meter) -> None:
    @tool
    def paid(query: str) -> dict[str, Any]:
        """Returns its own cost."""
        return {"cost": 0.5, "rows": []}

    paid.invoke({"query": "x"}, config={"callbacks": [FaremeterCallbackHandler(meter)]})
    (span,) = recorded_spans(meter)
    assert span.cost.total == Decimal("0.5")


def test_priced_tool_inside_langchain_tool_is_charged_once(meter: Meter) -> None:
    @tool
    @meter.priced_tool(price_per_call="0.02")
    def fetch(url: str) -> str:
        """Fetch a page."""
        return "page"

    @tool
    @meter.priced_tool(name="lookup")  # also priced by the catalog as "lookup"
    def lookup2(query: str) -> str:
        """Another lookup."""
        return "x"

    handler = FaremeterCallbackHandler(meter)
    fetch.invoke({"url": "u"}, config={"callbacks": [handler]})
    lookup2.invoke({"query": "q"}, config={"callbacks": [handler]})
    spans = recorded_spans(meter)
    ids = by_id(spans)
    inner = [s for s in spans if s.parent_span_id is not None]
    assert len(inner) == 2
    assert all(ids[s.parent_span_id or ""].cost.total == 0 for s in inner)
    assert sum((s.cost.total or Decimal(0) for s in spans), Decimal(0)) == Decimal("0.021")


def test_unpriced_tool_is_unpriced(meter: Meter) -> None:
    @tool
    def free(query: str) -> str:
        """Nobody priced me."""
        return "x"

    free.invoke({"query": "q"}, config={"callbacks": [FaremeterCallbackHandler(meter)]})
    (span,) = recorded_spans(meter)
    assert span.cost.total is None


def test_retriever_span(meter: Meter) -> None:
    class Docs(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            return [Document(page_content="a"), Document(page_content="b")]

    Docs().invoke("q", config={"callbacks": [FaremeterCallbackHandler(meter)]})
    (span,) = recorded_spans(meter)
    assert span.kind is SpanKind.RETRIEVAL and span.attributes["documents"] == 2


# -- long-lived handler ----------------------------------------------------------------
def test_maps_are_empty_after_a_thousand_runs(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    model = ToolFake(messages=iter([]))
    agent = make_agent(model, [lookup])
    config: Any = {"callbacks": [handler]}
    for i in range(1000):
        if i % 10 == 0:  # some runs fail mid-graph
            model.messages = scripted(ai(U1, MODEL, tool="lookup"), Boom("x"))
            with pytest.raises(Boom):
                agent.invoke(INPUT, config=config)
        else:
            model.messages = scripted(ai(U1, MODEL, tool="lookup"), ai(U1, MODEL, "x"))
            agent.invoke(INPUT, config=config)
    assert handler.open_runs == 0
    assert len([s for s in recorded_spans(meter) if s.kind is SpanKind.AGENT]) == 1000


def test_store_content_off_by_default(meter: Meter) -> None:
    ToolFake(messages=scripted(ai(U1, MODEL, "secret answer"))).invoke(
        "secret prompt", config={"callbacks": [FaremeterCallbackHandler(meter)]}
    )
    (span,) = recorded_spans(meter)
    assert span.content is None


def test_store_content_opt_in() -> None:
    m = make_test_meter(store_content=True)
    ToolFake(messages=scripted(ai(U1, MODEL, "the answer"))).invoke(
        "the prompt", config={"callbacks": [FaremeterCallbackHandler(m)]}
    )
    (span,) = recorded_spans(m)
    assert span.content is not None
    assert "the prompt" in str(span.content["prompts"]) and "the answer" in str(
        span.content["completions"]
    )


def test_budget_denial_is_recorded_as_denied(meter: Meter) -> None:
    from faremeter import BudgetExceeded

    denied = BudgetExceeded("daily budget for u1 reached")
    model = ToolFake(messages=scripted(denied))
    with pytest.raises(BudgetExceeded) as info:
        model.invoke("hi", config={"callbacks": [FaremeterCallbackHandler(meter)]})
    assert info.value is denied
    (span,) = recorded_spans(meter)
    assert (span.status, span.error_class) == (SpanStatus.DENIED, "budget")


def test_langgraph_interrupt_is_not_an_error(meter: Meter) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt
    from typing_extensions import TypedDict

    class State(TypedDict):
        answer: str

    def ask(state: State) -> State:
        return {"answer": str(interrupt("approve?"))}

    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    app = graph.compile(checkpointer=InMemorySaver())
    config: Any = {
        "callbacks": [FaremeterCallbackHandler(meter)],
        "configurable": {"thread_id": "t"},
    }
    app.invoke({"answer": ""}, config=config)
    spans = recorded_spans(meter)
    assert spans and all(s.status is SpanStatus.OK for s in spans)
    assert any(s.attributes.get("interrupted") == "GraphInterrupt" for s in spans)


def test_tool_spans_carry_a_digest_of_their_arguments(meter: Meter) -> None:
    handler = FaremeterCallbackHandler(meter)
    for query in ("same", "same", "other"):
        lookup.invoke({"query": query}, config={"callbacks": [handler]})
    hashes = [s.attributes.get("tool_args_hash") for s in recorded_spans(meter)]
    assert hashes[0] == hashes[1] != hashes[2]
    assert all(isinstance(h, str) and "same" not in h for h in hashes)  # never the arguments
