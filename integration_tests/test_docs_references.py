"""User docs never point at internal material a reader cannot see.

The project's design notes and source requirements are not shipped: a page
that says "see DESIGN §3" or "seed 002's tracker" sends a newcomer to a file
that does not exist. Say what is meant instead ("a coordinator/sub-agent
hierarchy", "the 10-step research agent").
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _docs_blocks import ROOT, doc_files

INTERNAL = re.compile(r"(?i:\bseeds? ?\d{3}\b|\bseeds/)|\bDESIGN\b|DESIGN\.md|§")


def _user_files() -> list[Path]:
    return [*doc_files(), *sorted((ROOT / "docs" / "examples").glob("*.py"))]


@pytest.mark.parametrize("path", _user_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_internal_references(path: Path) -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if INTERNAL.search(line)
    ]
    assert not hits, "internal references in user docs:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    ("text", "internal"),
    [
        ("the trap in seed 002's tracker", True),
        ("see DESIGN §3 Router", True),
        ("requirements in seeds/001.txt", True),
        ("--seed SEED  workload seed (default: 2026)", False),
        ("a design decision", False),
    ],
)
def test_pattern(text: str, internal: bool) -> None:
    assert bool(INTERNAL.search(text)) is internal
