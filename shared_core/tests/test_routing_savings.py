"""The routed-call savings report: chosen model per step, saved against the baseline."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from faremeter import Meter, Usage
from faremeter.cli import main
from faremeter.cost import format_usd
from faremeter.routing.savings import routed_report
from faremeter.testing import make_test_meter


def _route(chosen: str) -> dict[str, Any]:
    return {"route.model": chosen, "route.baseline_model": "gpt-4o"}


def _routed(
    meter: Meter, model: str, usage: Usage, *, chosen: str, step: str, status: str = "ok"
) -> None:
    meter.record_llm(
        model,
        usage,
        status=status,
        step=step,
        **_route(chosen),
    )


def test_savings_are_the_same_usage_priced_on_the_baseline() -> None:
    meter = make_test_meter()
    cat = meter.catalog
    u1 = Usage(input_tokens=1200, output_tokens=300)
    u2 = Usage(input_tokens=50, output_tokens=10)
    _routed(meter, "gpt-4o-mini", u1, chosen="gpt-4o-mini", step="parse")
    _routed(meter, "gpt-4o-mini", u1, chosen="gpt-4o-mini", step="parse")
    _routed(meter, "gpt-4o", u2, chosen="gpt-4o", step="draft")
    meter.record_llm("gpt-4o-mini", u2, step="parse")  # not routed: not in the report
    meter.flush()

    report = routed_report(meter.ledger, cat)

    mini = cat.cost("gpt-4o-mini", u1).total
    big = cat.cost("gpt-4o", u1).total
    assert mini is not None and big is not None
    assert [(r.step, r.chosen, r.calls) for r in report.rows] == [
        ("draft", "gpt-4o", 1),
        ("parse", "gpt-4o-mini", 2),
    ]
    parse = report.rows[1]
    assert parse.cost == 2 * mini
    assert parse.baseline_cost == 2 * big
    assert parse.saved == 2 * (big - mini)
    draft = report.rows[0]
    assert draft.saved == Decimal(0)  # the baseline itself was chosen
    assert report.saved == 2 * (big - mini)
    assert report.calls == 3
    assert isinstance(report.saved, Decimal)
    assert report.by_model()["gpt-4o-mini"] == (2, 2 * mini, 2 * (big - mini))


def test_fallback_rows_and_skipped_statuses() -> None:
    meter = make_test_meter()
    u = Usage(input_tokens=100, output_tokens=100)
    _routed(meter, "gpt-4o-mini", Usage(input_tokens=100, output_tokens=0), chosen="gpt-4o-mini",
            step="s", status="error")  # fmt: skip
    _routed(meter, "gpt-4.1-mini", u, chosen="gpt-4o-mini", step="s")
    _routed(meter, "gpt-4o-mini", u, chosen="gpt-4o-mini", step="s", status="cached")
    meter.flush()

    report = routed_report(meter.ledger, meter.catalog)

    assert report.fallback_calls == 1
    fb = next(r for r in report.rows if r.fallback)
    assert fb.model == "gpt-4.1-mini"
    assert fb.chosen == "gpt-4o-mini"
    assert report.calls == 2  # the cache hit reached no provider


def test_unpriced_calls_are_counted_not_compared() -> None:
    meter = make_test_meter()
    attrs: dict[str, Any] = {
        "route.model": "my-private-model",
        "route.baseline_model": "gpt-4o",
    }
    meter.record_llm("my-private-model", Usage(input_tokens=10, output_tokens=10), **attrs)
    meter.flush()
    report = routed_report(meter.ledger, meter.catalog)
    assert report.calls == 0
    assert report.rows[0].unpriced == 1
    assert report.saved == Decimal(0)


def test_empty_ledger() -> None:
    meter = make_test_meter()
    report = routed_report(meter.ledger, meter.catalog)
    assert report.rows == ()
    assert report.saved == Decimal(0)


def test_cli_report_routed_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich would shorten cells on a narrow capture
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    meter = Meter(ledger=url)
    u = Usage(input_tokens=1000, output_tokens=500)
    _routed(meter, "gpt-4o-mini", u, chosen="gpt-4o-mini", step="summarize")
    meter.flush()
    expected = routed_report(meter.ledger, meter.catalog)
    meter.close()

    assert main(["report", "--routed", "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert "summarize" in out and "gpt-4o-mini" in out and "gpt-4o" in out
    assert format_usd(expected.saved) in out
    assert expected.saved > 0


def test_cli_report_routed_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    existing = Meter(ledger=url, _register=False)  # a ledger with no routed calls in it
    existing.record_tool("lookup", cost="0")
    existing.close()
    assert main(["report", "--routed", "--ledger", url]) == 0
    assert "No routed calls" in capsys.readouterr().out
