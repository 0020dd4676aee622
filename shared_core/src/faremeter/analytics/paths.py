"""Workflow path analysis: which sequences of steps and tools tasks take.

Two agents with the same average cost can hide one cheap common path and one
expensive rare loop. Grouping traces by their path (the ledger's
:meth:`~faremeter.ledger.Ledger.trace_paths`) shows both: the most frequent
paths and the paths that cost the most in all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from faremeter.ledger import Ledger, TracePath

__all__ = ["PathReport", "PathStats", "group_paths", "path_analysis"]

SEPARATOR = " > "


@dataclass(frozen=True, kw_only=True, slots=True)
class PathStats:
    """Traces that went through one sequence of steps and tools.

    Attributes:
        path: The elements, in order.
        traces: How many traces took it.
        total: Their summed cost.
        mean: ``total / traces``.
        max: The most expensive of them.
        share: Fraction of all traces' cost spent on this path.
        example_trace: The most expensive trace that took it.
    """

    path: tuple[str, ...]
    traces: int
    total: Decimal
    mean: Decimal
    max: Decimal
    share: Decimal
    example_trace: str

    @property
    def label(self) -> str:
        """``parse > search > summarize``."""
        return SEPARATOR.join(self.path)


@dataclass(frozen=True, kw_only=True, slots=True)
class PathReport:
    """Paths ranked two ways.

    Attributes:
        most_frequent: By trace count (ties: total cost, then label).
        most_expensive: By total cost (ties: trace count, then label).
        traces: Traces analysed.
        total: Their summed cost.
    """

    most_frequent: Sequence[PathStats]
    most_expensive: Sequence[PathStats]
    traces: int
    total: Decimal


def group_paths(paths: Sequence[TracePath]) -> list[PathStats]:
    """Group per-trace paths into :class:`PathStats` (unsorted)."""
    total = sum((p.cost for p in paths), Decimal(0))
    acc: dict[tuple[str, ...], list[TracePath]] = {}
    for p in paths:
        acc.setdefault(p.elements, []).append(p)
    out: list[PathStats] = []
    for path, members in acc.items():
        spent = sum((m.cost for m in members), Decimal(0))
        top = max(members, key=lambda m: (m.cost, m.trace_id))
        out.append(
            PathStats(
                path=path,
                traces=len(members),
                total=spent,
                mean=spent / len(members),
                max=top.cost,
                share=spent / total if total else Decimal(0),
                example_trace=top.trace_id,
            )
        )
    return out


def path_analysis(
    ledger: Ledger,
    *,
    top: int = 10,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
) -> PathReport:
    """The ``top`` most frequent and most expensive paths in the window."""
    paths = ledger.trace_paths(since=since, until=until, where=where)
    stats = group_paths(paths)
    frequent = sorted(stats, key=lambda s: (-s.traces, -s.total, s.label))[:top]
    expensive = sorted(stats, key=lambda s: (-s.total, -s.traces, s.label))[:top]
    return PathReport(
        most_frequent=tuple(frequent),
        most_expensive=tuple(expensive),
        traces=len(paths),
        total=sum((p.cost for p in paths), Decimal(0)),
    )
