# pyright: basic
"""RoutedChatModel with faremeter's ResponseCache: one cached span, exact saved, no budget."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from pydantic import BaseModel

from faremeter import BudgetExceeded, Meter, SpanKind, SpanRecord, SpanStatus, Usage
from faremeter.budgets import Budget
from faremeter.caching import ResponseCache
from faremeter.fallback import RetryPolicy
from faremeter.routing import Router
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_langchain import FaremeterCallbackHandler
from faremeter_langchain._routed import ROUTE_SPAN_NAME, RoutedChatModel

U1 = Usage(input_tokens=300, output_tokens=40)
TIERS = {"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]}
NO_WAIT: dict[str, Any] = {"retry": RetryPolicy(retries={}, jitter_s=0), "sleep": lambda s: None}
PROMPT = [HumanMessage("what is 2 + 3?")]


def replies(model: str) -> Iterator[AIMessage]:
    """Numbered replies reporting U1: a second model call would answer differently."""
    for n in itertools.count(1):
        yield AIMessage(
            content=f"reply {n} from {model}",
            usage_metadata={
                "input_tokens": U1.input_tokens,
                "output_tokens": U1.output_tokens,
                "total_tokens": U1.total_tokens,
            },
            response_metadata={"model_name": model},
        )


class MeteredFake(GenericFakeChatModel):
    """LangChain's generic fake, ending its streams with usage and model as providers do."""

    model: str

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        usage: Any = {
            "input_tokens": U1.input_tokens,
            "output_tokens": U1.output_tokens,
            "total_tokens": U1.total_tokens,
        }
        final = AIMessageChunk(
            content="", usage_metadata=usage, response_metadata={"model_name": self.model}
        )
        yield ChatGenerationChunk(message=final)


def routed(cache: ResponseCache | None, **bound: Any) -> RoutedChatModel:
    models: dict[str, Any] = {
        m: MeteredFake(messages=replies(m), model=m) for m in ("gpt-4o-mini", "gpt-4o")
    }
    if bound:
        models = {name: model.bind(**bound) for name, model in models.items()}
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    return RoutedChatModel(router=router, models=models, chain_options=NO_WAIT, cache=cache)


def config(meter: Meter) -> Any:
    return {"callbacks": [FaremeterCallbackHandler(meter)], "metadata": {"step": "parse"}}


def charge(meter: Meter, *usages: Usage) -> Decimal:
    costs = (meter.catalog.cost("gpt-4o-mini", u).total or Decimal(0) for u in usages)
    return sum(costs, Decimal(0))


def calls(meter: Meter) -> list[SpanRecord]:
    spans = recorded_spans(meter)
    return [s for s in spans if s.kind is SpanKind.LLM and s.status is SpanStatus.OK]


def hits(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.status is SpanStatus.CACHED]


def test_cache_argument_is_faremeters_and_turns_langchains_off() -> None:
    cache = ResponseCache()
    model = routed(cache)
    assert model.response_cache is cache
    assert model.cache is False  # LangChain's own cache would store the replies twice
    assert routed(None).cache is None


def test_second_identical_invoke_is_one_cached_span_saving_the_first_charge() -> None:
    meter = make_test_meter()
    model = routed(ResponseCache(meter=meter))
    with meter.trace("job") as t:
        first = model.invoke(PROMPT, config=config(meter), temperature=0)
        second = model.invoke(PROMPT, config=config(meter), temperature=0)
    meter.flush()
    assert isinstance(second, AIMessage)
    assert second.content == first.content == "reply 1 from gpt-4o-mini"
    assert second.id and second.id != first.id  # this run's id, as LangChain gives one
    (call,) = calls(meter)
    assert call.attributes["cache"] == "miss"
    (hit,) = hits(meter)
    assert hit.kind is SpanKind.LLM and hit.name == ROUTE_SPAN_NAME
    assert hit.model == call.model == "gpt-4o-mini"
    assert hit.cost.total == Decimal(0)
    assert hit.saved == call.cost.total == charge(meter, U1)
    assert hit.attributes["step"] == "parse" and hit.trace_id == call.trace_id
    assert t.cost == charge(meter, U1)


