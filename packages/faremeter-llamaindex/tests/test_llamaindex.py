# pyright: basic
"""The LlamaIndex adapter's own guarantees, beyond the shared contract."""

from __future__ import annotations

import asyncio
import runpy
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, StartEvent, StopEvent, Workflow, step
from llama_index_instrumentation import get_dispatcher

import faremeter
import faremeter.estimate
import faremeter_llamaindex._recorder as recorder_module
from faremeter import Meter, SpanKind, SpanRecord, SpanStatus, Usage
from faremeter.calls import CallTracker
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_llamaindex import instrument
from faremeter_llamaindex.testing import Reply, ScriptedLLM

MODEL = "gpt-4o-mini"
U1 = Usage(input_tokens=1200, output_tokens=150)
U2 = Usage(input_tokens=1400, output_tokens=90, cache_read_tokens=1024)
U3 = Usage(input_tokens=1700, output_tokens=300, reasoning_tokens=120)
HERE = Path(__file__).resolve()


def lookup(query: str = "") -> str:
    """Look something up."""
    return f"facts about {query}"


def add(a: int = 1, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


def two_tool_agent(streaming: bool = True, model: str = MODEL) -> FunctionAgent:
    llm = ScriptedLLM(
        [
            Reply(tool_calls=[("lookup", {"query": "x"})], usage=U1),
            Reply(tool_calls=[("add", {"a": 2, "b": 3})], usage=U2),
            Reply(text="the answer is 5", usage=U3),
        ],
        model=model,
    )
    tools = [FunctionTool.from_defaults(lookup), FunctionTool.from_defaults(add)]
    return FunctionAgent(tools=tools, llm=llm, streaming=streaming)


def price(meter: Meter, *usages: Usage) -> Decimal:
    return sum((meter.catalog.cost(MODEL, u).total or Decimal(0) for u in usages), Decimal(0))


def by_kind(spans: Sequence[SpanRecord], kind: SpanKind) -> list[SpanRecord]:
    return [s for s in spans if s.kind is kind]


def total(spans: Sequence[SpanRecord]) -> Decimal:
    return sum((s.cost.total or Decimal(0) for s in spans), Decimal(0))


def arun(coro_fn: Any, *args: Any) -> Any:
    return asyncio.run(coro_fn(*args))


# -- agents -------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False], ids=["astream_chat", "achat"])
def test_function_agent_two_tool_calls(tmeter: Meter, streaming: bool) -> None:
    async def main() -> str:
        return str(await two_tool_agent(streaming).run(user_msg="compute"))

    with instrument(tmeter):
        assert arun(main) == "the answer is 5"
    spans = recorded_spans(tmeter)
    (agent,) = by_kind(spans, SpanKind.AGENT)
    llm, tools = by_kind(spans, SpanKind.LLM), by_kind(spans, SpanKind.TOOL)
    assert [t.name for t in tools] == ["lookup", "add"]
    assert len(llm) == 3, "one span per model call: achat->chat folded, streams not doubled"
    assert all(s.parent_span_id == agent.span_id for s in [*llm, *tools])
    assert {s.trace_id for s in spans} == {agent.trace_id}
    assert [s.usage for s in llm] == [U1, U2, U3]
    assert all(s.model == MODEL for s in llm)
    assert [s.attributes.get("step") for s in llm] == ["run_agent_step"] * 3
    assert [s.attributes.get("step") for s in tools] == ["call_tool"] * 2
    assert total(spans) == price(tmeter, U1, U2, U3) + Decimal("0.003")


def test_streaming_run_prices_like_the_awaited_run(tmeter: Meter) -> None:
    async def streamed() -> int:
        handler = two_tool_agent(streaming=True).run(user_msg="compute")
        seen = 0
        async for _ in handler.stream_events():
            seen += 1
        await handler
        return seen

    async def awaited() -> None:
        await two_tool_agent(streaming=False).run(user_msg="compute")

    with instrument(tmeter):
        assert arun(streamed) > 0
        arun(awaited)
    spans = recorded_spans(tmeter)
    traces: dict[str, list[SpanRecord]] = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    assert len(traces) == 2
    a, b = traces.values()
    assert total(a) == total(b) == price(tmeter, U1, U2, U3) + Decimal("0.003")
    assert [s.usage for s in by_kind(a, SpanKind.LLM)] == [
        s.usage for s in by_kind(b, SpanKind.LLM)
    ]


def test_twenty_concurrent_runs_do_not_mix(tmeter: Meter) -> None:
    async def one(i: int) -> None:
        with faremeter.attributes(user_id=f"u{i}"):
            await two_tool_agent(streaming=i % 2 == 0).run(user_msg=f"run {i}")

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(20)))

    with instrument(tmeter) as handle:
        arun(main)
        assert handle.recorder.open_calls == 0
    traces: dict[str, list[SpanRecord]] = {}
    for s in recorded_spans(tmeter):
        traces.setdefault(s.trace_id, []).append(s)
    assert len(traces) == 20
    users = set()
    for spans in traces.values():
        owners = {s.attributes.get("user_id") for s in spans}
        assert len(owners) == 1
        users |= owners
        assert len([s for s in spans if s.parent_span_id is None]) == 1
        assert total(spans) == price(tmeter, U1, U2, U3) + Decimal("0.003")
    assert users == {f"u{i}" for i in range(20)}


