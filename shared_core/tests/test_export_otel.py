"""OpenTelemetry export: faremeter spans as OTel spans, trace joining both ways."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

from faremeter import Meter, SpanKind, SpanStatus, Usage
from faremeter.export import otel, otel_processor
from faremeter.export.otel_ids import FaremeterOtelSpan, OtelTraceIds, activate_in_otel
from faremeter.export.otel_processor import usage_from_attributes
from faremeter.testing import make_test_meter

GPT = "gpt-4o"


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
    m = make_test_meter(tools={"web_search": "0.005"})
    otel.instrument(m, tracer_provider=provider)
    yield m
    otel.uninstrument(m)


def _by_id(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    out: dict[str, ReadableSpan] = {}
    for span in spans:
        assert span.context is not None
        out[f"{span.context.span_id:016x}"] = span
    return out


def _run_agent(meter: Meter) -> Decimal:
    with meter.trace("research", user_id="u1", workflow="deep") as t:
        with meter.span("plan", kind=SpanKind.CHAIN):
            meter.record_llm(
                GPT,
                Usage(
                    input_tokens=1200, output_tokens=300, cache_read_tokens=200, reasoning_tokens=50
                ),
                provider="openai",
            )
        meter.record_tool("web_search")
        meter.record_llm("no-such-model-xyz", Usage(input_tokens=10, output_tokens=1))
    return t.cost


def test_one_otel_span_per_faremeter_span_with_ids_parents_and_times(
    meter: Meter, exporter: InMemorySpanExporter
) -> None:
    _run_agent(meter)
    assert meter.flush()
    records = {r.span_id: r for r in meter.ledger.spans()}
    assert len(records) == 5
    spans = _by_id(exporter.get_finished_spans())
    assert spans.keys() == records.keys()
    for span_id, record in records.items():
        span = spans[span_id]
        assert span.context is not None
        assert f"{span.context.trace_id:032x}" == record.trace_id
        assert span.start_time == record.start_ns
        assert span.end_time == record.end_ns
        if record.parent_span_id is None:
            assert span.parent is None
        else:
            assert span.parent is not None
            assert f"{span.parent.span_id:016x}" == record.parent_span_id
            assert span.parent.trace_id == span.context.trace_id


def test_genai_attributes_and_cost_sum_over_direct_equals_trace_cost(
    meter: Meter, exporter: InMemorySpanExporter
) -> None:
    cost = _run_agent(meter)
    spans = exporter.get_finished_spans()
    llm = next(s for s in spans if s.attributes and s.attributes.get("gen_ai.request.model") == GPT)
    attrs = dict(llm.attributes or {})
    assert llm.name == f"chat {GPT}"
    assert llm.kind is otel_trace.SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.response.model"] == GPT
    assert attrs["gen_ai.usage.input_tokens"] == 1200
    assert attrs["gen_ai.usage.output_tokens"] == 300
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 200
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 50
    assert attrs["gen_ai.usage.cost.currency"] == "USD"
    assert attrs["gen_ai.usage.cost.amount"] == attrs["faremeter.cost.direct"]
    assert attrs["faremeter.user_id"] == "u1"
    assert attrs["user.id"] == "u1"
    assert attrs["faremeter.workflow"] == "deep"
    tool = next(s for s in spans if s.name == "execute_tool web_search")
    assert (tool.attributes or {})["gen_ai.usage.cost.amount"] == pytest.approx(0.005)
    unpriced = next(
        s for s in spans if (s.attributes or {}).get("gen_ai.request.model") == "no-such-model-xyz"
    )
    assert "gen_ai.usage.cost.amount" not in (unpriced.attributes or {})
    assert "unknown model" in str((unpriced.attributes or {})["faremeter.cost.unpriced_reason"])
    total = sum(
        Decimal(repr(s.attributes["faremeter.cost.direct"]))
        for s in spans
        if s.attributes and "faremeter.cost.direct" in s.attributes
    )
    assert total == pytest.approx(cost, abs=Decimal("1e-12"))
    assert cost > 0


def test_inclusive_cost_is_the_subtree_and_counts_unpriced(
    meter: Meter, exporter: InMemorySpanExporter
) -> None:
    cost = _run_agent(meter)
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.parent is None)
    attrs = root.attributes or {}
    assert attrs["faremeter.cost.inclusive"] == pytest.approx(float(cost))
    assert attrs["faremeter.cost.inclusive_unpriced"] == 1
    plan = next(s for s in spans if s.name == "plan")
    llm = next(s for s in spans if s.name == f"chat {GPT}")
    assert (plan.attributes or {})["faremeter.cost.inclusive"] == (llm.attributes or {})[
        "faremeter.cost.direct"
    ]
    assert (plan.attributes or {})["faremeter.cost.direct"] == 0.0


def test_error_and_denied_spans_have_error_status(
    meter: Meter, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(ValueError), meter.trace("run"):
        raise ValueError("boom")
    span = exporter.get_finished_spans()[-1]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: boom"
    assert (span.attributes or {})["error.type"] == "ValueError"
    assert (span.attributes or {})["faremeter.status"] == SpanStatus.ERROR.value


def test_trace_inside_application_span_joins_it(
    meter: Meter, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = provider.get_tracer("app")
    with app.start_as_current_span("POST /ask") as request_span:
        with meter.trace("agent") as t:
            meter.record_llm(GPT, Usage(input_tokens=10, output_tokens=5))
        app_ctx = request_span.get_span_context()
    assert t.trace_id == f"{app_ctx.trace_id:032x}"
    spans = exporter.get_finished_spans()
    assert {s.context.trace_id for s in spans if s.context} == {app_ctx.trace_id}
    root = next(s for s in spans if s.name == "invoke_agent agent")
    assert root.parent is not None and root.parent.span_id == app_ctx.span_id
    # a trace outside any OTel span is its own trace with no parent
    with meter.trace("alone") as alone:
        pass
    assert alone.trace_id != t.trace_id
    assert exporter.get_finished_spans()[-1].parent is None


def test_otel_spans_started_inside_a_faremeter_span_nest_under_it(
    meter: Meter, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The bridge the core's activation hook calls (called by hand here)."""
    other = provider.get_tracer("openllmetry-like")
    with meter.trace("agent") as t:
        assert t.span is not None
        undo = activate_in_otel(t.span)
        try:
            current = otel_trace.get_current_span()
            assert isinstance(current, FaremeterOtelSpan)
            assert current.faremeter_kind is SpanKind.AGENT
            with other.start_as_current_span("openai.chat"), meter.trace("nested") as nested:
                pass
        finally:
            undo()
    assert otel_trace.get_current_span() is otel_trace.INVALID_SPAN
    third_party = next(s for s in exporter.get_finished_spans() if s.name == "openai.chat")
    assert third_party.context is not None and third_party.parent is not None
    assert f"{third_party.context.trace_id:032x}" == t.trace_id
    assert f"{third_party.parent.span_id:016x}" == t.span_id
    # a faremeter trace nested in a faremeter trace keeps its own id, even
    # inside another instrumentation's span in between
    assert nested.trace_id != t.trace_id