def test_ten_concurrent_identical_invokes_call_the_model_once() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    meter = make_test_meter()
    cache = ResponseCache(meter=meter, poll_interval=0.005)
    misses = cache.misses
    assert misses is not None

    class SlowFake(MeteredFake):
        """Answers once the other nine invokes wait on this one (bounded)."""

        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            for _ in range(4_000):
                if any(misses.in_flight(k) >= 10 for k in list(misses._flights)):
                    break
                time.sleep(0.005)
            return super()._generate(*args, **kwargs)

    models: dict[str, Any] = {m: SlowFake(messages=replies(m), model=m) for m in TIERS_MODELS}
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    model = RoutedChatModel(router=router, models=models, chain_options=NO_WAIT, cache=cache)
    lock = threading.Lock()

    def invoke(_: int) -> Any:
        with lock:
            cfg = config(meter)
        return model.invoke(PROMPT, config=cfg, temperature=0).content

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(invoke, range(10)))
    meter.flush()
    assert answers == ["reply 1 from gpt-4o-mini"] * 10  # a second model call says "reply 2"
    (call,) = calls(meter)
    assert len(hits(meter)) == 9
    assert all(h.saved == call.cost.total == charge(meter, U1) for h in hits(meter))


TIERS_MODELS = ("gpt-4o-mini", "gpt-4o")


def test_a_sampled_request_is_not_cached() -> None:
    meter = make_test_meter()
    model = routed(ResponseCache(meter=meter))
    with meter.trace("job") as t:
        texts = [
            model.invoke(PROMPT, config=config(meter), temperature=0.7).content,
            model.invoke(PROMPT, config=config(meter), temperature=0.7).content,
            model.invoke(PROMPT, config=config(meter)).content,  # the provider's default samples
        ]
    meter.flush()
    assert texts == [f"reply {n} from gpt-4o-mini" for n in (1, 2, 3)]
    assert len(calls(meter)) == 3 and not hits(meter)
    assert t.cost == charge(meter, U1, U1, U1)


def test_models_configured_with_temperature_zero_are_deterministic() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter)
    models = {
        m: MeteredFake(messages=replies(m), model=m).bind(temperature=0)
        for m in ("gpt-4o-mini", "gpt-4o")
    }
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    model = RoutedChatModel(router=router, models=models, chain_options=NO_WAIT, cache=cache)
    with meter.trace("job"):
        texts = [model.invoke(PROMPT, config=config(meter)).content for _ in range(2)]
    meter.flush()
    assert texts == ["reply 1 from gpt-4o-mini"] * 2
    assert len(hits(meter)) == 1


def test_a_hit_reserves_no_budget() -> None:
    # $0.0001 holds one call (~$0.00006 reserved, $0.000069 charged), not a
    # second reservation on top of the first charge.
    def run(cache: ResponseCache | None) -> Meter:
        meter = make_test_meter(budgets=[Budget("task", limit="0.0001", window="trace")])
        model = routed(cache)
        with meter.trace("job"):
            for _ in range(2):
                model.invoke(PROMPT, config=config(meter), temperature=0, max_tokens=100)
        meter.flush()
        return meter

    with pytest.raises(BudgetExceeded):
        run(None)  # without the cache the second call is refused
    meter = run(ResponseCache())
    assert len(calls(meter)) == 1 and len(hits(meter)) == 1
    assert not [s for s in recorded_spans(meter) if s.status is SpanStatus.DENIED]


def test_async_invoke() -> None:
    meter = make_test_meter()
    model = routed(ResponseCache(meter=meter))

    async def main() -> list[Any]:
        return [await model.ainvoke(PROMPT, config=config(meter), temperature=0) for _ in range(2)]

    with meter.trace("job") as t:
        first, second = asyncio.run(main())
    meter.flush()
    assert isinstance(second, AIMessage) and second.content == first.content
    assert len(calls(meter)) == 1
    (hit,) = hits(meter)
    assert hit.saved == charge(meter, U1)
    assert t.cost == charge(meter, U1)


