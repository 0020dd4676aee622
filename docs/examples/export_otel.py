"""Send faremeter's priced spans to an OpenTelemetry collector.

Runs offline: when no collector listens on 127.0.0.1:4318 (or the OTLP
exporter package is not installed) the spans go to an in-memory exporter and
are printed instead.

    pip install "faremeter[otel]" opentelemetry-exporter-otlp-proto-http
    python export_otel.py
"""

from __future__ import annotations

import socket
from decimal import Decimal

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from faremeter import Meter, Usage
from faremeter.export import otel

COLLECTOR = ("127.0.0.1", 4318)


def collector_listening() -> bool:
    try:
        with socket.create_connection(COLLECTOR, timeout=0.2):
            return True
    except OSError:
        return False


provider = TracerProvider()
memory = InMemorySpanExporter()
if collector_listening():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = f"http://{COLLECTOR[0]}:{COLLECTOR[1]}/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    print(f"exporting to the collector at {endpoint}")
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)

meter = Meter(ledger="memory")
otel.instrument(meter)  # the global provider; or otel.instrument(meter, tracer_provider=provider)

# An application span (e.g. the web request) around an agent run: the run joins its trace.
tracer = trace.get_tracer("my-app")
with tracer.start_as_current_span("POST /research"), meter.trace("research", user_id="u-42") as t:
    meter.record_llm("gpt-4o", Usage(input_tokens=12_000, output_tokens=800), provider="openai")
    meter.record_tool("web_search", cost=Decimal("0.005"))
    meter.record_llm("gpt-4o-mini", Usage(input_tokens=3_000, output_tokens=400))

provider.force_flush()
spans = sorted(memory.get_finished_spans(), key=lambda s: s.start_time or 0)
total = Decimal(0)
for span in spans:
    attrs = span.attributes or {}
    direct = attrs.get("faremeter.cost.direct")
    if isinstance(direct, float):
        total += Decimal(repr(direct))
    cost = f"${direct:.6f}" if isinstance(direct, float) else "-"
    print(f"{span.name:<24} direct {cost:<10} user.id={attrs.get('user.id', '-')}")
print(f"sum of faremeter.cost.direct: ${total:.6f} | t.cost: ${t.cost:.6f}")
app_span = next(s for s in spans if s.name == "POST /research")
assert app_span.context is not None
print("joined the application's trace:", t.trace_id == f"{app_span.context.trace_id:032x}")