def test_instrument_is_idempotent_and_uninstrument_restores(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    m = make_test_meter()
    original_ids = m.ids
    otel.instrument(m, tracer_provider=provider)
    otel.instrument(m, tracer_provider=provider)
    m.record_llm(GPT, Usage(input_tokens=1, output_tokens=1))
    assert len(exporter.get_finished_spans()) == 1
    assert isinstance(m.ids, OtelTraceIds)
    assert otel.uninstrument(m) is True
    assert m.ids is original_ids
    assert otel.uninstrument(m) is False
    m.record_llm(GPT, Usage(input_tokens=1, output_tokens=1))
    assert len(exporter.get_finished_spans()) == 1


def test_sampler_decides_once_per_trace(exporter: InMemorySpanExporter) -> None:
    tp = TracerProvider(sampler=ALWAYS_OFF)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    m = make_test_meter()
    otel.instrument(m, tracer_provider=tp)
    _run_agent(m)
    assert exporter.get_finished_spans() == ()
    assert m.flush()
    assert len(m.ledger.spans()) == 5  # the ledger keeps everything regardless


def test_without_an_sdk_provider_nothing_breaks(caplog: pytest.LogCaptureFixture) -> None:
    m = make_test_meter()
    otel.instrument(m, tracer_provider=otel_trace.NoOpTracerProvider())
    record = m.record_llm(GPT, Usage(input_tokens=1, output_tokens=1))
    assert record is not None
    assert "opentelemetry-sdk TracerProvider" in caplog.text
    otel.uninstrument(m)


def test_application_span_ids_are_untouched(
    meter: Meter, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """faremeter's explicit ids apply to its own tracer only."""
    meter.record_llm(GPT, Usage(input_tokens=1, output_tokens=1))
    with provider.get_tracer("app").start_as_current_span("x") as a:
        pass
    with provider.get_tracer("app").start_as_current_span("y") as b:
        pass
    assert a.get_span_context().span_id != b.get_span_context().span_id
    assert a.get_span_context().trace_id != b.get_span_context().trace_id


# -- pricing other instrumentations' GenAI spans ---------------------------------


_GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
    "gen_ai.usage.cache_read.input_tokens": 400,
}


def _genai_span(provider: TracerProvider, name: str = "chat gpt-4o") -> None:
    with provider.get_tracer("some.instrumentation").start_as_current_span(name, attributes=_GENAI):
        pass


@pytest.fixture
def priced(provider: TracerProvider) -> Iterator[tuple[Meter, otel_processor.GenAISpanProcessor]]:
    m = make_test_meter()
    processor = otel_processor.instrument(m, tracer_provider=provider)
    yield m, processor
    otel_processor.uninstrument(provider)


def test_a_third_party_genai_span_is_priced_and_recorded_once(
    priced: tuple[Meter, otel_processor.GenAISpanProcessor], provider: TracerProvider
) -> None:
    meter, processor = priced
    token = otel_context.attach(otel_baggage.set_baggage("team", "search"))
    try:
        _genai_span(provider)
    finally:
        otel_context.detach(token)
    assert meter.flush()
    (record,) = meter.ledger.spans()
    usage = Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=400)
    assert record.kind is SpanKind.LLM
    assert record.model == "gpt-4o-2024-08-06"
    assert record.provider == "openai"
    assert record.usage == usage
    assert record.cost == meter.price("gpt-4o-2024-08-06", usage)
    assert record.cost.total is not None and record.cost.total > 0
    assert record.attributes["team"] == "search"
    assert record.attributes["faremeter.source"] == "otel"
    assert processor.recorded == 1