def test_tool_error_is_an_error_span_and_the_run_goes_on(tmeter: Meter) -> None:
    def broken(query: str = "") -> str:
        """Always fails."""
        raise ValueError("backend down")

    llm = ScriptedLLM([Reply(tool_calls=[("broken", {})], usage=U1), Reply(text="sorry", usage=U2)])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(broken)], llm=llm)

    async def main() -> None:
        await agent.run(user_msg="x")

    with instrument(tmeter):
        arun(main)
    (tool,) = by_kind(recorded_spans(tmeter), SpanKind.TOOL)
    assert tool.status is SpanStatus.ERROR and "backend down" in (tool.error or "")
    assert tool.cost.total in (None, Decimal(0))


# -- LLM calls ------------------------------------------------------------------------------


def test_chat_through_complete_is_priced_once_unlike_token_counting_handler(
    tmeter: Meter,
) -> None:
    counter = TokenCountingHandler()
    llm = MockLLM(callback_manager=CallbackManager([counter]))
    with instrument(tmeter):
        llm.chat([ChatMessage(role="user", content="hello there, how are you today?")])
    assert len(counter.llm_token_counts) == 2, "TokenCountingHandler counts chat and complete"
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.name == "MockLLM.chat"
    assert span.usage is not None and span.usage.source == "estimated"
    assert span.usage.input_tokens > 0
    assert span.usage.input_tokens < counter.prompt_llm_token_count


