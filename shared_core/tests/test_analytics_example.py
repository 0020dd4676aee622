"""The analytics docs example runs offline and says what the page says it does."""

from __future__ import annotations

import runpy
from decimal import Decimal
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "analytics_report.py"


def test_analytics_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    result = runpy.run_path(str(EXAMPLE))["main"]()
    out = capsys.readouterr().out
    assert "outliers above" in out and "plan > web_search > summarize > write_report" in out
    assert "per resolved ticket" in out
    w = result["what_if"]
    assert w.calls > 0 and Decimal(0) < w.what_if < w.recorded
    assert len(result["alerts"]) == 1 and "web_search 5 times" in result["alerts"][0]
    assert result["suggestions"] >= 5