def test_genai_span_inside_a_faremeter_trace_joins_its_tree(
    priced: tuple[Meter, otel_processor.GenAISpanProcessor],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    meter, _ = priced
    otel.instrument(meter, tracer_provider=provider)
    try:
        with meter.trace("agent", user_id="u7") as t:
            _genai_span(provider)
    finally:
        otel.uninstrument(meter)
    assert meter.flush()
    llm = next(r for r in meter.ledger.spans() if r.kind is SpanKind.LLM)
    assert llm.trace_id == t.trace_id
    assert llm.parent_span_id == t.span_id
    assert llm.attributes["user_id"] == "u7"
    assert t.cost == llm.cost.total
    # the call is in the OTel trace once: the instrumentation's span, not a faremeter copy
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("chat gpt-4o") == 1
    assert "invoke_agent agent" in names


def test_genai_span_inside_a_faremeter_model_call_is_not_counted_twice(
    priced: tuple[Meter, otel_processor.GenAISpanProcessor], provider: TracerProvider
) -> None:
    """A faremeter adapter already records this provider request (e.g. LiteLLM → OpenAI SDK)."""
    meter, processor = priced
    from faremeter.context import activate, deactivate

    with meter.trace("agent") as t:
        call = meter.start_span("litellm.completion", kind=SpanKind.LLM, model="gpt-4o")
        token = activate(call)
        try:
            _genai_span(provider)  # the SDK underneath, traced by another instrumentation
        finally:
            deactivate(token)
        call.end(usage=Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=400))
    assert meter.flush()
    llm = [r for r in meter.ledger.spans() if r.kind is SpanKind.LLM]
    assert [r.name for r in llm] == ["litellm.completion"]
    assert processor.skipped_duplicates == 1
    assert t.cost == llm[0].cost.total


def test_spans_without_usage_and_faremeters_own_spans_are_ignored(
    priced: tuple[Meter, otel_processor.GenAISpanProcessor],
    provider: TracerProvider,
) -> None:
    meter, processor = priced
    with provider.get_tracer("http").start_as_current_span("GET /"):
        pass
    otel.instrument(meter, tracer_provider=provider)
    try:
        meter.record_llm("gpt-4o", Usage(input_tokens=5, output_tokens=5))
    finally:
        otel.uninstrument(meter)
    assert meter.flush()
    assert len(meter.ledger.spans()) == 1
    assert processor.recorded == 0


def test_uninstrument_stops_recording(provider: TracerProvider) -> None:
    meter = make_test_meter()
    first = otel_processor.instrument(meter, tracer_provider=provider)
    assert otel_processor.instrument(meter, tracer_provider=provider) is first
    assert otel_processor.uninstrument(provider) is True
    _genai_span(provider)
    assert meter.flush()
    assert meter.ledger.spans() == []
    assert otel_processor.uninstrument(provider) is False
    with pytest.raises(TypeError, match="opentelemetry-sdk TracerProvider"):
        otel_processor.instrument(meter, tracer_provider=otel_trace.NoOpTracerProvider())  # type: ignore[arg-type]


