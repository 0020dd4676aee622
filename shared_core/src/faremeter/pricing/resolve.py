"""How a model name a framework reports maps to a catalog id.

Frameworks and providers spell the same model many ways: ``openai/gpt-4o``,
``GPT-4o``, ``gpt-4o-2024-08-06``, ``claude-sonnet-4-5@20250929``,
``azure/<deployment>``. These helpers generate the candidate ids to try, most
specific first, so a dated snapshot with its own price keeps it and only an
unknown snapshot falls back to its undated family.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["SuggestionIndex", "candidates", "close_matches", "strip_date"]

# Date suffixes providers append to model snapshots, most specific first.
_DATE_SUFFIXES: Final = (
    re.compile(r"^(?P<base>.+?)[-@_](?:19|20)\d{2}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"^(?P<base>.+?)[-@_](?:19|20)\d{6}$"),  # claude-3-5-sonnet-20241022, @20240620
    re.compile(r"^(?P<base>.+?)-(?:0[1-9]|1[0-2])(?:[0-2]\d|3[01])$"),  # gpt-4-0613 (MMDD)
)
_MAX_PREFIXES: Final = 3


def strip_date(name: str) -> str | None:
    """``name`` without a trailing snapshot date, or ``None`` when it has none."""
    for pattern in _DATE_SUFFIXES:
        match = pattern.match(name)
        if match is not None:
            return match.group("base")
    return None


def candidates(name: str) -> Iterator[str]:
    """Ids to try for ``name``, best first.

    The full name, then the full name without its date suffix, then the same
    with each leading ``provider/`` segment removed (``openrouter/openai/gpt-4o``
    → ``openai/gpt-4o`` → ``gpt-4o``).
    """
    current = name
    for _ in range(_MAX_PREFIXES + 1):
        yield current
        undated = strip_date(current)
        if undated is not None:
            yield undated
        if "/" not in current:
            return
        current = current.split("/", 1)[1]
        if not current:
            return


class SuggestionIndex:
    """Known ids prepared once for :func:`close_matches` (lower-cased, by model part)."""

    __slots__ = ("by_tail", "full")

    def __init__(self, known: Iterable[str]) -> None:
        self.by_tail: dict[str, list[str]] = {}
        self.full: dict[str, str] = {}
        for key in known:
            lowered = key.lower()
            self.full.setdefault(lowered, key)
            self.by_tail.setdefault(lowered.rsplit("/", 1)[-1], []).append(key)


def close_matches(name: str, index: SuggestionIndex, *, limit: int = 5) -> list[str]:
    """The known ids closest to ``name``, for an error message.

    Matches the model part (after the last ``/``) against the model part of
    every id first, so ``anthropic/claude-sonet-4-5`` suggests
    ``claude-sonnet-4-5`` rather than whatever shares the provider prefix; the
    full name is compared only when that finds too little. Error path only.
    """
    import difflib  # error path only; keeps it out of `import faremeter`

    wanted = name.strip().lower()
    tail = wanted.rsplit("/", 1)[-1]
    found: dict[str, None] = {}
    for match in difflib.get_close_matches(tail, index.by_tail, n=limit, cutoff=0.6):
        found[min(index.by_tail[match], key=len)] = None  # the bare id over prefixed copies
    if len(found) < limit and tail != wanted:
        for match in difflib.get_close_matches(wanted, index.full, n=limit, cutoff=0.6):
            found[index.full[match]] = None
    return list(found)[:limit]
