# pyright: basic
"""OTel export of real framework runs, and pricing of real third-party GenAI spans.

For each framework (a LangGraph agent, a LlamaIndex ``FunctionAgent``, a
LiteLLM ``Router`` call) the OTel SDK's in-memory exporter must hold one OTel
span per faremeter span, with the same ids and parents, the GenAI attributes,
and ``gen_ai.usage.cost.amount`` summed over the spans equal to ``t.cost``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import faremeter
from faremeter import Meter, SpanKind, SpanRecord, Usage
from faremeter.export import otel, otel_processor
from faremeter.testing import make_test_meter, recorded_spans

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
_LANGCHAIN_TESTS = Path(__file__).resolve().parents[1] / "packages/faremeter-langchain/tests"

U1 = Usage(input_tokens=1200, output_tokens=150)
U2 = Usage(input_tokens=1500, output_tokens=300, cache_read_tokens=1024)
U3 = Usage(input_tokens=1900, output_tokens=90, reasoning_tokens=40)
MODEL = "gpt-4o-mini"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


@pytest.fixture
def meter(provider: TracerProvider) -> Iterator[Meter]:
    m = make_test_meter(tools={"lookup": "0.001", "add": "0.002"})
    previous = faremeter.set_meter(m)
    otel.instrument(m, tracer_provider=provider)
    yield m
    otel.uninstrument(m)
    faremeter.set_meter(previous)
    m.close()


def assert_exported(
    records: list[SpanRecord], exporter: InMemorySpanExporter, trace_cost: Decimal
) -> dict[str, ReadableSpan]:
    """One OTel span per faremeter span, same ids and parents, cost summed over direct."""
    spans: dict[str, ReadableSpan] = {}
    for span in exporter.get_finished_spans():
        if (
            span.instrumentation_scope is not None
            and span.instrumentation_scope.name == "faremeter"
        ):
            assert span.context is not None
            spans[f"{span.context.span_id:016x}"] = span
    assert len(spans) == len(exporter.get_finished_spans())
    assert spans.keys() == {r.span_id for r in records}
    for record in records:
        span = spans[record.span_id]
        assert span.context is not None
        assert f"{span.context.trace_id:032x}" == record.trace_id
        parent = span.parent
        if record.parent_span_id is None:
            assert parent is None
        else:
            assert parent is not None and f"{parent.span_id:016x}" == record.parent_span_id
        attrs = span.attributes or {}
        assert attrs["faremeter.kind"] == record.kind.value
        if record.kind is SpanKind.LLM and record.usage is not None:
            assert attrs["gen_ai.operation.name"] == "chat"
            assert attrs["gen_ai.request.model"] == record.model
            assert attrs["gen_ai.usage.input_tokens"] == record.usage.input_tokens
            assert attrs["gen_ai.usage.output_tokens"] == record.usage.output_tokens
            if record.usage.cache_read_tokens:
                assert (
                    attrs["gen_ai.usage.cache_read.input_tokens"] == record.usage.cache_read_tokens
                )
            if record.usage.reasoning_tokens:
                assert (
                    attrs["gen_ai.usage.reasoning.output_tokens"] == record.usage.reasoning_tokens
                )
        if record.cost.total is not None:
            assert attrs["gen_ai.usage.cost.amount"] == float(record.cost.total)
            assert attrs["gen_ai.usage.cost.currency"] == "USD"
    exported = sum(
        (
            Decimal(repr((s.attributes or {}).get("faremeter.cost.direct", 0.0)))
            for s in spans.values()
        ),
        Decimal(0),
    )
    assert exported == pytest.approx(trace_cost, abs=Decimal("1e-12"))
    roots = [s for s in spans.values() if s.parent is None]
    for root in roots:
        assert (root.attributes or {})["faremeter.cost.inclusive"] == pytest.approx(
            float(trace_cost)
        )
    return spans


# -- LangGraph -------------------------------------------------------------------------
def test_langgraph_run_exports_one_otel_span_per_faremeter_span(
    meter: Meter, exporter: InMemorySpanExporter
) -> None:
    from langchain_core.tools import tool

    from faremeter_langchain import FaremeterCallbackHandler

    sys.path.insert(0, str(_LANGCHAIN_TESTS))
    try:
        from lc_fakes import ToolFake, ai, make_agent, scripted  # pyright: ignore[reportMissingImports]
    finally:
        sys.path.remove(str(_LANGCHAIN_TESTS))

    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        return "42"

    model = ToolFake(
        messages=scripted(
            ai(U1, MODEL, tool="lookup", call_id="a"),
            ai(U2, MODEL, tool="lookup", call_id="b"),
            ai(U3, MODEL, content="done"),
        )
    )
    agent = make_agent(model, [lookup])
    with meter.trace("research", user_id="u1", team="search") as t:
        agent.invoke(
            {"messages": [("user", "q")]}, config={"callbacks": [FaremeterCallbackHandler(meter)]}
        )
    records = recorded_spans(meter)
    assert len([r for r in records if r.kind is SpanKind.LLM]) == 3
    assert len([r for r in records if r.kind is SpanKind.TOOL]) == 2
    spans = assert_exported(records, exporter, t.cost)
    assert t.cost > 0
    llm = next(s for s in spans.values() if s.name == f"chat {MODEL}")
    assert (llm.attributes or {})["faremeter.user_id"] == "u1"
    assert (llm.attributes or {})["faremeter.team"] == "search"


# -- LlamaIndex ------------------------------------------------------------------------
def test_llamaindex_agent_exports_one_otel_span_per_faremeter_span(
    meter: Meter, exporter: InMemorySpanExporter
) -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    from faremeter_llamaindex import instrument
    from faremeter_llamaindex.testing import Reply, ScriptedLLM

    def lookup(query: str = "") -> str:
        """Look something up."""
        return f"facts about {query}"

    def add(a: int = 1, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    llm = ScriptedLLM(
        [
            Reply(tool_calls=[("lookup", {"query": "x"})], usage=U1),
            Reply(tool_calls=[("add", {"a": 2, "b": 3})], usage=U2),
            Reply(text="the answer is 5", usage=U3),
        ],
        model=MODEL,
    )
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(lookup), FunctionTool.from_defaults(add)], llm=llm
    )

    async def main() -> str:
        return str(await agent.run(user_msg="compute"))

    with instrument(meter), meter.trace("li-run", workflow="calc") as t:
        assert asyncio.run(main()) == "the answer is 5"
    records = recorded_spans(meter)
    assert [r.usage for r in records if r.kind is SpanKind.LLM] == [U1, U2, U3]
    assert_exported(records, exporter, t.cost)


# -- LiteLLM Router --------------------------------------------------------------------
def _mock(usage: Usage) -> Any:
    import litellm

    return litellm.ModelResponse(
        model=MODEL,
        choices=[{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        usage=litellm.Usage(
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        ),
    )


async def test_litellm_router_fallback_exports_attempts_once(
    meter: Meter, exporter: InMemorySpanExporter
) -> None:
    import litellm

    import faremeter_litellm

    router = litellm.Router(  # pyright: ignore[reportPrivateImportUsage]
        model_list=[
            {
                "model_name": "primary",
                "litellm_params": {"model": "gpt-4o", "mock_response": "litellm.RateLimitError"},
            },
            {
                "model_name": "backup",
                "litellm_params": {
                    "model": MODEL,
                    "mock_response": _mock(Usage(input_tokens=400, output_tokens=40)),
                },
            },
        ],
        fallbacks=[{"primary": ["backup"]}],
        num_retries=0,
    )
    handle = faremeter_litellm.instrument(meter)
    try:
        with meter.trace("agent") as t:
            await router.acompletion(model="primary", messages=[{"role": "user", "content": "hi"}])
            assert await handle.aflush()
    finally:
        handle.uninstrument()
    records = recorded_spans(meter)
    assert t.cost == meter.price(MODEL, Usage(input_tokens=400, output_tokens=40)).total
    spans = assert_exported(records, exporter, t.cost)
    statuses = sorted(str((s.attributes or {})["faremeter.status"]) for s in spans.values())
    assert "fallback" in statuses and "error" in statuses


# -- third-party GenAI instrumentations ------------------------------------------------
def _chat_completion(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
        },
    )


@pytest.fixture
def openai_instrumented(provider: TracerProvider) -> Iterator[None]:
    try:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    except ImportError as exc:
        pytest.skip(
            "opentelemetry-instrumentation-openai-v2 cannot import with the installed "
            f"opentelemetry-util-genai ({exc}); pin opentelemetry-util-genai==1.1b0 in the "
            "dev group"
        )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield
    instrumentor.uninstrument()


def _openai_client() -> Any:
    import openai

    return openai.OpenAI(
        api_key="test",
        base_url="http://openai.test/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(_chat_completion)),
    )


def test_openai_v2_instrumentation_spans_are_priced_once(
    openai_instrumented: None, provider: TracerProvider
) -> None:
    meter = make_test_meter()
    processor = otel_processor.instrument(meter, tracer_provider=provider)
    try:
        client = _openai_client()
        with faremeter.attributes(team="search"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        # inside a faremeter model call (an adapter already records it): not again
        with meter.trace("agent") as t:
            call = meter.start_span("wrapped", kind=SpanKind.LLM, model="gpt-4o-mini")
            from faremeter.context import activate, deactivate

            token = activate(call)
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
            finally:
                deactivate(token)
            call.end(usage=Usage(input_tokens=120, output_tokens=30))
    finally:
        otel_processor.uninstrument(provider)
    records = recorded_spans(meter)
    from_otel = [r for r in records if r.attributes.get("faremeter.source") == "otel"]
    assert len(from_otel) == 1
    (record,) = from_otel
    usage = Usage(input_tokens=120, output_tokens=30)
    assert record.usage == usage
    assert record.model == "gpt-4o-mini-2024-07-18"
    assert record.cost == meter.price("gpt-4o-mini-2024-07-18", usage)
    assert record.attributes["team"] == "search"
    assert processor.skipped_duplicates == 1
    assert t.cost == meter.price("gpt-4o-mini", usage).total


class _Ended(SpanProcessor):
    """Signals each end of a span named ``name`` (LiteLLM ends its spans on a logging thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.changed = threading.Condition()

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == self.name:
            with self.changed:
                self.count += 1
                self.changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self.changed:
            # The timeout only turns a hang into a failure; nothing is timed.
            assert self.changed.wait_for(lambda: self.count >= count, timeout=60)


def test_litellm_own_otel_spans_are_priced_once_and_not_again_with_the_adapter(
    provider: TracerProvider,
) -> None:
    """LiteLLM's built-in OpenTelemetry logger is a real third-party GenAI instrumentation.

    Its span is emitted by a success callback, outside the call's context, so
    the dedupe uses the call id: recorded by the adapter already, or still
    open in the adapter (when LiteLLM's logger runs first).
    """
    import litellm
    from litellm.integrations.opentelemetry import OpenTelemetry

    import faremeter_litellm

    meter = make_test_meter()
    processor = otel_processor.instrument(meter, tracer_provider=provider)
    ended = _Ended("litellm_request")
    provider.add_span_processor(ended)
    otel_logger = OpenTelemetry(tracer_provider=provider)
    litellm.callbacks.append(otel_logger)
    messages = [{"role": "user", "content": "hi"}]
    try:
        litellm.completion(model=MODEL, messages=messages, mock_response=_mock(U1))
        ended.wait_for(1)
        assert processor.recorded == 1
        # Now the faremeter adapter sees the same calls.
        handle = faremeter_litellm.instrument(meter)
        recorder = handle.logger.recorder
        processor.correlate(
            "litellm.call_id", "litellm_call_id", is_open=lambda cid: cid in recorder.calls
        )
        try:
            litellm.completion(model=MODEL, messages=messages, mock_response=_mock(U2))
            ended.wait_for(2)
            assert handle.flush()
        finally:
            handle.uninstrument()
    finally:
        litellm.callbacks.remove(otel_logger)
        otel_processor.uninstrument(provider)
    records = [r for r in recorded_spans(meter) if r.kind is SpanKind.LLM]
    assert sorted(r.usage.input_tokens for r in records if r.usage) == [1200, 1500]
    by_source = sorted(str(r.attributes.get("faremeter.source", "adapter")) for r in records)
    assert by_source == ["adapter", "otel"]
    assert processor.recorded == 1
    assert processor.skipped_duplicates == 1


def test_litellm_over_the_openai_sdk_traced_by_openai_v2_is_counted_once(
    openai_instrumented: None, provider: TracerProvider
) -> None:
    import litellm

    import faremeter_litellm

    meter = make_test_meter()
    processor = otel_processor.instrument(meter, tracer_provider=provider)
    handle = faremeter_litellm.instrument(meter)
    try:
        with meter.trace("agent") as t:
            litellm.completion(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                client=_openai_client(),
                api_key="test",
            )
            # LiteLLM's first success log imports lazily (seconds on a busy machine);
            # the timeout only turns a hang into a failure.
            assert handle.flush(60)
    finally:
        handle.uninstrument()
        otel_processor.uninstrument(provider)
    llm = [r for r in recorded_spans(meter) if r.kind is SpanKind.LLM]
    assert processor.skipped_duplicates == 1
    assert len([r for r in llm if r.cost.total]) == 1
    usage = Usage(input_tokens=120, output_tokens=30)
    assert t.cost == meter.price("gpt-4o-mini", usage).total


def _async_openai_client() -> Any:
    import openai

    return openai.AsyncOpenAI(
        api_key="test",
        base_url="http://openai.test/v1",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(_chat_completion)),
    )


