from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from faremeter import Meter
from faremeter.cli import main


def test_demo_records_seed001_into_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert main(["demo", "--single", "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert "$0.129" in out and "$0.013" in out and "$0.142" in out
    m = Meter(ledger=url)
    rows = m.ledger.cost_by("workflow")
    assert [(r.key, r.cost) for r in rows] == [("research", Decimal("0.142"))]
    assert len([r for r in m.ledger.cost_by("step") if r.key is not None]) == 10
    trace_id = m.ledger.top_traces(1)[0].trace_id
    m.close()

    assert main(["report", "--by", "step", "--ledger", url]) == 0
    report = capsys.readouterr().out
    assert "write_report" in report and "p50" in report

    assert main(["trace", trace_id, "--ledger", url]) == 0
    tree = capsys.readouterr().out
    assert "research-agent" in tree and "web_search" in tree and "$0.142" in tree

    assert main(["trace", "0" * 32, "--ledger", url]) == 2  # one error line, exit 2


def test_default_demo_command_runs_in_a_fresh_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAREMETER_")}
    result = subprocess.run(
        [sys.executable, "-m", "faremeter.cli", "demo", "--tasks", "20"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".faremeter" / "ledger.db").exists()
    assert "Research agent on LangGraph" in result.stdout and "Next:" in result.stdout