class GeminiishLLM(CustomLLM):
    """A completion-only LLM (its chat is ``completion_to_chat``) reporting no usage."""

    model: str = "gpt-4o"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="a fine answer")

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text="a fine", delta="a fine")
            yield CompletionResponse(text="a fine answer", delta=" answer")

        return gen()


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5"])
def test_missing_usage_is_estimated_with_the_models_tokenizer(
    tmeter: Meter, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    real = faremeter.estimate.estimate_usage

    def spy(m: str | None, prompt: Any, completion: Any) -> Usage:
        seen.append(m)
        return real(m, prompt, completion)

    monkeypatch.setattr(faremeter.estimate, "estimate_usage", spy)  # the core estimates
    with instrument(tmeter):
        GeminiishLLM(model=model).chat([ChatMessage(role="user", content="hi")])
        "".join(r.delta or "" for r in GeminiishLLM(model=model).stream_chat([]))
    assert seen == [model, model]
    for span in by_kind(recorded_spans(tmeter), SpanKind.LLM):
        assert span.usage is not None and span.usage.estimated and span.usage.output_tokens > 0
        assert span.model == model
        assert span.cost.total is not None and span.cost.total > 0


def test_openai_family_estimate_uses_tiktoken_bundled_with_llamaindex(tmeter: Meter) -> None:
    text = "Σύντομη ερώτηση: 東京の天気は; résumé naïve"
    llm = ScriptedLLM([Reply(text=text)], model="gpt-4o")  # reports no usage
    with instrument(tmeter):
        llm.chat([ChatMessage(role="user", content=text)])
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.usage is not None and span.usage.source == "estimated"
    tiktoken = pytest.importorskip("tiktoken")
    try:
        enc = tiktoken.get_encoding("o200k_base")
    except Exception:
        pytest.skip("o200k_base not loadable")
    assert span.usage.output_tokens == len(enc.encode(text))


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (  # Anthropic: input excludes cache reads and writes
            {
                "input_tokens": 100,
                "output_tokens": 20,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 50,
            },
            Usage(
                input_tokens=1150, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=50
            ),
        ),
        (  # Gemini
            {
                "promptTokenCount": 300,
                "candidatesTokenCount": 40,
                "thoughtsTokenCount": 60,
                "cachedContentTokenCount": 100,
            },
            Usage(input_tokens=300, output_tokens=100, cache_read_tokens=100, reasoning_tokens=60),
        ),
        (  # OpenAI with details
            {
                "prompt_tokens": 500,
                "completion_tokens": 80,
                "prompt_tokens_details": {"cached_tokens": 256},
                "completion_tokens_details": {"reasoning_tokens": 30},
            },
            Usage(input_tokens=500, output_tokens=80, cache_read_tokens=256, reasoning_tokens=30),
        ),
    ],
    ids=["anthropic", "gemini", "openai"],
)
def test_raw_usage_shapes(tmeter: Meter, usage: dict[str, Any], expected: Usage) -> None:
    with instrument(tmeter):
        ScriptedLLM([Reply(text="ok", usage=usage)]).chat([ChatMessage(role="user", content="q")])
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.usage == expected


def test_usage_in_additional_kwargs(tmeter: Meter) -> None:
    class KwargsLLM(ScriptedLLM):
        @llm_chat_callback()
        def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            return ChatResponse(
                message=ChatMessage(role="assistant", content="ok"),
                additional_kwargs={"prompt_tokens": 70, "completion_tokens": 7, "total_tokens": 77},
            )

    with instrument(tmeter):
        KwargsLLM().chat([ChatMessage(role="user", content="q")])
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.usage == Usage(input_tokens=70, output_tokens=7)


def test_the_response_model_wins_over_the_configured_alias(tmeter: Meter) -> None:
    reply = Reply(text="ok", usage=U1, extra={"model": "gpt-4o-mini-2024-07-18"})
    with instrument(tmeter):
        ScriptedLLM([reply], model="my-alias").chat([ChatMessage(role="user", content="q")])
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.model == "gpt-4o-mini-2024-07-18"


class WrapperLLM(CustomLLM):
    """An LLM delegating to another instance (router/fallback style)."""

    inner: Any = None

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="router")

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.inner.chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


def test_wrapper_llm_around_another_llm_is_not_charged_twice(tmeter: Meter) -> None:
    wrapper = WrapperLLM(inner=ScriptedLLM([Reply(text="ok", usage=U1)]))
    with instrument(tmeter):
        wrapper.chat([ChatMessage(role="user", content="q")])
    spans = recorded_spans(tmeter)
    outer, inner = by_kind(spans, SpanKind.LLM)
    assert inner.parent_span_id == outer.span_id
    assert inner.usage == U1 and outer.usage is None
    assert total(spans) == price(tmeter, U1)