def _assert_callers_calls_stay_the_callers(
    meter: Meter, processor: otel_processor.GenAISpanProcessor, t: Any
) -> None:
    """Two LiteLLM calls (one mocked), two direct SDK calls: each charged once, all under t."""
    records = recorded_spans(meter)
    llm = [r for r in records if r.kind is SpanKind.LLM]
    from_otel = [r for r in llm if r.attributes.get("faremeter.source") == "otel"]
    from_adapter = [r for r in llm if "litellm_call_id" in r.attributes]
    assert len(from_otel) == 2 and len(from_adapter) == 2 and len(llm) == 4
    assert all(r.parent_span_id == t.span_id for r in llm)
    (after,) = [r for r in records if r.name == "after"]
    assert after.parent_span_id == t.span_id
    assert processor.recorded == 2
    assert processor.skipped_duplicates == 1  # only the SDK request inside LiteLLM's call
    usage = Usage(input_tokens=120, output_tokens=30)
    charged = [meter.price(MODEL, U1).total, meter.price("gpt-4o-mini", usage).total]
    charged += [meter.price("gpt-4o-mini-2024-07-18", usage).total] * 2
    assert None not in charged
    assert t.cost == sum((c for c in charged if c is not None), Decimal(0))


def test_after_a_litellm_call_the_callers_own_calls_are_not_its_children(
    openai_instrumented: None, provider: TracerProvider
) -> None:
    """Nothing of a finished LiteLLM call stays current in the caller's context.

    A mocked call never reaches ``log_post_api_call``; the caller's next span
    (faremeter's or a provider SDK's) must still be the caller's, and the
    SDK's span priced, not skipped as part of the LiteLLM call.
    """
    import litellm

    import faremeter_litellm

    meter = make_test_meter()
    processor = otel_processor.instrument(meter, tracer_provider=provider)
    handle = faremeter_litellm.instrument(meter)
    client = _openai_client()
    messages = [{"role": "user", "content": "hi"}]
    try:
        with meter.trace("agent") as t:
            litellm.completion(model=MODEL, messages=messages, mock_response=_mock(U1))
            assert faremeter.current_span() is t.span
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            litellm.completion(
                model="openai/gpt-4o-mini", messages=messages, client=client, api_key="test"
            )
            assert faremeter.current_span() is t.span
            with meter.span("after", kind=SpanKind.TOOL):
                pass
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            assert handle.flush(60)  # the timeout only turns a hang into a failure
    finally:
        handle.uninstrument()
        otel_processor.uninstrument(provider)
    _assert_callers_calls_stay_the_callers(meter, processor, t)


async def test_async_litellm_over_the_async_openai_sdk_is_counted_once_and_ends_cleanly(
    openai_instrumented: None, provider: TracerProvider
) -> None:
    """The same in async code: LiteLLM's call wrapper is on the ``await`` chain of the request."""
    import litellm

    import faremeter_litellm

    meter = make_test_meter()
    processor = otel_processor.instrument(meter, tracer_provider=provider)
    handle = faremeter_litellm.instrument(meter)
    client = _async_openai_client()
    messages = [{"role": "user", "content": "hi"}]
    try:
        with meter.trace("agent") as t:
            await litellm.acompletion(model=MODEL, messages=messages, mock_response=_mock(U1))
            assert faremeter.current_span() is t.span
            await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            await litellm.acompletion(
                model="openai/gpt-4o-mini", messages=messages, client=client, api_key="test"
            )
            assert faremeter.current_span() is t.span
            with meter.span("after", kind=SpanKind.TOOL):
                pass
            await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            assert await handle.aflush(60)  # the timeout only turns a hang into a failure
    finally:
        handle.uninstrument()
        otel_processor.uninstrument(provider)
    _assert_callers_calls_stay_the_callers(meter, processor, t)
