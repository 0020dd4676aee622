"""Call probes: an adapter that cannot make its call current still dedupes SDK spans inside it."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from faremeter import Meter, SpanKind, Usage
from faremeter.call_probes import add_call_probe, inside_adapter_call
from faremeter.export import otel, otel_processor
from faremeter.testing import make_test_meter, recorded_spans

_GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
}

# Stands in for "the framework's call is on this stack": set for a block, reset after.
_in_call: contextvars.ContextVar[bool] = contextvars.ContextVar("in_call", default=False)


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
def priced(provider: TracerProvider) -> Iterator[tuple[Meter, otel_processor.GenAISpanProcessor]]:
    m = make_test_meter()
    processor = otel_processor.instrument(m, tracer_provider=provider)
    yield m, processor
    otel_processor.uninstrument(provider)
    m.close()


@pytest.fixture
def probe_calls() -> Iterator[list[bool]]:
    """Registers a probe answering from ``_in_call``; yields the answers it gave."""
    answers: list[bool] = []

    def probe() -> bool:
        answers.append(_in_call.get())
        return answers[-1]

    remove = add_call_probe(probe)
    yield answers
    remove()


def _genai_span(provider: TracerProvider) -> None:
    with provider.get_tracer("some.instrumentation").start_as_current_span(
        "chat gpt-4o", attributes=_GENAI
    ):
        pass


def _in_adapter_call(fn: Callable[[], None]) -> None:
    token = _in_call.set(True)
    try:
        fn()
    finally:
        _in_call.reset(token)


def test_span_started_while_a_probe_says_inside_is_skipped_and_later_ones_are_not(
    priced: tuple[Meter, otel_processor.GenAISpanProcessor],
    provider: TracerProvider,
    probe_calls: list[bool],
) -> None:
    meter, processor = priced
    with meter.trace("agent") as t:
        _in_adapter_call(lambda: _genai_span(provider))  # the adapter records this one
        _genai_span(provider)  # the caller's own call after the adapter's ended
    assert meter.flush()
    llm = [r for r in recorded_spans(meter) if r.kind is SpanKind.LLM]
    assert len(llm) == 1
    assert llm[0].parent_span_id == t.span_id
    assert processor.skipped_duplicates == 1
    assert processor.recorded == 1
    assert probe_calls == [True, False]
    usage = Usage(input_tokens=1000, output_tokens=100)
    assert t.cost == meter.price("gpt-4o", usage).total


def test_faremeters_own_exported_spans_do_not_ask_the_probes(
    priced: tuple[Meter, otel_processor.GenAISpanProcessor],
    provider: TracerProvider,
    probe_calls: list[bool],
) -> None:
    meter, processor = priced
    otel.instrument(meter, tracer_provider=provider)
    try:
        meter.record_llm("gpt-4o", Usage(input_tokens=5, output_tokens=5))
    finally:
        otel.uninstrument(meter)
    assert meter.flush()
    assert probe_calls == []
    assert processor.recorded == 0
    assert len(recorded_spans(meter)) == 1


def test_a_failing_probe_counts_as_outside_and_never_breaks_tracing(
    priced: tuple[Meter, otel_processor.GenAISpanProcessor], provider: TracerProvider
) -> None:
    meter, processor = priced

    def broken() -> bool:
        raise RuntimeError("probe bug")

    remove = add_call_probe(broken)
    try:
        assert inside_adapter_call() is False
        _genai_span(provider)
    finally:
        remove()
    assert meter.flush()
    assert processor.recorded == 1
    assert processor.skipped_duplicates == 0


def test_remover_removes_one_registration_once() -> None:
    def probe() -> bool:
        return True

    assert inside_adapter_call() is False
    first = add_call_probe(probe)
    second = add_call_probe(probe)
    first()
    first()  # idempotent: the second registration stays
    assert inside_adapter_call() is True
    second()
    assert inside_adapter_call() is False
