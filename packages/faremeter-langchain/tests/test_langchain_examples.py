# pyright: basic
"""The docs' runnable examples run offline and print what the docs page shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "langchain_handler.py",
            ["tool   web_search       $0.005000", "total: $0.018700 | user: u-42"],
        ),
        (
            "langchain_track.py",
            ["trace cost: $0.000342", "cached  gpt-4o-mini $0.000000 saved $0.000171"],
        ),
    ],
)
def test_example_runs(script: str, expected: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for line in expected:
        assert line in done.stdout, done.stdout
