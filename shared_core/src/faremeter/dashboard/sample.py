"""A small, known workload to look at the dashboard without an agent.

``faremeter dashboard`` over an empty ledger shows nothing; this fills a
meter with a day of a research agent's runs — spread over six hours, three
users on two teams, one runaway task, cached and routed calls and a failed
call — so every panel has something to show. Tests use the same workload
because every amount in it is known in advance.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from faremeter.cost import Cost
from faremeter.usage import Usage

__all__ = ["SampleWorkload", "record_sample_workload"]

_HOUR_NS = 3_600 * 10**9
_USERS = (("u1", "search"), ("u2", "search"), ("u3", "support"))
_RUNAWAY = 13
"""The task that runs away; late enough that its hour has a few hours of history."""


class _Steps:
    """Child spans of one task, placed one after another from ``start_ns``."""

    def __init__(self, meter: Any, root: Any, attrs: dict[str, str], start_ns: int) -> None:
        self.meter = meter
        self.root = root
        self.attrs = attrs
        self.clock = start_ns

    def __call__(self, name: str, ms: int, **extra: Any) -> tuple[Any, int]:
        """Start a child lasting ``ms``; returns the open span and its end time."""
        start = self.clock
        self.clock += ms * 1_000_000
        kind = extra.pop("kind", "llm")
        model = extra.pop("model", None)
        span = self.meter.start_span(
            name, kind=kind, parent=self.root, attributes={**self.attrs, **extra},
            model=model, start_ns=start,
        )  # fmt: skip
        return span, self.clock


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleWorkload:
    """What :func:`record_sample_workload` recorded.

    Attributes:
        trace_ids: Every task, in the order recorded.
        outlier_trace_id: The runaway task (about ten times the usual tokens).
        started_ns: Start of the earliest task (epoch ns).
        ended_ns: End of the last span (epoch ns).
    """

    trace_ids: tuple[str, ...]
    outlier_trace_id: str
    started_ns: int
    ended_ns: int


def record_sample_workload(
    meter: Any, *, tasks: int = 18, hours: int = 6, now_ns: int | None = None
) -> SampleWorkload:
    """Record ``tasks`` research tasks spread over the last ``hours`` hours.

    Each task is an agent span with a planning call and a writing call
    (``gpt-4o``), one or two ``web_search`` calls (the second a cache hit that
    saved $0.005) and, every third task, a summary routed to ``gpt-4o-mini``
    instead of ``gpt-4o``. Task 13 runs away (about ten times the tokens) and task 11's
    writing call fails after being billed. Times are placed explicitly, so the
    same clock gives the same ledger.

    Args:
        meter: The meter to record into (its catalog prices the calls; a
            ``web_search`` tool price of $0.005 is assumed if it has none).
        tasks: How many tasks (at least 8, so the outlier stands out).
        hours: Over how many hours before ``now_ns`` they are spread.
        now_ns: End of the workload; defaults to the meter's clock.
    """
    if tasks < 8:
        raise ValueError(f"tasks must be >= 8, got {tasks}")
    if hours < 1:
        raise ValueError(f"hours must be >= 1, got {hours}")
    now = meter.clock() if now_ns is None else now_ns
    search_price = Cost.of_tool(Decimal("0.005"))
    trace_ids: list[str] = []
    outlier = ""
    first = last = 0
    for i in range(tasks):
        user, team = _USERS[i % len(_USERS)]
        # Oldest first; tasks of one hour are a minute apart.
        t = now - (hours - (i * hours) // tasks) * _HOUR_NS + (i % 7) * 60 * 10**9
        # Ordinary tasks vary from 1× to 2× the base tokens; one runs away.
        scale = 80 if i == _RUNAWAY else 4 + (i * 3) % 5
        attrs = {"workflow": "research", "user_id": user, "team": team}
        root = meter.start_span(
            "research-agent", kind="agent", attributes=attrs, new_trace=True, start_ns=t
        )
        trace_ids.append(root.trace_id)
        if i == _RUNAWAY:
            outlier = root.trace_id
        step = _Steps(meter, root, attrs, t)
        span, end = step("plan", 800, step="plan", model="gpt-4o")
        span.end(usage=Usage(input_tokens=300 * scale, output_tokens=50 * scale), end_ns=end)
        # Four distinct queries, so repeated arguments show up as cacheable.
        span, end = step("web_search", 300, step="search", kind="tool",
                         tool_args_hash=f"q{i % 4}")  # fmt: skip
        span.end(cost=search_price, end_ns=end)
        if i % 2 == 1:
            span, end = step("web_search", 1, step="search", kind="tool")
            span.end(status="cached", cost=Cost(), saved=Decimal("0.005"), end_ns=end)
        if i % 3 == 0:
            span, end = step(
                "summarize", 500, step="summarize", model="gpt-4o-mini",
                **{"route.model": "gpt-4o-mini", "route.baseline_model": "gpt-4o"},
            )  # fmt: skip
            span.end(usage=Usage(input_tokens=2_000, output_tokens=300), end_ns=end)
        span, end = step("write", 1_500, step="write", model="gpt-4o")
        usage = Usage(input_tokens=600 * scale, output_tokens=150 * scale)
        if i == 11:
            span.end(status="error", usage=usage, error="TimeoutError: read timed out", end_ns=end)
        else:
            span.end(usage=usage, end_ns=end)
        root.end(end_ns=step.clock + 1_000_000)
        first = t if i == 0 else min(first, t)
        last = max(last, step.clock + 1_000_000)
    meter.flush()
    return SampleWorkload(
        trace_ids=tuple(trace_ids), outlier_trace_id=outlier, started_ns=first, ended_ns=last
    )