def test_llm_error_propagates_unchanged(tmeter: Meter) -> None:
    boom = KeyError("nope")
    llm = ScriptedLLM([Reply(error=boom)])
    with instrument(tmeter), pytest.raises(KeyError) as info:
        llm.chat([ChatMessage(role="user", content="q")])
    assert info.value is boom
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.status is SpanStatus.ERROR and span.usage is None


def test_stream_error_mid_way_is_an_error_span(tmeter: Meter) -> None:
    llm = ScriptedLLM([Reply(error=RuntimeError("cut"))])
    with instrument(tmeter) as handle:
        gen = llm.stream_chat([ChatMessage(role="user", content="q")])
        with pytest.raises(RuntimeError, match="cut"):
            list(gen)
        assert handle.recorder.open_calls == 0
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.status is SpanStatus.ERROR


# -- streaming bookkeeping ------------------------------------------------------------------------


def test_streamed_usage_lands_on_the_span_after_it_exited(tmeter: Meter) -> None:
    llm = ScriptedLLM([Reply(text="streamed answer", usage=U1)])
    with instrument(tmeter) as handle:
        gen = llm.stream_chat([ChatMessage(role="user", content="q")])
        assert handle.tracker.deferred(next(iter(handle.recorder.nodes))), "waits for its end"
        assert recorded_spans(tmeter) == []
        list(gen)
        assert handle.recorder.open_calls == 0
    (span,) = recorded_spans(tmeter)
    assert span.usage == U1 and span.cost.total == price(tmeter, U1)


def test_bookkeeping_does_not_grow(tmeter: Meter) -> None:
    async def main() -> None:
        for _ in range(10):
            handler = two_tool_agent(streaming=True).run(user_msg="go")
            async for _ in handler.stream_events():
                pass
            await handler

    with instrument(tmeter) as handle:
        arun(main)
        for _ in range(50):
            llm = ScriptedLLM([Reply(text="x", usage=U1)])
            list(llm.stream_chat([ChatMessage(role="user", content="q")]))
        assert handle.recorder.open_calls == 0


def test_abandoned_streams_are_bounded_and_recorded(tmeter: Meter) -> None:
    now = [0.0]
    with instrument(tmeter) as handle:
        handle.tracker.monotonic = lambda: now[0]  # the sweep's clock, injected
        handle.tracker.max_open = 5
        gens = []
        for _ in range(20):  # consumers that never drain their streams
            llm = ScriptedLLM([Reply(text="never read", usage=U1)], model=MODEL)
            gens.append(llm.stream_chat([ChatMessage(role="user", content="question")]))
        assert handle.tracker.open_calls <= 5
        assert len(handle.recorder.nodes) <= 5
        now[0] += handle.tracker.stream_ttl_s + 1
        assert handle.recorder.sweep() > 0
        assert handle.recorder.open_calls == 0
    spans = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert len(spans) == 20
    assert all(s.attributes.get("abandoned") is True for s in spans)
    assert all(s.cost.total is None for s in spans), "nothing seen: unpriced, never $0"


def test_a_stream_abandoned_midway_is_charged_for_what_it_showed(tmeter: Meter) -> None:
    now = [0.0]
    llm = ScriptedLLM([Reply(text="a long streamed answer", usage=U1)], model=MODEL)
    with instrument(tmeter) as handle:
        handle.tracker.monotonic = lambda: now[0]
        gen = llm.stream_chat([ChatMessage(role="user", content="question")])
        next(gen)  # the first chunk only; the usage rides on the last one
        now[0] += handle.tracker.stream_ttl_s + 1
        assert handle.recorder.sweep() == 1
        assert handle.recorder.open_calls == 0
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.attributes.get("abandoned") is True
    assert span.usage is not None and span.usage.estimated and span.usage.output_tokens > 0
    assert span.cost.total is not None and span.cost.total > 0


# -- retrieval, embeddings, workflows ---------------------------------------------------------


