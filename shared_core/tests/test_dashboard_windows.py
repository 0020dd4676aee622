"""Dashboard panels over windows that cut hours and filters the rollup does or does not key on.

The SQLite ledger answers whole hours from its rollups and the rest from its
spans; the memory ledger always reads spans. Every panel must be the same on
both for every window and filter, and the savings panel must equal a hand
count of the spans, stamped baselines, tiered baselines and nameless cache
hits included.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard extra (starlette) is not installed")

from starlette.testclient import TestClient

from faremeter.cost import ZERO, Cost
from faremeter.dashboard.app import create_app
from faremeter.dashboard.sample import record_sample_workload
from faremeter.ledger import Ledger
from faremeter.pricing import PriceCatalog
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage

NOW_NS = 1_767_225_600_000_000_000 + 1_234 * 10**9  # 2026-01-01T00:20:34Z: not on an hour
CATALOG = PriceCatalog.default()
PANELS = ("ticker", "tasks", "distribution", "opportunities", "savings", "anomalies")


def _extra(now: int) -> list[SpanRecord]:
    """Routed calls with a stamped, a bad and a tiered baseline, and cache hits of other kinds."""
    u = Usage(input_tokens=1_200, output_tokens=200)
    mini = CATALOG.cost("gpt-4o-mini", u)
    out: list[SpanRecord] = []

    def add(i: int, **kw: Any) -> None:
        start = now - (3 * 3_600 - i * 700) * 10**9
        fields: dict[str, Any] = {
            "trace_id": f"{0xD000 + i:032x}", "span_id": f"{0xD000 + i:016x}",
            "name": "call", "kind": SpanKind.LLM, "start_ns": start, "end_ns": start + 10**9,
        }  # fmt: skip
        out.append(SpanRecord(**{**fields, **kw}))

    routed = {"route.model": "gpt-4o-mini", "team": "search"}
    add(
        0,
        model="gpt-4o-mini",
        usage=u,
        cost=mini,
        attributes={**routed, "route.baseline_cost": "0.05", "route.baseline_model": "gpt-4o"},
    )
    add(
        1,
        model="gpt-4o-mini",
        usage=u,
        cost=mini,
        attributes={**routed, "route.baseline_cost": "n/a", "route.baseline_model": "gpt-4o"},
    )
    add(
        2,
        model="gpt-4o-mini",
        usage=u,
        cost=mini,
        attributes={**routed, "route.baseline_model": "gemini-2.5-pro"},
    )
    add(3, model="gpt-4o-mini", usage=u, cost=mini, attributes=routed)
    add(
        4,
        model="gpt-4o-mini",
        usage=u,
        cost=mini,
        attributes={**routed, "route.baseline_model": "no-such-model"},
    )
    add(
        5,
        model="gpt-4o",
        usage=u,
        status=SpanStatus.CACHED,
        cost=Cost(),
        saved=Decimal("0.0071"),
        attributes={"step": "write"},
    )
    add(6, name="kb-chain", kind=SpanKind.CHAIN, status=SpanStatus.CACHED, cost=Cost(),
        saved=Decimal("0.0004"))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    meter = make_test_meter()
    record_sample_workload(meter, now_ns=NOW_NS, hours=30, tasks=40)
    spans = [*recorded_spans(meter), *_extra(NOW_NS)]
    meter.close()
    path: Path = tmp_path_factory.mktemp("dash") / "l.db"
    ledgers = {"memory": Ledger.from_url("memory"), "sqlite": Ledger.from_url(f"sqlite:///{path}")}
    for led in ledgers.values():
        for s in spans:
            led.record(s)
        assert led.flush(30)
    out = {name: TestClient(create_app(led, clock=lambda: NOW_NS)) for name, led in ledgers.items()}
    yield out
    for led in ledgers.values():
        led.close()


def _get(client: TestClient, url: str) -> dict[str, Any]:
    r = client.get(url)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.parametrize("window", ["all", "24h", "7d", "1h", "15m"])
@pytest.mark.parametrize("filters", ["", "&attr.step=write", "&attr.model=gpt-4o",
                                     "&attr.team=search", "&attr.status=cached"])  # fmt: skip
def test_sqlite_panels_equal_memory_panels(
    clients: dict[str, TestClient], window: str, filters: str
) -> None:
    for panel in PANELS:
        url = f"/api/{panel}?window={window}{filters}"
        assert _get(clients["sqlite"], url) == _get(clients["memory"], url), url


def test_savings_equal_a_hand_count_of_the_spans(clients: dict[str, TestClient]) -> None:
    body = _get(clients["sqlite"], "/api/savings?window=all")
    by_name = {r["name"]: (Decimal(r["saved"]), r["hits"]) for r in body["cache"]["by_name"]}
    assert by_name["gpt-4o"] == (Decimal("0.0071"), 1)  # an LLM cache hit: named by its model
    assert by_name["kb-chain"] == (Decimal("0.0004"), 1)  # no model, no tool: its span name
    assert by_name["web_search"] == (Decimal("0.005") * 20, 20)
    (routed,) = body["routing"]["by_model"]
    u = Usage(input_tokens=1_200, output_tokens=200)
    mini = CATALOG.cost("gpt-4o-mini", u).total
    sample = Usage(input_tokens=2_000, output_tokens=300)  # the workload's routed summaries
    sample_mini = CATALOG.cost("gpt-4o-mini", sample).total
    assert mini is not None and sample_mini is not None
    baselines = [
        Decimal("0.05"),  # stamped
        CATALOG.cost("gpt-4o", u).total,  # a stamp that is not a number: its baseline model
        CATALOG.cost("gemini-2.5-pro", u).total,  # a tiered baseline, priced per usage
        *[CATALOG.cost("gpt-4o", sample).total] * 14,  # tasks 0, 3, ..., 39
    ]
    assert routed["model"] == "gpt-4o-mini"
    assert routed["calls"] == 5 + 14
    assert body["routing"]["without_baseline"] == 2  # no baseline model; an unknown one
    assert Decimal(routed["baseline"]) == sum((b or ZERO for b in baselines), ZERO)
    assert Decimal(routed["cost"]) == 3 * mini + 14 * sample_mini
    assert Decimal(body["saved"]) == Decimal(body["cache"]["saved"]) + Decimal(
        body["routing"]["saved"]
    )