_U = "gen_ai.usage."


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (
            {_U + "prompt_tokens": 10, _U + "completion_tokens": 3},
            Usage(input_tokens=10, output_tokens=3),
        ),
        (
            {"llm.token_count.prompt": 7, "llm.token_count.completion": 2},
            Usage(input_tokens=7, output_tokens=2),
        ),
        # cache tokens reported outside input tokens (Anthropic-style): normalised to inclusive
        (
            {_U + "input_tokens": 10, _U + "output_tokens": 5, _U + "cache_read.input_tokens": 90},
            Usage(input_tokens=100, output_tokens=5, cache_read_tokens=90),
        ),
        (
            {
                _U + "input_tokens": 10,
                _U + "output_tokens": 50,
                _U + "reasoning.output_tokens": 40,
            },
            Usage(input_tokens=10, output_tokens=50, reasoning_tokens=40),
        ),
        ({"gen_ai.request.model": "gpt-4o"}, None),
    ],
)
def test_usage_from_attribute_spellings(attrs: dict[str, object], expected: Usage | None) -> None:
    assert usage_from_attributes(attrs) == expected


def test_activation_hooks_mirror_faremeter_activation_into_otel(
    meter: Meter, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The pair the exporter registers with the core's activation hook, driven like the core."""
    from faremeter.context import activate, deactivate
    from faremeter.export.otel_ids import on_activate, on_deactivate

    app = provider.get_tracer("app")
    third_party = provider.get_tracer("third-party")
    with app.start_as_current_span("request") as request:
        with meter.trace("agent") as t:
            assert t.span is not None
            on_activate(t.span)
            tool = meter.start_span("search", kind=SpanKind.TOOL)
            token = activate(tool)
            on_activate(tool)
            with third_party.start_as_current_span("http GET"):
                pass
            on_deactivate()
            deactivate(token)
            tool.end()
            current = otel_trace.get_current_span()
            assert isinstance(current, FaremeterOtelSpan)
            assert current.get_span_context().span_id == int(t.span_id, 16)
            on_deactivate()
        assert otel_trace.get_current_span() is request
    on_deactivate()  # unbalanced: a no-op
    assert otel_trace.get_current_span() is otel_trace.INVALID_SPAN
    http = next(s for s in exporter.get_finished_spans() if s.name == "http GET")
    assert http.parent is not None and f"{http.parent.span_id:016x}" == tool.span_id
    assert http.context is not None and f"{http.context.trace_id:032x}" == t.trace_id
    assert t.trace_id == f"{request.get_span_context().trace_id:032x}"


def test_docs_example_runs_offline(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "export_otel.py"
    done = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "chat gpt-4o              direct $0.038000  user.id=u-42" in done.stdout
    assert "sum of faremeter.cost.direct: $0.043690 | t.cost: $0.043690" in done.stdout
    assert "joined the application's trace: True" in done.stdout


def test_two_meters_on_one_provider_keep_their_own_ids(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Both exporters share faremeter's cached tracer on that provider."""
    first, second = make_test_meter(), make_test_meter(ids=OtelTraceIds())
    otel.instrument(first, tracer_provider=provider)
    otel.instrument(second, tracer_provider=provider)
    try:
        a = first.record_llm(GPT, Usage(input_tokens=1, output_tokens=1))
        b = second.record_llm(GPT, Usage(input_tokens=1, output_tokens=1))
    finally:
        otel.uninstrument(first)
        otel.uninstrument(second)
    assert a is not None and b is not None
    exported = {
        (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}")
        for s in exporter.get_finished_spans()
        if s.context is not None
    }
    assert exported == {(a.trace_id, a.span_id), (b.trace_id, b.span_id)}


def test_unbalanced_activations_keep_the_bridge_bounded(meter: Meter) -> None:
    from faremeter.export import otel_ids

    before = otel_context.get_current()
    with meter.trace("agent") as t:
        assert t.span is not None
        for _ in range(otel_ids._MAX_DEPTH + 50):  # pyright: ignore[reportPrivateUsage]
            otel_ids.on_activate(t.span)
        assert len(otel_ids._previous.get()) == otel_ids._MAX_DEPTH  # pyright: ignore[reportPrivateUsage]
        for _ in range(otel_ids._MAX_DEPTH):  # pyright: ignore[reportPrivateUsage]
            otel_ids.on_deactivate()
    assert otel_ids._previous.get() == ()  # pyright: ignore[reportPrivateUsage]
    # the oldest 50 were dropped, so the context of before them is not restored
    assert isinstance(otel_trace.get_current_span(), FaremeterOtelSpan)
    otel_context.attach(before)