def test_vector_index_query_with_mock_embedding(tmeter: Meter) -> None:
    embed = MockEmbedding(embed_dim=8, model_name="text-embedding-3-small")
    docs = [Document(text="faremeter prices agents."), Document(text="LlamaIndex builds RAG.")]
    with instrument(tmeter):
        index = VectorStoreIndex.from_documents(docs, embed_model=embed)
        engine = index.as_query_engine(llm=ScriptedLLM([Reply(text="it prices", usage=U1)]))
        with tmeter.trace("rag", user_id="u7") as t:
            engine.query("what does faremeter do?")
    spans = recorded_spans(tmeter)
    in_trace = [s for s in spans if s.trace_id == t.trace_id]
    kinds = {s.kind for s in in_trace}
    assert {SpanKind.CHAIN, SpanKind.RETRIEVAL, SpanKind.EMBEDDING, SpanKind.LLM} <= kinds
    by_id = {s.span_id: s for s in in_trace}
    (retrieval,) = by_kind(in_trace, SpanKind.RETRIEVAL)
    (query_embed,) = by_kind(in_trace, SpanKind.EMBEDDING)
    assert query_embed.parent_span_id == retrieval.span_id
    assert by_id[retrieval.parent_span_id or ""].name.endswith(".query")
    assert query_embed.usage is not None and query_embed.usage.source == "estimated"
    assert query_embed.usage.input_tokens > 0 and query_embed.cost.total is not None
    assert all(s.attributes.get("user_id") == "u7" for s in in_trace)
    assert t.cost == total(in_trace) > price(tmeter, U1)
    indexing = [s for s in spans if s.trace_id != t.trace_id]
    assert any(s.kind is SpanKind.EMBEDDING and s.usage for s in indexing)


class TwoStepFlow(Workflow):
    def __init__(self, llm: ScriptedLLM, **kw: Any) -> None:
        super().__init__(**kw)
        self.llm = llm

    @step
    async def draft(self, ctx: Context, ev: StartEvent) -> StopEvent:
        first = await self.llm.achat([ChatMessage(role="user", content="draft")])
        second = await self.polish(str(first.message.content))
        return StopEvent(result=second)

    async def polish(self, text: str) -> str:
        out = await self.llm.achat([ChatMessage(role="user", content=f"polish {text}")])
        return str(out.message.content)


def test_workflow_with_llm_steps(tmeter: Meter) -> None:
    flow = TwoStepFlow(ScriptedLLM([Reply(text="d", usage=U1), Reply(text="p", usage=U2)]))

    async def main() -> str:
        return str(await flow.run())

    with instrument(tmeter, environment="test"), faremeter.attributes(team="t1"):
        assert arun(main) == "p"
    spans = recorded_spans(tmeter)
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert root.kind is SpanKind.CHAIN and root.name == "TwoStepFlow"
    llm = by_kind(spans, SpanKind.LLM)
    assert [s.usage for s in llm] == [U1, U2]
    assert all(s.parent_span_id == root.span_id for s in llm)
    assert all(s.attributes.get("step") == "draft" for s in llm)
    assert all(s.attributes.get("environment") == "test" for s in spans)
    assert all(s.attributes.get("team") == "t1" for s in spans)
    assert total(spans) == price(tmeter, U1, U2)


def test_context_attribution_beats_instrument_defaults(tmeter: Meter) -> None:
    llm = ScriptedLLM([Reply(text="x", usage=U1)])
    with (
        instrument(tmeter, user_id="default", environment="prod"),
        faremeter.attributes(user_id="u1", step="plan"),
    ):
        llm.chat([ChatMessage(role="user", content="q")])
    (span,) = recorded_spans(tmeter)
    assert span.attributes["user_id"] == "u1"
    assert span.attributes["environment"] == "prod"
    assert span.attributes["step"] == "plan"


