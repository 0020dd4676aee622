"""The router and fallback examples in docs/examples run offline and print what the docs say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "router_tiers.py",
            [
                "parse     -> gpt-4o-mini $0.000420  rule step=parse -> gpt-4o-mini",
                "review    -> o3          $0.016000  rule vip -> tier premium",
                "no capable model in tier standard -> tier premium",
                "pressure  -> gpt-4o-mini default tier standard; budget pressure -> tier economy",
                "headroom  -> gpt-4o-mini",
            ],
        ),
        (
            "fallback_chain.py",
            [
                "attempt:gpt-4o         error  retry",
                "breaker for gpt-4o: open",
                "gpt-4o             skipped  circuit_open",
                "gpt-4o-mini        raise    max_attempts",
            ],
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
        assert line in done.stdout, f"{line!r} not in:\n{done.stdout}"
