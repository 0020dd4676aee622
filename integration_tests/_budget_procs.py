"""Run the budget worker in several processes at once and collect their results."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("_budget_worker.py")


def run_workers(url: str, procs: int, calls: int, directory: Path) -> list[dict[str, Any]]:
    """Start ``procs`` workers of ``calls`` threads, release them together, wait for all."""
    children = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(i), str(calls), str(directory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(procs)
    ]
    while len(list(directory.glob("ready-*"))) < procs:
        if any(c.poll() is not None for c in children):
            break
        time.sleep(0.005)
    (directory / "go").touch()
    results: list[dict[str, Any]] = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
