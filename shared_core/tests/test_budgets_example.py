"""The budgets docs example runs offline and shows what the page says."""

from __future__ import annotations

import runpy
from decimal import Decimal
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "budgets_basic.py"


def test_budgets_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    result = runpy.run_path(str(EXAMPLE))["main"]()
    out = capsys.readouterr().out
    lines = [line for _, line in result["outcomes"]]
    assert [line.split(":")[0].split(" (")[0] for line in lines] == [
        "ran",
        "ran",
        "ran",
        "refused by per-task",
        "ran",
        "ran",
        "ran",
        "ran",
        "refused by research-monthly",
        "ran",
    ]
    assert "fitted to max_tokens=" in lines[6]
    assert lines[8].endswith("return the partial answer")
    status = {(r.budget, r.subject): r for r in result["status"]}
    team = status[("research-monthly", None)]
    assert team.spent <= team.limit  # degrade kept the team inside its limit
    assert status[("per-task", "task-1")].spent <= Decimal("0.10")
    assert status[("per-user-daily", "grace")].spent > 0
    kinds = [a.kind for a in result["alerts"]]
    assert kinds.count("budget.denied") == 2
    assert "worst case of one call" in out