def test_streams_are_stored_when_complete_and_replayed_as_one_chunk() -> None:
    meter = make_test_meter()
    model = routed(ResponseCache(meter=meter))

    async def astream() -> list[Any]:
        return [c async for c in model.astream(PROMPT, config=config(meter), temperature=0)]

    with meter.trace("job") as t:
        streamed = list(model.stream(PROMPT, config=config(meter), temperature=0))
        replayed = list(model.stream(PROMPT, config=config(meter), temperature=0))
        areplayed = asyncio.run(astream())
        plain = model.invoke(PROMPT, config=config(meter), temperature=0)
    meter.flush()
    assert len(streamed) > 1
    assert "".join(str(c.content) for c in streamed) == "reply 1 from gpt-4o-mini"
    for chunks in (replayed, areplayed):
        (chunk,) = chunks
        assert isinstance(chunk, AIMessageChunk) and chunk.content == "reply 1 from gpt-4o-mini"
    assert plain.content == "reply 1 from gpt-4o-mini"
    (call,) = calls(meter)
    assert call.cost.total == charge(meter, U1)  # the usage on the stream's last chunk
    assert len(hits(meter)) == 3
    assert all(h.saved == charge(meter, U1) for h in hits(meter))
    assert t.cost == charge(meter, U1)


def test_an_abandoned_stream_is_not_stored() -> None:
    meter = make_test_meter()
    model = routed(ResponseCache(meter=meter))
    with meter.trace("job"):
        stream: Any = model.stream(PROMPT, config=config(meter), temperature=0)
        next(stream)
        stream.close()  # the caller stopped reading
        model.invoke(PROMPT, config=config(meter), temperature=0)
    meter.flush()
    assert not hits(meter)


def test_a_cached_value_survives_a_new_process_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'responses.db'}"

    def session() -> tuple[Meter, Any]:
        meter = make_test_meter()
        cache = ResponseCache(backend=url, meter=meter)
        try:
            with meter.trace("job"):
                reply = routed(cache).invoke(PROMPT, config=config(meter), temperature=0)
            meter.flush()
        finally:
            cache.backend.close()
        return meter, reply

    first, _ = session()
    assert len(calls(first)) == 1
    again, reply = session()  # new meter, cache, store connection, models and router
    assert not calls(again)
    (hit,) = hits(again)
    assert hit.saved == charge(again, U1)
    assert isinstance(reply, AIMessage) and reply.content == "reply 1 from gpt-4o-mini"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 40


def test_differently_configured_models_do_not_share_answers() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter)
    plain, careful = routed(cache), routed(cache, top_p=0.5)  # bound to every model
    with meter.trace("job"):
        a = plain.invoke(PROMPT, config=config(meter), temperature=0)
        b = careful.invoke(PROMPT, config=config(meter), temperature=0)
        c = plain.invoke(PROMPT, config=config(meter), temperature=0)
    meter.flush()
    assert a.content == b.content == c.content  # each router's own first reply
    assert len(calls(meter)) == 2 and len(hits(meter)) == 1


def test_a_redis_outage_is_a_miss() -> None:
    meter = make_test_meter()
    cache = ResponseCache(backend="redis://127.0.0.1:1/0", meter=meter, outage_cooldown=0)
    model = routed(cache)
    with meter.trace("job") as t:
        texts = [model.invoke(PROMPT, config=config(meter), temperature=0).content for _ in "ab"]
    meter.flush()
    assert texts == ["reply 1 from gpt-4o-mini", "reply 2 from gpt-4o-mini"]
    assert cache.store_failures >= 3
    assert t.cost == charge(meter, U1, U1)


def test_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "caching_routed.py"
    result = runpy.run_path(str(example))["main"]()
    out = capsys.readouterr().out
    assert out.count("cached $0  saved $0.00017100") == 1
    assert result["answers"] == ["answer #1 from gpt-4o-mini"] * 2
    assert result["cost"] == Decimal("0.000171")  # 900 in + 60 out on gpt-4o-mini, once


# ------------------------------------------------------------- structured output


class Answer(BaseModel):
    value: int


def answers(model: str) -> Iterator[AIMessage]:
    """Numbered tool-call replies: a second model call would answer a different value."""
    for n in itertools.count(1):
        yield AIMessage(
            content="",
            tool_calls=[{"name": "Answer", "args": {"value": n}, "id": f"call-{n}"}],
            usage_metadata={
                "input_tokens": U1.input_tokens,
                "output_tokens": U1.output_tokens,
                "total_tokens": U1.total_tokens,
            },
            response_metadata={"model_name": model},
        )


