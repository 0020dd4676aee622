"""Prometheus metrics over a real HTTP ``/metrics`` endpoint, equal to the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from faremeter import Meter, SpanKind, SpanStatus, Usage
from faremeter.cost import Cost
from faremeter.export import prometheus
from faremeter.testing import make_test_meter

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Status:
    """The fields ``BudgetManager.status()`` entries carry (read duck-typed)."""

    budget: str
    subject: str | None
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    remaining: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class _Budgets:
    statuses: tuple[_Status, ...]

    def status(self) -> list[_Status]:
        return list(self.statuses)


def _serve(registry: CollectorRegistry) -> Iterator[str]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _total(samples: Samples, metric: str, **match: str) -> float:
    return sum(
        value
        for labels, value in samples.get(metric, [])
        if all(labels.get(k) == v for k, v in match.items())
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def url(registry: CollectorRegistry) -> Iterator[str]:
    yield from _serve(registry)


def _record_mix(meter: Meter) -> None:
    with meter.trace("research", team="search", workflow="deep"):
        meter.record_llm(
            "gpt-4o", Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=300)
        )
        meter.record_llm(
            "gpt-4o-mini", Usage(input_tokens=500, output_tokens=800, reasoning_tokens=100)
        )
        meter.record_llm("not-a-real-model-xyz", Usage(input_tokens=5, output_tokens=5))
        meter.record_tool("web_search")
        meter.record_tool("web_search")
        hit = meter.start_span("gpt-4o", kind=SpanKind.LLM, model="gpt-4o")
        hit.end(status=SpanStatus.CACHED, cost=Cost(), saved=Decimal("0.0125"))
        routed = meter.start_span("gpt-4o-mini", kind=SpanKind.LLM, model="gpt-4o-mini")
        routed.set_attributes(**{"route.model": "gpt-4o-mini", "route.tier": "cheap"})
        routed.end(usage=Usage(input_tokens=10, output_tokens=10))
        failed = meter.start_span("gpt-4o", kind=SpanKind.LLM, model="gpt-4o")
        failed.end(status=SpanStatus.FALLBACK, cost=Cost())


def test_metrics_endpoint_equals_the_ledger(registry: CollectorRegistry, url: str) -> None:
    meter = make_test_meter(tools={"web_search": "0.005"})
    prometheus.instrument(meter, registry=registry, labels=("team", "workflow"))
    statuses = (
        _Status(
            budget="daily",
            subject=None,
            limit=Decimal(10),
            spent=Decimal("2.5"),
            reserved=Decimal("0.25"),
            remaining=Decimal("7.25"),
        ),
    )
    meter.budgets = _Budgets(statuses=statuses)
    _record_mix(meter)
    assert meter.flush()
    spans = meter.ledger.spans()
    samples = _scrape(url)

    ledger_spend = sum((s.cost.total for s in spans if s.cost.total is not None), Decimal(0))
    assert _total(samples, "faremeter_spend_usd_total") == pytest.approx(float(ledger_spend))
    assert _total(samples, "faremeter_spend_usd_total", team="search") == pytest.approx(
        float(ledger_spend)
    )
    for label, field in (
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cache_read", "cache_read_tokens"),
        ("reasoning", "reasoning_tokens"),
    ):
        expected = sum(getattr(s.usage, field) for s in spans if s.usage is not None)
        assert _total(samples, "faremeter_tokens_total", type=label) == expected, label
    unpriced = sum(1 for s in spans if s.cost.total is None)
    assert unpriced == 1
    assert _total(samples, "faremeter_unpriced_spans_total") == unpriced
    assert _total(samples, "faremeter_spans_total") == len(spans)
    assert _total(samples, "faremeter_cache_hits_total", name="gpt-4o") == 1
    assert _total(samples, "faremeter_saved_usd_total") == pytest.approx(0.0125)
    assert _total(samples, "faremeter_fallbacks_total", model="gpt-4o") == 1
    assert (
        _total(samples, "faremeter_route_decisions_total", model="gpt-4o-mini", tier="cheap") == 1
    )
    for field in ("limit", "spent", "reserved", "remaining"):
        assert _total(samples, f"faremeter_budget_{field}_usd", budget="daily") == float(
            getattr(statuses[0], field)
        )


def test_budget_store_failure_does_not_break_the_scrape(
    registry: CollectorRegistry, url: str
) -> None:
    class Broken:
        def status(self) -> list[object]:
            raise ConnectionError("redis is down")

    meter = make_test_meter()
    prometheus.instrument(meter, registry=registry)
    meter.budgets = Broken()
    meter.record_llm("gpt-4o", Usage(input_tokens=10, output_tokens=10))
    samples = _scrape(url)
    assert _total(samples, "faremeter_spans_total") == 1
    assert "faremeter_budget_limit_usd" not in samples


def test_per_subject_budgets_are_bounded_to_the_most_used(registry: CollectorRegistry) -> None:
    meter = make_test_meter()
    prometheus.instrument(meter, registry=registry, budget_subjects=3)
    meter.budgets = _Budgets(
        statuses=tuple(
            _Status(
                budget="per-user",
                subject=f"u{i}",
                limit=Decimal(1),
                spent=Decimal(i) / 100,
                reserved=Decimal(0),
                remaining=Decimal(1) - Decimal(i) / 100,
            )
            for i in range(50)
        )
    )
    subjects = {
        sample.labels["subject"]
        for family in registry.collect()
        if family.name == "faremeter_budget_spent_usd"
        for sample in family.samples
    }
    assert subjects == {"u49", "u48", "u47"}


def test_cardinality_stays_bounded_under_10000_users(registry: CollectorRegistry, url: str) -> None:
    meter = make_test_meter()
    prometheus.instrument(meter, registry=registry, labels=("user_id",), max_label_values=50)
    for i in range(10_000):
        meter.record_llm("gpt-4o-mini", Usage(input_tokens=100, output_tokens=10), user_id=f"u{i}")
    assert meter.flush()
    samples = _scrape(url)
    series = samples["faremeter_spend_usd_total"]
    users = {labels["user_id"] for labels, _ in series}
    assert len(users) == 51
    assert prometheus.OTHER in users
    ledger_spend = sum((s.cost.total or Decimal(0) for s in meter.ledger.spans()), Decimal(0))
    assert _total(samples, "faremeter_spend_usd_total") == pytest.approx(float(ledger_spend))
    assert _total(samples, "faremeter_tokens_total", type="input") == 1_000_000


def test_user_id_is_not_a_label_by_default(registry: CollectorRegistry) -> None:
    meter = make_test_meter()
    metrics = prometheus.instrument(meter, registry=registry)
    assert "user_id" not in metrics.label_names
    meter.record_llm("gpt-4o", Usage(input_tokens=1, output_tokens=1), user_id="u1")
    labels = {
        key for family in registry.collect() for sample in family.samples for key in sample.labels
    }
    assert "user_id" not in labels


def test_instrument_is_idempotent_and_uninstrument_stops(registry: CollectorRegistry) -> None:
    meter = make_test_meter()
    prometheus.instrument(meter, registry=registry)
    prometheus.instrument(meter, registry=registry)
    meter.record_llm("gpt-4o", Usage(input_tokens=1, output_tokens=1))
    assert registry.get_sample_value("faremeter_spans_total", _labels("llm", "ok")) == 1
    assert prometheus.uninstrument(meter) is True
    meter.record_llm("gpt-4o", Usage(input_tokens=1, output_tokens=1))
    assert registry.get_sample_value("faremeter_spans_total", _labels("llm", "ok")) == 1
    assert prometheus.uninstrument(meter) is False
    with pytest.raises(ValueError, match="already exports"):
        prometheus.instrument(meter, registry=registry, labels=("tenant",))
    with pytest.raises(ValueError, match="clash"):
        prometheus.instrument(make_test_meter(), registry=CollectorRegistry(), labels=("model",))


def _labels(kind: str, status: str) -> dict[str, str]:
    return {"kind": kind, "status": status, "workflow": "", "team": ""}


_WORKER = textwrap.dedent(
    """
    import json, sys
    from decimal import Decimal
    from faremeter import Usage
    from faremeter.export import prometheus
    from faremeter.testing import make_test_meter

    n = int(sys.argv[1])
    meter = make_test_meter()
    prometheus.instrument(meter)
    for i in range(n):
        meter.record_llm("gpt-4o", Usage(input_tokens=100 + i, output_tokens=10), team="t")
    meter.flush()
    spend = sum((s.cost.total for s in meter.ledger.spans()), Decimal(0))
    print(json.dumps({"spend": str(spend), "spans": len(meter.ledger.spans())}))
    """
)


def test_multiprocess_mode_sums_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two worker processes write counters to PROMETHEUS_MULTIPROC_DIR; one endpoint serves both."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (30, 45)
    ]
    results: list[dict[str, str]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    meter = make_test_meter()
    meter.budgets = _Budgets(
        statuses=(
            _Status(
                budget="fleet",
                subject=None,
                limit=Decimal(100),
                spent=Decimal(1),
                reserved=Decimal(0),
                remaining=Decimal(99),
            ),
        )
    )
    registry = prometheus.multiprocess_registry(meter)
    for endpoint in _serve(registry):
        samples = _scrape(endpoint)
        expected_spend = sum(Decimal(r["spend"]) for r in results)
        assert _total(samples, "faremeter_spend_usd_total") == pytest.approx(float(expected_spend))
        assert _total(samples, "faremeter_spans_total", kind="llm") == 75
        assert _total(samples, "faremeter_tokens_total", type="output") == 750
        assert _total(samples, "faremeter_budget_limit_usd", budget="fleet") == 100


def test_docs_example_runs_offline(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "export_prometheus.py"
    done = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        'faremeter_spend_usd_total{kind="llm",model="gpt-4o",provider="",team="search"} 0.038'
        in done.stdout
    )
    assert (
        'faremeter_tokens_total{model="gpt-4o",team="search",type="input"} 12000.0' in done.stdout
    )


def test_breaker_state_gauge_follows_a_real_circuit_breaker(
    registry: CollectorRegistry, url: str
) -> None:
    from faremeter.fallback.breaker import CircuitBreaker

    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30, clock=lambda: now[0])
    metrics = prometheus.instrument(make_test_meter(), registry=registry)
    metrics.watch_breaker(breaker, ["gpt-4o", "gpt-4o-mini"])
    breaker.record_failure("gpt-4o")
    breaker.record_failure("gpt-4o")
    samples = _scrape(url)
    assert _total(samples, "faremeter_breaker_state", model="gpt-4o") == 2  # open
    assert _total(samples, "faremeter_breaker_state", model="gpt-4o-mini") == 0  # closed
    now[0] = 31.0
    assert breaker.allow("gpt-4o")  # the probe: half-open
    assert _total(_scrape(url), "faremeter_breaker_state", model="gpt-4o") == 1


def test_budget_gauges_equal_the_ledger_with_a_real_budget_manager(
    registry: CollectorRegistry, url: str
) -> None:
    """Calls through an adapter settle a real budget; /metrics shows the same dollars."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    import faremeter_litellm
    from faremeter.budgets import Budget

    meter = make_test_meter(budgets=[Budget(name="daily", limit=Decimal(10), window="day")])
    prometheus.instrument(meter, registry=registry)
    handle = faremeter_litellm.instrument(meter)
    try:
        for text in ("one", "two", "three"):
            litellm.completion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": text}],
                mock_response="hello",
            )
        assert handle.flush()
    finally:
        handle.uninstrument()
    assert meter.flush()
    ledger_spend = sum((s.cost.total or Decimal(0) for s in meter.ledger.spans()), Decimal(0))
    assert ledger_spend > 0
    (status,) = meter.budgets.status()
    assert status.spent == ledger_spend
    samples = _scrape(url)
    assert _total(samples, "faremeter_budget_spent_usd", budget="daily") == pytest.approx(
        float(ledger_spend)
    )
    assert _total(samples, "faremeter_budget_remaining_usd", budget="daily") == pytest.approx(
        float(Decimal(10) - ledger_spend)
    )
    assert _total(samples, "faremeter_budget_limit_usd", budget="daily") == 10
    assert _total(samples, "faremeter_spend_usd_total") == pytest.approx(float(ledger_spend))