def test_work_inside_a_tool_nests_under_the_tool_span(tmeter: Meter) -> None:
    def paid_search(query: str = "") -> str:
        """A tool that records its own priced sub-call."""
        tmeter.record_tool("lookup")
        return "ok"

    llm = ScriptedLLM([Reply(tool_calls=[("paid_search", {})], usage=U1), Reply(text="done")])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(paid_search)], llm=llm)

    async def main() -> None:
        await agent.run(user_msg="x")

    with instrument(tmeter):
        arun(main)
    spans = recorded_spans(tmeter)
    tool = next(s for s in spans if s.name == "paid_search")
    inner = next(s for s in spans if s.name == "lookup")
    assert inner.parent_span_id == tool.span_id


@pytest.mark.parametrize("how", ["__call__", "call", "acall"])
def test_a_tool_called_directly_is_one_priced_span(tmeter: Meter, how: str) -> None:
    # FunctionTool.__call__ runs .call: two LlamaIndex spans, one tool call, one charge.
    def lookup(query: str) -> str:
        return f"found {query}"

    tool = FunctionTool.from_defaults(lookup)
    with instrument(tmeter), tmeter.trace("direct") as t:
        if how == "acall":
            arun(lambda: tool.acall("x"))
        else:
            out = getattr(tool, how)("x")
            assert "found x" in str(out)
    spans = [s for s in recorded_spans(tmeter) if s.kind is SpanKind.TOOL]
    assert [s.name for s in spans] == ["lookup"]
    assert t.cost == Decimal("0.001") and spans[0].attributes.get("tool_args_hash")


# -- lifecycle ----------------------------------------------------------------------------------


def test_instrument_is_idempotent_and_uninstrument_removes_everything(tmeter: Meter) -> None:
    dispatcher = get_dispatcher()
    before = (list(dispatcher.span_handlers), list(dispatcher.event_handlers))
    first = instrument(tmeter)
    assert instrument(tmeter) is first
    assert dispatcher.span_handlers.count(first.span_handler) == 1
    ScriptedLLM([Reply(text="x", usage=U1)]).chat([ChatMessage(role="user", content="q")])
    first.uninstrument()
    first.uninstrument()
    assert (dispatcher.span_handlers, dispatcher.event_handlers) == before
    ScriptedLLM([Reply(text="x", usage=U1)]).chat([ChatMessage(role="user", content="q")])
    assert len(recorded_spans(tmeter)) == 1, "nothing is recorded after uninstrument()"
    second = instrument(tmeter)
    assert second is not first
    second.uninstrument()


def test_default_meter_is_resolved_per_trace(tmeter: Meter) -> None:
    previous = faremeter.set_meter(tmeter)
    try:
        with instrument():
            ScriptedLLM([Reply(text="x", usage=U1)]).chat([ChatMessage(role="user", content="q")])
    finally:
        faremeter.set_meter(previous)
    assert len(recorded_spans(tmeter)) == 1


# -- never raise into the app -----------------------------------------------------------------

_counts = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
_keys = st.sampled_from(
    [
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "cachedContentTokenCount",
        "inputTokens",
        "outputTokens",
        "cached_tokens",
        "reasoning_tokens",
        "ephemeral_1h_input_tokens",
    ]
)
_payload = st.recursive(
    _counts,
    lambda children: st.dictionaries(
        st.one_of(
            _keys,
            st.sampled_from(
                [
                    "prompt_tokens_details",
                    "completion_tokens_details",
                    "cache_creation",
                    "usage",
                    "usage_metadata",
                ]
            ),
            st.text(max_size=4),
        ),
        children,
        max_size=6,
    ),
    max_leaves=12,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.one_of(
        st.dictionaries(
            st.sampled_from(["usage", "usage_metadata", "usageMetadata", "model"]),
            _payload,
            max_size=3,
        ),
        _payload,
    ),
    kwargs=st.dictionaries(_keys, _counts, max_size=3),
)
def test_fuzzed_usage_never_raises_into_the_app(tmeter: Meter, raw: Any, kwargs: Any) -> None:
    handle = recorder_module.Recorder(CallTracker(tmeter))
    span_id = "FuzzLLM.chat-00000000-0000-0000-0000-000000000000"
    llm = ScriptedLLM()
    messages = [ChatMessage(role="user", content="q")]
    handle.enter(span_id, llm, None, {"messages": messages})
    from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent

    handle.event(
        LLMChatStartEvent(
            messages=messages,
            additional_kwargs={},
            model_dict={"model_name": MODEL},
            span_id=span_id,
        )
    )
    response = ChatResponse(
        message=ChatMessage(role="assistant", content="a"), raw=raw, additional_kwargs=kwargs
    )
    handle.event(LLMChatEndEvent(messages=messages, response=response, span_id=span_id))
    handle.exit(span_id, response)  # must not raise, whatever the payload
    assert handle.open_calls == 0


