"""A deterministic synthetic workload for examples, tests and benchmarks.

Two workflows (``research`` on gpt-4o with a ``web_search`` tool whose
queries often repeat, ``support`` with a cached ``kb_lookup`` and a
``ticket_resolved`` outcome), three teams, two tiers, and the events the
analyses look for: expensive outlier traces, budget denials, quick retries
after failures, repeated prompt prefixes. Spans are priced with the catalog
given, so every number is what faremeter would have charged.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

from faremeter.analytics.outcomes import outcome_span
from faremeter.cost import Cost
from faremeter.ledger.filters import to_ns
from faremeter.pricing import PriceCatalog
from faremeter.spans import AttributeValue, SpanKind, SpanRecord, SpanStatus
from faremeter.usage import Usage

__all__ = ["SAMPLE_START", "sample_workload"]

SAMPLE_START = datetime(2026, 1, 5, tzinfo=UTC)
"""When the sample's first trace starts."""

_TOOL_PRICES = {"web_search": Decimal("0.005"), "kb_lookup": Decimal("0.002")}
_S = 10**9


def sample_workload(
    catalog: PriceCatalog,
    *,
    traces: int = 200,
    start: datetime = SAMPLE_START,
    gap_s: int = 90,
    seed: int = 7,
) -> Iterator[SpanRecord]:
    """Yield the spans of ``traces`` agent runs, one run every ``gap_s`` seconds.

    Every 25th trace is an outlier (its summarize step loops six times over a
    long context); every 40th is stopped by a budget; every 30th retries a
    failed call 20 ms later (no backoff); every 50th support run also calls an
    unpriced model; support runs resolve a ticket 70% of the time.
    """
    rng = random.Random(seed)
    t0 = to_ns(start, "start")
    assert t0 is not None
    for i in range(traces):
        yield from _trace(catalog, rng, i, t0 + i * gap_s * _S)


class _Builder:
    def __init__(
        self, catalog: PriceCatalog, trace_id: str, at: int, attrs: dict[str, AttributeValue]
    ):
        self.catalog = catalog
        self.trace_id = trace_id
        self.at = at
        self.attrs = attrs
        self.n = 0
        self.root = f"{trace_id[:12]}0000"
        self.spans: list[SpanRecord] = []

    def _id(self) -> str:
        self.n += 1
        return f"{self.trace_id[:12]}{self.n:04x}"

    def _tick(self, seconds: float = 1.0) -> tuple[int, int]:
        start = self.at
        self.at += int(seconds * _S)
        return start, self.at

    def llm(
        self, step: str, model: str, tin: int, tout: int, *, status: SpanStatus = SpanStatus.OK,
        wait_s: float = 0.0, **extra: AttributeValue,
    ) -> None:  # fmt: skip
        self.at += int(wait_s * _S)
        start, end = self._tick()
        denied = status is SpanStatus.DENIED
        usage = Usage(input_tokens=tin, output_tokens=tout)
        if denied:
            cost = Cost()
        elif model in self.catalog:
            cost = self.catalog.cost(model, usage)
        else:
            cost = Cost.unpriced(f"unknown model {model!r}", model=model)
        self.spans.append(
            SpanRecord(
                trace_id=self.trace_id, span_id=self._id(), parent_span_id=self.root,
                name=model, kind=SpanKind.LLM, status=status, start_ns=start, end_ns=end,
                model=model, provider="openai", usage=None if denied else usage,
                cost=cost, attributes={**self.attrs, "step": step, **extra},
                error_class="budget" if denied else None,
            )
        )  # fmt: skip

    def tool(self, name: str, args: str, *, cached: bool = False) -> None:
        start, end = self._tick()
        price = _TOOL_PRICES[name]
        self.spans.append(
            SpanRecord(
                trace_id=self.trace_id, span_id=self._id(), parent_span_id=self.root,
                name=name, kind=SpanKind.TOOL,
                status=SpanStatus.CACHED if cached else SpanStatus.OK,
                start_ns=start, end_ns=end,
                cost=Cost() if cached else Cost.of_tool(price),
                saved=price if cached else None,
                attributes={**self.attrs, "step": name, "tool_args_hash": args},
            )
        )  # fmt: skip

    def finish(self, name: str, began: int) -> list[SpanRecord]:
        root = SpanRecord(
            trace_id=self.trace_id, span_id=self.root, name=name, kind=SpanKind.AGENT,
            start_ns=began, end_ns=self.at + _S, attributes=self.attrs,
        )  # fmt: skip
        return [root, *self.spans]


def _trace(catalog: PriceCatalog, rng: random.Random, i: int, at: int) -> list[SpanRecord]:
    workflow = "research" if i % 3 != 2 else "support"
    attrs: dict[str, AttributeValue] = {
        "user_id": f"u{i % 7}",
        "team": ("growth", "core", "ops")[i % 3 if workflow == "research" else 2],
        "workflow": workflow,
        "feature": "pro" if i % 4 == 0 else "free",
    }
    b = _Builder(catalog, f"{i + 1:012x}{'a' * 20}", at + 10**6, attrs)
    if workflow == "research":
        b.llm("plan", "gpt-4o", 600 + rng.randrange(400), 150 + rng.randrange(100))
        if i % 30 == 0:
            b.llm("search_query", "gpt-4o-mini", 300, 0, status=SpanStatus.ERROR)
            b.llm("search_query", "gpt-4o-mini", 300, 40, wait_s=0.02)
        b.tool("web_search", f"q{rng.randrange(6)}")
        b.tool("web_search", f"q{rng.randrange(6)}")
        loops = 6 if i % 25 == 0 else 1
        for k in range(loops):
            b.llm(
                "summarize", "gpt-4o", 3000 + 2000 * k + rng.randrange(1500),
                300 + rng.randrange(300),
                prompt_prefix_hash="research-system-v1", prompt_prefix_tokens=1024,
            )  # fmt: skip
        if i % 40 == 0:
            b.llm("write_report", "gpt-4o", 5000, 800, status=SpanStatus.DENIED)
        else:
            b.llm("write_report", "gpt-4o-mini", 4000 + rng.randrange(2000), 600)
        return b.finish("research-agent", at)
    b.llm("classify", "gpt-4o-mini", 400 + rng.randrange(200), 20)
    if i % 50 == 2:  # a self-hosted model nobody priced: counted, never $0
        b.llm("classify", "acme-llm-1", 400, 20)
    b.tool("kb_lookup", f"kb{rng.randrange(4)}", cached=rng.random() < 0.6)
    b.llm("answer", "gpt-4o", 1500 + rng.randrange(1000), 250 + rng.randrange(200))
    spans = b.finish("support-agent", at)
    if rng.random() < 0.7:
        spans.append(
            outcome_span(
                trace_id=b.trace_id, span_id=b._id(), parent_span_id=b.root,  # pyright: ignore[reportPrivateUsage]
                name="ticket_resolved", at_ns=b.at, attributes=attrs,
            )
        )  # fmt: skip
    return spans
