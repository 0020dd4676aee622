"""The caching docs example runs offline and shows what the page says."""

from __future__ import annotations

import runpy
from decimal import Decimal
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "caching_tools.py"


def test_caching_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    result = runpy.run_path(str(EXAMPLE))["main"]()
    out = capsys.readouterr().out
    assert result["runs"] == ["faremeter", "ACME", "ACME", "ACME", "ACME"]
    report = result["report"]
    web = report.row("web_search")
    assert (web.hits, web.lookups, web.saved) == (100, 101, Decimal("0.500"))
    llm = report.row("gpt-4o", kind="llm")
    assert (llm.hits, llm.lookups) == (4, 5) and llm.saved == 4 * Decimal("0.0038")
    (suggestion,) = report.suggestions
    assert suggestion.name == "stock_quote" and suggestion.potential_saving == Decimal("0.03")
    assert "consider increasing its TTL" in out and "total saved: $0.5152" in out
