"""The demo's numbers, read back from the ledger — never from the run's own counters.

Every amount here is a ledger query filtered on the run's ``demo_run``
attribute, so the report's total *is* the sum of the spans stored, and the
comparison between the optimised and the baseline run is the difference of
two ledgers' totals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from faremeter.alerts import Alert
from faremeter.ledger import CostRow, Ledger
from faremeter.spans import AttributeValue, SpanKind, SpanStatus
from faremeter_langchain.demo.run import RUN_ATTRIBUTE, RunResult

__all__ = ["Comparison", "DemoReport", "RunTotals", "TraceLine", "build_report", "run_totals"]

_ZERO = Decimal(0)
_QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunTotals:
    """One run's spend as its ledger has it."""

    run_id: str
    optimized: bool
    total: Decimal
    llm: Decimal
    tool: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class Comparison:
    """The optimised run against the baseline (same tasks, all gpt-4o, no cache)."""

    optimized: RunTotals
    baseline: RunTotals

    @property
    def saved(self) -> Decimal:
        """What optimising saved: baseline total minus optimised total."""
        return self.baseline.total - self.optimized.total

    @property
    def saved_routing(self) -> Decimal:
        """LLM spend the router saved (baseline LLM minus optimised LLM)."""
        return self.baseline.llm - self.optimized.llm

    @property
    def saved_tools(self) -> Decimal:
        """Tool spend the cache saved (baseline tools minus optimised tools)."""
        return self.baseline.tool - self.optimized.tool

    @property
    def saved_fraction(self) -> Decimal:
        """``saved`` as a fraction of the baseline (0 for an empty baseline)."""
        return self.saved / self.baseline.total if self.baseline.total else _ZERO


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceLine:
    """One of the most expensive traces."""

    trace_id: str
    task_id: str
    user_id: str
    workflow: str
    cost: Decimal
    spans: int
    capped: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoReport:
    """Everything ``faremeter demo`` prints about the recorded run."""

    totals: RunTotals
    tasks: int
    spans: int
    per_task: dict[float, Decimal]
    by_user: tuple[CostRow, ...]
    by_step: tuple[CostRow, ...]
    top: tuple[TraceLine, ...]
    tool_calls: int
    cache_hits: int
    cache_saved: Decimal
    rate_limited: int
    fallback_models: dict[str, int]
    """Model → calls it answered after another model's 429."""
    denials: int
    capped: tuple[str, ...]
    anomalies: tuple[Alert, ...]
    comparison: Comparison

    @property
    def cache_hit_rate(self) -> float:
        """Cached tool calls over all tool calls (0 without tool calls)."""
        return self.cache_hits / self.tool_calls if self.tool_calls else 0.0


def run_totals(ledger: Ledger, result: RunResult) -> RunTotals:
    """A run's total, LLM and tool spend from ``ledger``."""
    split = ledger.cost_split(where={RUN_ATTRIBUTE: result.run_id})
    return RunTotals(
        run_id=result.run_id,
        optimized=result.optimized,
        total=split.total,
        llm=split.llm,
        tool=split.tool,
    )


def build_report(
    ledger: Ledger, result: RunResult, other_ledger: Ledger, other: RunResult, *, top: int = 5
) -> DemoReport:
    """The report of ``result`` (recorded in ``ledger``), compared with ``other``.

    Args:
        ledger: Where ``result`` was recorded.
        result: The run to report on.
        other_ledger: Where the comparison run was recorded.
        other: The same tasks run the other way (baseline vs optimised).
        top: How many expensive traces to list.
    """
    where = {RUN_ATTRIBUTE: result.run_id}
    totals = run_totals(ledger, result)
    others = run_totals(other_ledger, other)
    comparison = (
        Comparison(optimized=totals, baseline=others)
        if result.optimized
        else Comparison(optimized=others, baseline=totals)
    )
    [dist] = ledger.percentiles(by=RUN_ATTRIBUTE, quantiles=_QUANTILES, where=where) or [None]
    per_task = dict(dist.quantiles) if dist is not None else dict.fromkeys(_QUANTILES, _ZERO)

    spans = ledger.spans(where=where)
    tools = [s for s in spans if s.kind is SpanKind.TOOL and s.status is not SpanStatus.DENIED]
    hits = [s for s in tools if s.status is SpanStatus.CACHED]
    llm = [s for s in spans if s.kind is SpanKind.LLM]
    fallback_models: Counter[str] = Counter()
    last_limited: dict[str, bool] = {}
    for s in llm:  # oldest first: the call right after a 429 in the same node is the fallback
        key = f"{s.trace_id}:{s.parent_span_id}"
        if s.error_class == "rate_limit":
            last_limited[key] = True
        elif last_limited.pop(key, False) and s.model:
            fallback_models[s.model] += 1
    capped_ids = set(result.capped)
    roots = {s.trace_id: s for s in spans if s.parent_span_id is None}
    lines: list[TraceLine] = []
    for t in ledger.top_traces(top, where=where):
        root = roots.get(t.trace_id)
        attrs: Mapping[str, AttributeValue] = root.attributes if root is not None else {}
        task_id = str(attrs.get("task_id", "?"))
        lines.append(
            TraceLine(
                trace_id=t.trace_id,
                task_id=task_id,
                user_id=str(attrs.get("user_id", "?")),
                workflow=str(attrs.get("workflow", "?")),
                cost=t.cost,
                spans=t.spans,
                capped=task_id in capped_ids,
            )
        )
    return DemoReport(
        totals=totals,
        tasks=result.tasks,
        spans=len(spans),
        per_task=per_task,
        by_user=tuple(r for r in ledger.cost_by("user_id", where=where) if r.key is not None),
        by_step=tuple(r for r in ledger.cost_by("step", where=where) if r.key is not None),
        top=tuple(lines),
        tool_calls=len(tools),
        cache_hits=len(hits),
        cache_saved=sum((s.saved or _ZERO for s in hits), _ZERO),
        rate_limited=sum(1 for s in llm if s.error_class == "rate_limit"),
        fallback_models=dict(fallback_models),
        denials=sum(1 for s in spans if s.status is SpanStatus.DENIED and s.kind in _CALLS),
        capped=result.capped,
        anomalies=result.anomalies,
        comparison=comparison,
    )


_CALLS = frozenset({SpanKind.LLM, SpanKind.TOOL})
