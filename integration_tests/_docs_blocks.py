"""Fenced code blocks of Markdown files, for the docs tests.

See ``test_docs_snippets.py`` for the convention: ``python`` blocks run unless
the last non-blank line before the fence is ``<!-- not-run: reason -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "Block", "doc_files", "extract_blocks"]

ROOT = Path(__file__).resolve().parents[1]

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")
_RUNNABLE = frozenset({"python", "py"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Block:
    """One fenced code block of a Markdown file.

    Attributes:
        line: 1-based line of the first line of code (after the opening fence),
            so compiled code reports tracebacks at the Markdown line.
        language: The info string's first word, lower-cased ("" when none).
        code: The block's text, with the fence's indentation removed.
        not_run: The reason from a preceding ``<!-- not-run: ... -->``, or
            ``None`` when the block is to be run.
    """

    line: int
    language: str
    code: str
    not_run: str | None

    @property
    def runnable(self) -> bool:
        """A Python block without a not-run marker."""
        return self.language in _RUNNABLE and self.not_run is None


def extract_blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, in order.

    Handles fences indented inside list items (the indentation is stripped
    from the code) and longer fences (a ```` ```` ```` block may contain
    ```` ``` ````).

    Raises:
        ValueError: A fence is never closed, or a not-run marker has no reason
            — both would otherwise silently change what runs.
    """
    lines = markdown.splitlines()
    blocks: list[Block] = []
    last_text: str | None = None
    i = 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if match is None:
            if lines[i].strip():
                last_text = lines[i]
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = match["info"].lower()
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        if j >= len(lines):
            raise ValueError(f"line {i + 1}: code fence {fence!r} is never closed")
        not_run: str | None = None
        marker = _NOT_RUN.match(last_text) if last_text is not None else None
        if marker is not None:
            not_run = marker["reason"]
            if not not_run:
                raise ValueError(f"line {i + 1}: <!-- not-run: --> needs a reason")
        blocks.append(
            Block(line=i + 2, language=language, code="\n".join(body) + "\n", not_run=not_run)
        )
        last_text = lines[j]
        i = j + 1
    return blocks


def doc_files() -> list[Path]:
    """README.md, the package pages and every page under docs/."""
    return [
        ROOT / "README.md",
        ROOT / "shared_core" / "README.md",
        *sorted((ROOT / "packages").glob("*/README.md")),
        *sorted((ROOT / "docs").glob("*.md")),
    ]
