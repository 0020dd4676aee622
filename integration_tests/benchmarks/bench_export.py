"""Export overhead per span: OpenTelemetry and Prometheus, beside the peers.

    uv run python integration_tests/benchmarks/bench_export.py

Measures, per finished faremeter span (an LLM call with usage, cost and
attribution), the work the exporters add on the recording thread:

* OTel: faremeter's exporter (build GenAI attributes, inclusive cost, an SDK
  span with explicit ids) vs. the bare SDK cost of one span with the same
  attributes (``tracer.start_span`` + ``end``) — what any instrumentation pays
  — both into a ``BatchSpanProcessor`` with an exporter that drops spans.
* The GenAI span processor (pricing another instrumentation's span and
  recording it) per span, vs. the same bare SDK span.
* Peer: ``opentelemetry-instrumentation-openai-v2``'s per-call overhead (an
  ``openai`` client call over ``httpx.MockTransport``, instrumented minus
  uninstrumented), when it imports (it needs a compatible
  opentelemetry-util-genai). OpenLLMetry and OpenLIT are not installed here.
* Prometheus: faremeter's listener vs. the bare prometheus-client increments
  it performs (the same counters and label values, children pre-resolved).

Output is markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, set_span_in_context
from prometheus_client import CollectorRegistry, Counter

from faremeter import SpanRecord, Usage
from faremeter.export import otel_processor, prometheus
from faremeter.export.otel import OtelExporter, record_attributes
from faremeter.export.otel_ids import span_context_of
from faremeter.testing import make_test_meter

REPEATS, NUMBER = 7, 5_000


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _provider() -> TracerProvider:
    # Synchronous processor and an exporter that drops: no export thread
    # competing for the GIL, so the numbers are the recording thread's work.
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(_Drop()))
    return tp


def paired_us(
    ours: Callable[[], object], reference: Callable[[], object], number: int = NUMBER
) -> tuple[float, float]:
    """Median µs per call of each, runs interleaved so machine load hits both alike."""
    ours()
    reference()
    a: list[float] = []
    b: list[float] = []
    for _ in range(REPEATS):
        a.append(timeit.timeit(ours, number=number) / number * 1e6)
        b.append(timeit.timeit(reference, number=number) / number * 1e6)
    return statistics.median(a), statistics.median(b)


def median_us(fn: Callable[[], object], number: int = NUMBER) -> float:
    fn()
    runs = timeit.repeat(fn, number=number, repeat=REPEATS)
    return statistics.median(runs) / number * 1e6


def _records(n: int) -> list[SpanRecord]:
    meter = make_test_meter()
    out: list[SpanRecord] = []
    meter.add_span_listener(out.append)
    with meter.trace("bench", user_id="u1", team="search", workflow="deep"):
        for _ in range(n):
            meter.record_llm(
                "gpt-4o",
                Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=200),
                provider="openai",
            )
    return out


def bench_otel() -> tuple[float, float, float, float]:
    """Ours vs a bare SDK span; a third-party span with and without the processor."""
    record = _records(1)[0]
    assert record.parent_span_id is not None
    exporter = OtelExporter(tracer_provider=_provider())
    tracer = _provider().get_tracer("bare")
    attrs = record_attributes(record)

    def bare() -> None:
        parent = span_context_of(record.trace_id, record.parent_span_id or "")
        context = set_span_in_context(NonRecordingSpan(parent), Context())
        span = tracer.start_span(
            "chat gpt-4o", context=context, attributes=attrs, start_time=record.start_ns
        )
        span.end(end_time=record.end_ns)

    ours, baseline = paired_us(lambda: exporter(record), bare)
    # The GenAI span processor: another instrumentation's span, priced and recorded.
    genai = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
    }
    with_tp, without_tp = _provider(), _provider()
    meter = make_test_meter()
    otel_processor.instrument(meter, tracer_provider=with_tp)
    with_tracer, without_tracer = with_tp.get_tracer("3p"), without_tp.get_tracer("3p")

    def third_party(tracer: Any) -> Callable[[], None]:
        def run() -> None:
            tracer.start_span("chat gpt-4o", attributes=genai).end()

        return run

    with_processor, without_processor = paired_us(
        third_party(with_tracer), third_party(without_tracer), number=2_000
    )
    meter.close()
    return ours, baseline, with_processor, without_processor


def bench_openai_v2() -> tuple[float, float] | str:
    try:
        import httpx
        import openai
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    except ImportError as exc:
        return f"n/a ({exc})"
    body = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
    }
    client = openai.OpenAI(
        api_key="k",
        base_url="http://bench.test/v1",
        http_client=httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body))
        ),
    )
    messages: Any = [{"role": "user", "content": "hi"}]

    def call() -> None:
        client.chat.completions.create(model="gpt-4o", messages=messages)

    instrumentor = OpenAIInstrumentor()
    provider = _provider()
    plain: list[float] = []
    instrumented: list[float] = []
    call()
    for _ in range(REPEATS):
        plain.append(timeit.timeit(call, number=300) / 300 * 1e6)
        instrumentor.instrument(tracer_provider=provider)
        try:
            instrumented.append(timeit.timeit(call, number=300) / 300 * 1e6)
        finally:
            instrumentor.uninstrument()
    p, i = statistics.median(plain), statistics.median(instrumented)
    return i - p, p


def bench_prometheus() -> tuple[float, float]:
    record = _records(1)[0]
    registry = CollectorRegistry()
    metrics = prometheus.PrometheusMetrics(registry=registry, labels=("team", "workflow"))
    # The same increments straight on prometheus-client, children resolved once.
    bare_registry = CollectorRegistry()
    spans = Counter("s", "", ("kind", "status", "team", "workflow"), registry=bare_registry)
    spend = Counter(
        "d", "", ("kind", "model", "provider", "team", "workflow"), registry=bare_registry
    )
    tokens = Counter("t", "", ("model", "type", "team", "workflow"), registry=bare_registry)
    c_span = spans.labels("llm", "ok", "search", "deep")
    c_spend = spend.labels("llm", "gpt-4o", "openai", "search", "deep")
    c_in = tokens.labels("gpt-4o", "input", "search", "deep")
    c_out = tokens.labels("gpt-4o", "output", "search", "deep")
    c_cache = tokens.labels("gpt-4o", "cache_read", "search", "deep")

    def bare() -> None:
        c_span.inc()
        c_spend.inc(0.0049)
        c_in.inc(1200)
        c_out.inc(300)
        c_cache.inc(200)

    return paired_us(lambda: metrics(record), bare)


def main() -> None:
    print(
        f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}. Date: {datetime.now(UTC):%Y-%m-%d}."
    )
    print(f"Median of {REPEATS} interleaved runs.\n")
    ours, baseline, with_processor, without_processor = bench_otel()
    prom, prom_bare = bench_prometheus()
    peer = bench_openai_v2()
    rows: list[tuple[str, str, str, str]] = [
        (
            "OTel export of one LLM span vs a bare SDK span (same parent, same attributes)",
            f"{ours:.1f}",
            f"{baseline:.1f}",
            f"{ours / baseline:.2f}×",
        ),
    ]
    if isinstance(peer, tuple):
        overhead, plain = peer
        rows.append(
            (
                "OTel export vs openai-v2 instrumentation's own per-call overhead"
                f" (on a {plain:.0f} µs mocked call)",
                f"{ours:.1f}",
                f"{overhead:.1f}",
                f"{ours / overhead:.2f}×",
            )
        )
    else:
        rows.append(("openai-v2 instrumentation per-call overhead", "", peer, ""))
    added = with_processor - without_processor
    rows.append(
        (
            "GenAI span processor: price + record a third-party span, added to that span's cost",
            f"{added:.1f}",
            f"{without_processor:.1f}",
            f"{added / without_processor:.2f}×",
        )
    )
    rows.append(
        (
            "Prometheus listener vs the same bare prometheus-client increments",
            f"{prom:.1f}",
            f"{prom_bare:.1f}",
            f"{prom / prom_bare:.2f}×",
        )
    )
    print("| per span | faremeter µs | reference µs | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
