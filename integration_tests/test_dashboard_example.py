"""The dashboard docs example runs offline and prints what the panels say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the dashboard extra (starlette, uvicorn) is not installed")

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "dashboard_local.py"


def test_dashboard_example_runs_and_reports_the_panels() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "spent $0.84938 in 87 spans" in out
    assert "1 outlier task(s) above $0.061" in out and "cost $0.345" in out
    assert "P50 $0.0305  P90 $0.03948  P99 $0.345" in out
    assert "top opportunity: write: 18 gpt-4o calls" in out
    assert "runaway task tree: plan, web_search, web_search, write (total $0.345)" in out
