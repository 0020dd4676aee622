"""Expose faremeter's spend, tokens and budgets on a Prometheus ``/metrics`` endpoint.

Runs offline: it serves on a free loopback port, scrapes itself once and
prints faremeter's series.

    pip install "faremeter[prometheus]"
    python export_prometheus.py
"""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, start_http_server

from faremeter import Meter, Usage
from faremeter.export import prometheus

registry = CollectorRegistry()  # or leave it out to use prometheus_client's global REGISTRY
meter = Meter(ledger="memory")
prometheus.instrument(meter, registry=registry, labels=("team",))

with meter.trace("research", team="search", user_id="u-42"):
    meter.record_llm("gpt-4o", Usage(input_tokens=12_000, output_tokens=800))
    meter.record_llm("gpt-4o-mini", Usage(input_tokens=3_000, output_tokens=400))

# In an app: start_http_server(9464) once at startup (or mount prometheus_client's
# make_asgi_app() / make_wsgi_app() in your web framework).
server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
url = f"http://127.0.0.1:{server.server_port}/metrics"
text = httpx.get(url, timeout=5).text
server.shutdown()

for line in text.splitlines():
    if line.startswith(("faremeter_spend_usd_total", "faremeter_tokens_total")):
        print(line)
