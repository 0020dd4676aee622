# pyright: basic
"""RoutedLLM served from faremeter's ResponseCache: one cached span, saved exact, no budget."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.tools import FunctionTool

import faremeter
from faremeter import BudgetExceeded, Meter, SpanKind, SpanRecord, SpanStatus, Usage
from faremeter.budgets import Budget
from faremeter.caching import ResponseCache
from faremeter.fallback import RetryPolicy
from faremeter.routing import Router
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_llamaindex import instrument
from faremeter_llamaindex._routed import ROUTED_MODEL_KEY, RoutedLLM
from faremeter_llamaindex.testing import Reply, ScriptedLLM

U1 = Usage(input_tokens=300, output_tokens=40)
TIERS = {"economy": ["gpt-4o-mini"], "premium": ["gpt-4o"]}
NO_RETRY = RetryPolicy(retries={}, jitter_s=0)
MESSAGES = [ChatMessage(role="user", content="what is 2 + 3?")]


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _routed(meter: Meter, cache: ResponseCache | None, *replies: Reply) -> RoutedLLM:
    llms = {
        "gpt-4o-mini": ScriptedLLM(list(replies), model="gpt-4o-mini"),
        "gpt-4o": ScriptedLLM([], model="gpt-4o"),
    }
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    return RoutedLLM(router, llms, meter=meter, retry=NO_RETRY, sleep=lambda s: None, cache=cache)


def _charge(meter: Meter, *usages: Usage) -> Decimal:
    return sum(
        (meter.catalog.cost("gpt-4o-mini", u).total or Decimal(0) for u in usages), Decimal(0)
    )


def _calls(meter: Meter) -> list[SpanRecord]:
    spans = recorded_spans(meter)
    return [s for s in spans if s.kind is SpanKind.LLM and s.status is SpanStatus.OK]


def _hits(meter: Meter) -> list[SpanRecord]:
    return [s for s in recorded_spans(meter) if s.status is SpanStatus.CACHED]


def test_second_identical_chat_is_one_cached_span_saving_the_first_charge() -> None:
    meter = make_test_meter()
    llm = _routed(meter, ResponseCache(meter=meter), Reply(text="5", usage=U1))
    with instrument(meter), meter.trace("job") as t, faremeter.attributes(step="parse"):
        first = llm.chat(MESSAGES, temperature=0)
        second = llm.chat(MESSAGES, temperature=0)
    meter.flush()
    assert isinstance(second, ChatResponse)
    assert second.message.content == first.message.content == "5"  # not the script's "done"
    assert second.additional_kwargs[ROUTED_MODEL_KEY] == "gpt-4o-mini"
    (call,) = _calls(meter)
    assert call.attributes["cache"] == "miss"
    (hit,) = _hits(meter)
    assert hit.kind is SpanKind.LLM and hit.name == "llamaindex.route"
    assert hit.cost.total == Decimal(0)
    assert hit.saved == _charge(meter, U1)
    assert hit.model == call.model == "gpt-4o-mini"
    assert hit.attributes["step"] == "parse" and hit.trace_id == call.trace_id
    assert t.cost == _charge(meter, U1)


def test_ten_concurrent_identical_achats_call_the_model_once() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter, poll_interval=0.002)
    misses = cache.misses
    assert misses is not None

    class SlowLLM(ScriptedLLM):
        """Answers once the other identical requests wait on this one (bounded)."""

        async def achat(self, messages: Any, **kwargs: Any) -> ChatResponse:
            for _ in range(2_000):
                if any(misses.in_flight(k) >= 10 for k in list(misses._flights)):
                    break
                await asyncio.sleep(0.005)
            return await super().achat(messages, **kwargs)

    script = [Reply(text="5", usage=U1), Reply(text="6", usage=U1)]
    slow = SlowLLM(script, model="gpt-4o-mini")  # pyright: ignore[reportCallIssue]
    llms = {"gpt-4o-mini": slow, "gpt-4o": ScriptedLLM([], model="gpt-4o")}
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    llm = RoutedLLM(router, llms, meter=meter, retry=NO_RETRY, sleep=lambda s: None, cache=cache)

    async def main() -> list[str]:
        with faremeter.attributes(step="parse"):
            replies = await asyncio.gather(*(llm.achat(MESSAGES, temperature=0) for _ in range(10)))
        return [str(r.message.content) for r in replies]

    with instrument(meter):
        texts = asyncio.run(main())
    meter.flush()
    assert texts == ["5"] * 10  # a second model call would have answered "6"
    (call,) = _calls(meter)
    hits = _hits(meter)
    assert len(hits) == 9 and all(h.saved == call.cost.total == _charge(meter, U1) for h in hits)


def test_a_sampled_request_is_not_cached() -> None:
    meter = make_test_meter()
    cache = ResponseCache(meter=meter)
    llm = _routed(meter, cache, Reply(text="a", usage=U1), Reply(text="b", usage=U1))
    with instrument(meter), meter.trace("job") as t, faremeter.attributes(step="parse"):
        texts = [llm.chat(MESSAGES, temperature=0.7).message.content for _ in range(2)]
    meter.flush()
    assert texts == ["a", "b"]
    assert len(_calls(meter)) == 2 and not _hits(meter)
    assert t.cost == _charge(meter, U1, U1)


def test_a_hit_reserves_no_budget() -> None:
    # $0.0001 holds one call (~$0.00006 reserved, $0.000069 charged), not a
    # second reservation on top of the first charge.
    def run(cache: ResponseCache | None) -> Meter:
        meter = make_test_meter(budgets=[Budget("task", limit="0.0001", window="trace")])
        llm = _routed(meter, cache, Reply(text="5", usage=U1), Reply(text="5", usage=U1))
        with instrument(meter), meter.trace("job"), faremeter.attributes(step="parse"):
            llm.chat(MESSAGES, temperature=0, max_tokens=100)
            llm.chat(MESSAGES, temperature=0, max_tokens=100)
        meter.flush()
        return meter

    with pytest.raises(BudgetExceeded):
        run(None)  # without the cache the second call is refused
    meter = run(ResponseCache())
    assert len(_calls(meter)) == 1 and len(_hits(meter)) == 1
    assert not [s for s in recorded_spans(meter) if s.status is SpanStatus.DENIED]


def test_async_chat_and_completion() -> None:
    meter = make_test_meter()
    llm = _routed(meter, ResponseCache(meter=meter), Reply(text="5", usage=U1))

    async def main() -> tuple[ChatResponse, CompletionResponse, CompletionResponse]:
        await llm.achat(MESSAGES, temperature=0)
        chat = await llm.achat(MESSAGES, temperature=0)
        done = await llm.acomplete("2 + 3 =", temperature=0)
        return chat, done, await llm.acomplete("2 + 3 =", temperature=0)

    with instrument(meter), meter.trace("job"), faremeter.attributes(step="parse"):
        chat, done, again = asyncio.run(main())
    meter.flush()
    assert chat.message.content == "5"
    assert isinstance(again, CompletionResponse) and again.text == done.text
    assert len(_calls(meter)) == 2  # one chat, one completion
    assert len(_hits(meter)) == 2
    assert _hits(meter)[0].saved == _charge(meter, U1)


def test_streams_are_stored_when_complete_and_replayed_as_one_chunk() -> None:
    meter = make_test_meter()
    llm = _routed(meter, ResponseCache(meter=meter), Reply(text="hello world", usage=U1))

    async def astream() -> list[ChatResponse]:
        return [c async for c in await llm.astream_chat(MESSAGES, temperature=0)]

    with instrument(meter), meter.trace("job") as t, faremeter.attributes(step="parse"):
        streamed = list(llm.stream_chat(MESSAGES, temperature=0))
        replayed = list(llm.stream_chat(MESSAGES, temperature=0))
        areplayed = asyncio.run(astream())
        plain = llm.chat(MESSAGES, temperature=0)
    meter.flush()
    assert len(streamed) == 2 and streamed[-1].message.content == "hello world"
    for chunks in (replayed, areplayed):
        (chunk,) = chunks
        assert chunk.message.content == chunk.delta == "hello world"
    assert plain.message.content == "hello world"
    assert len(_calls(meter)) == 1 and len(_hits(meter)) == 3
    assert all(h.saved == _charge(meter, U1) for h in _hits(meter))
    assert t.cost == _charge(meter, U1)


def test_an_abandoned_stream_is_not_stored() -> None:
    meter = make_test_meter()
    llm = _routed(meter, ResponseCache(meter=meter), Reply(text="hello world", usage=U1))
    with instrument(meter), meter.trace("job"), faremeter.attributes(step="parse"):
        stream = llm.stream_chat(MESSAGES, temperature=0)
        next(stream)
        stream.close()
        llm.chat(MESSAGES, temperature=0)
    meter.flush()
    assert not _hits(meter)


def test_a_function_agent_run_replays_from_the_cache() -> None:
    # Every LLM call of the second run hits: the revived tool-call reply keeps
    # its call id, so the follow-up request is identical too. The tool runs.
    meter = make_test_meter()
    cache = ResponseCache(meter=meter, deterministic_only=False)
    ran: list[int] = []

    def tracked_add(a: int, b: int) -> int:
        """Add two numbers."""
        ran.append(a + b)
        return a + b

    def run() -> str:
        llm = _routed(
            meter,
            cache,
            Reply(tool_calls=[("tracked_add", {"a": 2, "b": 3})], usage=U1),
            Reply(text="5", usage=U1),
        )
        agent = FunctionAgent(tools=[FunctionTool.from_defaults(tracked_add)], llm=llm)

        async def main() -> str:
            return str(await agent.run(user_msg="what is 2 + 3?"))

        return asyncio.run(main())

    with instrument(meter), meter.trace("job") as t, faremeter.attributes(step="parse"):
        assert run() == "5"
        assert run() == "5"
    meter.flush()
    assert ran == [5, 5]
    assert len(_calls(meter)) == 2 and len(_hits(meter)) == 2
    assert sum((h.saved or Decimal(0) for h in _hits(meter)), Decimal(0)) == _charge(meter, U1, U1)
    assert t.cost == _charge(meter, U1, U1)


def test_a_cached_value_survives_a_new_process_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'responses.db'}"

    def session() -> tuple[Meter, ChatResponse]:
        meter = make_test_meter()
        cache = ResponseCache(backend=url, meter=meter)
        llm = _routed(meter, cache, Reply(text="5", usage=U1))
        try:
            with instrument(meter), meter.trace("job"), faremeter.attributes(step="parse"):
                reply = llm.chat(MESSAGES, temperature=0)
            meter.flush()
        finally:
            cache.backend.close()
        return meter, reply

    first, _ = session()
    assert len(_calls(first)) == 1
    again, reply = session()  # new meter, cache, store connection, LLMs and router
    assert not _calls(again)
    (hit,) = _hits(again)
    assert hit.saved == _charge(again, U1)
    assert isinstance(reply, ChatResponse) and reply.message.content == "5"


def test_tools_are_part_of_the_key() -> None:
    meter = make_test_meter()
    llm = _routed(
        meter, ResponseCache(meter=meter), Reply(text="a", usage=U1), Reply(text="b", usage=U1)
    )

    def sub(a: int, b: int) -> int:
        """Subtract."""
        return a - b

    with instrument(meter), meter.trace("job"), faremeter.attributes(step="parse"):
        one = llm.chat_with_tools([FunctionTool.from_defaults(add)], chat_history=MESSAGES)
        other = llm.chat_with_tools([FunctionTool.from_defaults(sub)], chat_history=MESSAGES)
        again = llm.chat_with_tools([FunctionTool.from_defaults(add)], chat_history=MESSAGES)
    assert (one.message.content, other.message.content) == ("a", "b")
    # ScriptedLLM has no temperature: without temperature=0 nothing is cached.
    assert again.message.content == "done"

    def run(cache: ResponseCache) -> list[Any]:
        llm = _routed(meter, cache, Reply(text="a", usage=U1), Reply(text="b", usage=U1))
        tools = {"add": FunctionTool.from_defaults(add), "sub": FunctionTool.from_defaults(sub)}
        with instrument(meter), meter.trace("job"), faremeter.attributes(step="parse"):
            return [
                llm.chat_with_tools(
                    [tools[n]], chat_history=MESSAGES, temperature=0
                ).message.content
                for n in ("add", "sub", "add", "sub")
            ]

    assert run(ResponseCache(meter=meter)) == ["a", "b", "a", "b"]