class ToolFake(MeteredFake):
    """Configured with temperature 0 (deterministic) and able to bind tools."""

    temperature: float = 0.0

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)


def structured_model(cache: ResponseCache) -> RoutedChatModel:
    models: dict[str, Any] = {
        m: ToolFake(messages=answers(m), model=m) for m in ("gpt-4o-mini", "gpt-4o")
    }
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    return RoutedChatModel(router=router, models=models, chain_options=NO_WAIT, cache=cache)


def test_structured_output_is_served_from_the_cache_as_the_parsed_object() -> None:
    meter = make_test_meter()
    structured = structured_model(ResponseCache(meter=meter)).with_structured_output(Answer)
    with meter.trace("job") as t:
        first = structured.invoke(PROMPT, config=config(meter))
        second = structured.invoke(PROMPT, config=config(meter))
    meter.flush()
    assert first == second == Answer(value=1)  # a second model call would say 2
    assert isinstance(second, Answer)
    (call,) = calls(meter)
    (hit,) = hits(meter)
    assert hit.saved == call.cost.total == charge(meter, U1)
    assert t.cost == charge(meter, U1)


def test_structured_output_with_raw_revives_the_message_too() -> None:
    meter = make_test_meter()
    model = structured_model(ResponseCache(meter=meter))
    structured = model.with_structured_output(Answer, include_raw=True)
    first = structured.invoke(PROMPT, config=config(meter))
    second = structured.invoke(PROMPT, config=config(meter))
    meter.flush()
    assert second["parsed"] == first["parsed"] == Answer(value=1)
    assert isinstance(second["raw"], AIMessage) and second["parsing_error"] is None
    assert second["raw"].tool_calls[0]["args"] == {"value": 1}
    assert len(calls(meter)) == 1 and len(hits(meter)) == 1


def test_another_schema_does_not_share_the_answer() -> None:
    class Other(BaseModel):  # the same tool name, one more field: another schema
        value: int
        note: str | None = None

    Other.__name__ = "Answer"
    meter = make_test_meter()
    model = structured_model(ResponseCache(meter=meter))
    first = model.with_structured_output(Answer).invoke(PROMPT, config=config(meter))
    second = model.with_structured_output(Other).invoke(PROMPT, config=config(meter))
    meter.flush()
    assert first == Answer(value=1) and second == Other(value=2)
    assert len(calls(meter)) == 2 and not hits(meter)


async def test_structured_output_async_is_cached() -> None:
    meter = make_test_meter()
    structured = structured_model(ResponseCache(meter=meter)).with_structured_output(Answer)
    first = await structured.ainvoke(PROMPT, config=config(meter))
    second = await structured.ainvoke(PROMPT, config=config(meter))
    meter.flush()
    assert first == second == Answer(value=1)
    assert len(calls(meter)) == 1 and len(hits(meter)) == 1


def test_structured_output_in_a_graph_node_nests_node_route_attempt_call() -> None:
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    class State(TypedDict):
        value: int

    meter = make_test_meter()
    structured = structured_model(ResponseCache(meter=meter)).with_structured_output(Answer)

    def extract(state: State) -> State:
        answer = structured.invoke(PROMPT)
        assert isinstance(answer, Answer)
        return {"value": answer.value}

    graph = StateGraph(State)
    graph.add_node("extract", extract)
    graph.add_edge(START, "extract")
    graph.add_edge("extract", END)
    agent = graph.compile()
    with meter.trace("job"):
        for _ in range(2):
            assert agent.invoke({"value": 0}, config=config(meter)) == {"value": 1}
    meter.flush()
    by_id = {s.span_id: s for s in recorded_spans(meter)}
    (call,) = calls(meter)
    attempt = by_id[call.parent_span_id or ""]
    route = by_id[attempt.parent_span_id or ""]
    node = by_id[route.parent_span_id or ""]
    assert attempt.name == "attempt:gpt-4o-mini" and route.name == ROUTE_SPAN_NAME
    assert node.kind is SpanKind.CHAIN and node.name == "extract"
    (hit,) = hits(meter)  # the second run's node is answered from the cache
    assert hit.saved == call.cost.total and hit.attributes["step"] == "extract"
    assert by_id[hit.parent_span_id or ""].name == "extract"