def test_a_broken_recorder_never_breaks_the_app(
    tmeter: Meter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("faremeter bug")

    with instrument(tmeter) as handle:
        monkeypatch.setattr(handle.recorder, "enter", explode)
        monkeypatch.setattr(handle.recorder, "exit", explode)
        monkeypatch.setattr(handle.recorder, "event", explode)
        out = ScriptedLLM([Reply(text="fine", usage=U1)]).chat(
            [ChatMessage(role="user", content="q")]
        )
    assert out.message.content == "fine"


# -- docs -----------------------------------------------------------------------------------------


def test_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    example = HERE.parents[3] / "docs" / "examples" / "llamaindex_agent.py"
    namespace = runpy.run_path(str(example), run_name="__main__")
    namespace["instrumentation"].uninstrument()
    out = capsys.readouterr().out
    assert "total" in out.lower()


# -- one request, one charge ---------------------------------------------------------------------


class UsageCustomLLM(CustomLLM):
    """A completion LLM that reports usage (streamed: on its last chunk only)."""

    model: str = MODEL
    usage: Any = None

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    def _raw(self) -> dict[str, Any]:
        return {"usage": {"prompt_tokens": self.usage.input_tokens, "completion_tokens": 150}}

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="hello world", raw=self._raw())

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text="hello", delta="hello")
            yield CompletionResponse(text="hello world", delta=" world", raw=self._raw())

        return gen()


async def _drain(gen: Any) -> None:
    async for _ in gen:
        pass


@pytest.mark.parametrize(
    "method", ["astream_chat", "astream_complete", "achat", "acomplete", "stream_chat", "chat"]
)
def test_a_usage_reporting_custom_llm_costs_exactly_one_call(tmeter: Meter, method: str) -> None:
    llm = UsageCustomLLM(usage=U1)
    messages = [ChatMessage(role="user", content="hi")]

    async def main() -> None:
        if method == "astream_chat":
            await _drain(await llm.astream_chat(messages))
        elif method == "astream_complete":
            await _drain(await llm.astream_complete("hi"))
        elif method == "achat":
            await llm.achat(messages)
        elif method == "acomplete":
            await llm.acomplete("hi")
        elif method == "stream_chat":
            list(llm.stream_chat(messages))
        else:
            llm.chat(messages)

    with tmeter.trace("run") as t, instrument(tmeter) as handle:
        arun(main)
        assert handle.recorder.open_calls == 0
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.name == f"UsageCustomLLM.{method}"
    assert span.trace_id == t.trace_id and span.parent_span_id == t.span_id
    assert span.usage == Usage(input_tokens=1200, output_tokens=150)
    assert t.cost == price(tmeter, Usage(input_tokens=1200, output_tokens=150))


def test_mock_llm_astream_chat_is_one_span(tmeter: Meter) -> None:
    async def main() -> None:
        await _drain(await MockLLM().astream_chat([ChatMessage(role="user", content="hi")]))

    with instrument(tmeter) as handle:
        arun(main)
        assert handle.recorder.open_calls == 0
    (span,) = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert span.name == "MockLLM.astream_chat"
    assert span.usage is not None and span.usage.estimated


