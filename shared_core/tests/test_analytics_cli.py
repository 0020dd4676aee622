"""``faremeter report --paths/--outliers``, ``suggest``, ``whatif`` and ``outcomes``."""

from __future__ import annotations

from pathlib import Path

import pytest

from faremeter.analytics.sample import sample_workload
from faremeter.cli import main
from faremeter.ledger import Ledger
from faremeter.pricing import PriceCatalog


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger.from_url(url) as led:
        for s in sample_workload(PriceCatalog.default(), traces=120):
            led.record(s)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_report_paths_and_outliers(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "report", "--paths", "--ledger", url)
    assert "Most frequent paths" in out and "plan > web_search > summarize > write_report" in out
    out = run(capsys, "report", "--outliers", "--factor", "3", "--ledger", url)
    assert "> 3x the median" in out and "Outlier traces" in out and "research-agent" in out


def test_suggest_whatif_outcomes(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "suggest", "--ledger", url)
    for kind in ("cheaper_model", "tool_cache", "budget_hits", "prompt_cache", "retry_backoff"):
        assert kind in out
    out = run(capsys, "whatif", "--model", "gpt-4o-mini", "--step", "summarize", "--ledger", url)
    assert "gpt-4o-mini would have saved" in out and "gpt-4o " in out
    out = run(capsys, "outcomes", "--ledger", url)
    assert "ticket_resolved" in out and "support" in out
    out = run(capsys, "whatif", "--model", "gpt-4o", "--step", "nope", "--ledger", url)
    assert "No priced LLM calls" in out


def test_bad_arguments_are_reported(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suggest", "--cheaper", "gpt-4o", "--ledger", url]) == 2
    assert "MODEL=CHEAPER" in capsys.readouterr().err
    assert main(["whatif", "--model", "gpt-4o-mimi", "--ledger", url]) == 2
    assert "gpt-4o-mini" in capsys.readouterr().err  # close match suggested