def test_interleaved_async_streams_of_one_instance_stay_in_their_traces(tmeter: Meter) -> None:
    llm = UsageCustomLLM(usage=U1)  # shared, as apps share one client
    usages = {"a": Usage(input_tokens=1200, output_tokens=150)}

    async def main() -> tuple[str, str]:
        with tmeter.trace("a") as ta:
            gen_a = await llm.astream_chat([ChatMessage(role="user", content="a")])
        with tmeter.trace("b") as tb:
            gen_b = await llm.astream_chat([ChatMessage(role="user", content="b")])
            await _drain(gen_b)  # b's stream runs first, inside its own trace
        with tmeter.trace("a-consumer"):
            pass
        await _drain(gen_a)
        return ta.trace_id, tb.trace_id

    with instrument(tmeter) as handle:
        ta, tb = arun(main)
        assert handle.recorder.open_calls == 0
    llm_spans = by_kind(recorded_spans(tmeter), SpanKind.LLM)
    assert sorted(s.trace_id for s in llm_spans) == sorted([ta, tb])
    assert all(s.usage == usages["a"] for s in llm_spans)


# -- budgets --------------------------------------------------------------------------------------


def test_spend_of_calls_llamaindex_runs_over_budget_still_counts() -> None:
    budget = faremeter.Budget("tiny", limit="0.0000001", window="month")
    meter = make_test_meter(budgets=[budget])
    llm = ScriptedLLM([Reply(text="a", usage=U1), Reply(text="b", usage=U1)])
    with instrument(meter):
        for _ in range(2):  # the budget refuses both; LlamaIndex runs them anyway
            llm.chat([ChatMessage(role="user", content="q")])
    spans = recorded_spans(meter)
    assert all(s.attributes.get("budget_exceeded") == "tiny" for s in spans)
    (status,) = meter.budgets.status()
    assert status.spent == sum((s.cost.total or Decimal(0) for s in spans), Decimal(0)) > 0
    assert status.reserved == 0
    meter.close()


def test_an_over_budget_call_is_marked_and_still_priced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class DenyAll:
        def reserve(self, **kw: object) -> object:
            raise faremeter.BudgetExceeded("over budget")

    meter = make_test_meter(budgets=DenyAll())
    llm = ScriptedLLM([Reply(text="still answered", usage=U1)])
    with instrument(meter) as handle, caplog.at_level("WARNING", logger="faremeter.llamaindex"):
        out = llm.chat([ChatMessage(role="user", content="q")])
        assert handle.recorder.open_calls == 0
    assert out.message.content == "still answered", "LlamaIndex swallows handler exceptions"
    (span,) = recorded_spans(meter)
    # The call ran anyway: its spend is recorded, priced and marked, never lost.
    assert span.status is SpanStatus.OK and span.attributes.get("budget_exceeded") is True
    assert span.cost.total is not None and span.cost.total > 0
    assert "RoutedLLM" in caplog.text
    meter.close()


def test_budget_reservations_settle_to_the_real_cost_of_each_call() -> None:
    settled: list[Decimal | None] = []

    class Reservation:
        def settle(self, actual: Decimal | None) -> None:
            settled.append(actual)

        def release(self) -> None:
            settled.append(None)

    class Manager:
        def reserve(self, **kw: object) -> Reservation:
            return Reservation()

    meter = make_test_meter(budgets=Manager())
    with instrument(meter):
        ScriptedLLM([Reply(text="ok", usage=U1)]).chat([ChatMessage(role="user", content="q")])
        with pytest.raises(KeyError):
            ScriptedLLM([Reply(error=KeyError("x"))]).chat([ChatMessage(role="user", content="q")])
    assert settled == [price(meter, U1), None], "settled once per call; a failure releases"
    meter.close()
