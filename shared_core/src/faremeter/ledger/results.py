"""Value types the ledger hands back.

Every query returns plain frozen dataclasses with :class:`~decimal.Decimal`
money, so reports, the CLI and the dashboard never see a backend's row type
and every backend is held to the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from faremeter.usage import Usage

__all__ = [
    "CostRow",
    "CostSplit",
    "GroupRow",
    "LedgerHealth",
    "OutlierTrace",
    "PercentileRow",
    "PrefixGroup",
    "RepeatGroup",
    "TimeBucket",
    "TopTrace",
    "TotalRow",
    "TracePath",
    "UsageGroup",
    "UsageTotal",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class CostRow:
    """Spend of one value of an attribute (one row of ``cost_by``).

    Attributes:
        key: The attribute value as text (``None``: spans without it).
        cost: Sum of the priced spans' direct cost; each span counted once.
        spans: Spans in the group, priced or not.
        traces: Distinct traces those spans belong to.
        unpriced: Spans whose price was unknown (not summed as $0).
        input_tokens: Sum of input tokens (cache reads/writes included).
        output_tokens: Sum of output tokens (reasoning included).
    """

    key: str | None
    cost: Decimal
    spans: int
    traces: int
    unpriced: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class PercentileRow:
    """Distribution of per-trace total cost for one group of traces.

    A trace belongs to the group of its root span's attribute; its total is
    the sum of every priced span's direct cost in the trace.

    Attributes:
        key: The root attribute's value (``None``: roots without it, or
            traces whose root has not been recorded).
        traces: Traces in the group.
        total: Sum of those traces' totals.
        max: The most expensive trace.
        quantiles: Requested quantile → nearest-rank value (an actual trace's
            total: the smallest total with at least ``q`` of traces at or below).
        unpriced_traces: Traces with at least one unpriced span.
    """

    key: str | None
    traces: int
    total: Decimal
    max: Decimal
    quantiles: Mapping[float, Decimal]
    unpriced_traces: int

    @property
    def p50(self) -> Decimal | None:
        """The median, when 0.5 was requested."""
        return self.quantiles.get(0.5)

    @property
    def p90(self) -> Decimal | None:
        """The 90th percentile, when 0.9 was requested."""
        return self.quantiles.get(0.9)

    @property
    def p99(self) -> Decimal | None:
        """The 99th percentile, when 0.99 was requested."""
        return self.quantiles.get(0.99)


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeBucket:
    """Spend in one UTC hour or day (optionally of one attribute value).

    Attributes:
        start: Start of the bucket, aware UTC.
        key: The ``by`` attribute's value, or ``None`` when not grouped.
        cost: Sum of priced direct costs of spans that started in the bucket.
        spans: Spans that started in the bucket.
        unpriced: Of those, the ones without a price.
    """

    start: datetime
    key: str | None
    cost: Decimal
    spans: int
    unpriced: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TopTrace:
    """One of the most expensive traces.

    Attributes:
        trace_id: The trace.
        root_name: Name of its root span (``None`` if not recorded yet).
        cost: Total of every priced span in it.
        spans: Spans recorded for it.
        unpriced: Of those, the ones without a price.
        started: Earliest span start, aware UTC.
    """

    trace_id: str
    root_name: str | None
    cost: Decimal
    spans: int
    unpriced: int
    started: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class CostSplit:
    """Where the money went by kind of work.

    Attributes:
        llm: Direct cost of ``llm`` and ``embedding`` spans.
        tool: Direct cost of ``tool`` spans.
        other: Everything else (agents, chains, retrieval, cache).
        total: ``llm + tool + other``.
        spans: Spans counted.
        unpriced: Of those, the ones without a price.
    """

    llm: Decimal
    tool: Decimal
    other: Decimal
    total: Decimal
    spans: int
    unpriced: int


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerHealth:
    """What the ledger's writer is doing, for dashboards and health checks.

    Attributes:
        backend: ``memory``, ``sqlite`` or ``postgresql``.
        ok: False while the store is failing, or the writer is gone.
        queued: Spans accepted but not yet written (queue plus in-flight batch).
        written: Spans this process wrote to the store.
        dropped: Spans lost on purpose and counted: ``drop`` overflow, records
            after ``close()``, spans still unwritable when the ledger closed.
        write_failures: Failed write attempts (each is retried with backoff).
        last_error: The most recent storage or internal error, as text.
        last_error_at: When it happened, aware UTC.
        rejected: Spans the store refused as malformed (logged with their id).
        blocked: ``record()`` calls that had to wait for room (``block`` policy).
    """

    backend: str
    ok: bool
    queued: int
    written: int
    dropped: int
    write_failures: int
    last_error: str | None
    last_error_at: datetime | None
    rejected: int = 0
    blocked: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupRow:
    """Spend of one combination of several attributes (one row of ``group_by``).

    Attributes:
        keys: The attribute values as text, in the order asked for (``None``:
            spans without that attribute).
        cost: Sum of the priced spans' direct cost.
        spans: Spans in the group, priced or not.
        traces: Distinct traces those spans belong to.
        unpriced: Spans whose price was unknown (not summed as $0).
        input_tokens: Sum of input tokens.
        output_tokens: Sum of output tokens.
    """

    keys: tuple[str | None, ...]
    cost: Decimal
    spans: int
    traces: int
    unpriced: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class OutlierTrace:
    """A trace that cost more than the outlier rule allows for its group.

    Attributes:
        trace_id: The trace.
        key: Its group (the root's attribute value).
        root_name: Name of its root span.
        cost: Its total.
        median: The group's median trace total (nearest rank).
        ratio: ``cost / median`` (``None`` when the median is $0).
        spans: Spans recorded for it.
        unpriced: Of those, the ones without a price.
        started: Earliest span start, aware UTC.
    """

    trace_id: str
    key: str | None
    root_name: str | None
    cost: Decimal
    median: Decimal
    ratio: Decimal | None
    spans: int
    unpriced: int
    started: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class TracePath:
    """The sequence of steps and tools one trace went through.

    Attributes:
        trace_id: The trace.
        elements: Step names and tool names in start order; a run of the same
            element (a step's LLM call and its chain span, a retried tool)
            counts once.
        cost: The trace's total.
        unpriced: Spans of the trace without a price.
        started: Earliest span start, aware UTC.
    """

    trace_id: str
    elements: tuple[str, ...]
    cost: Decimal
    unpriced: int
    started: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageGroup:
    """Spans with one model, one exact usage and one status (what-if repricing input).

    Attributes:
        key: The ``by`` attribute's value when grouped by one (else ``None``).
        model: The recorded model (``None``: not named).
        usage: The token counts every span of the group reported (``None``: none).
        status: How the spans ended.
        spans: How many.
        cost: Sum of their priced direct costs.
        unpriced: Of those, spans without a price.
    """

    key: str | None = None
    model: str | None
    usage: Usage | None
    status: str
    spans: int
    cost: Decimal
    unpriced: int


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageTotal:
    """Summed usage of spans sharing an attribute value, model, status and pricing state.

    Pricing is linear in every token count (within one long-context tier), so
    repricing the sum prices every span of the group at once; what-if uses it
    whenever the target model has no long-context tiers.

    Attributes:
        key: The ``by`` attribute's value (``None``: not grouped, or without it).
        model: The recorded model.
        status: How the spans ended.
        priced: Whether the spans had a recorded price (groups never mix).
        spans: How many.
        cost: Sum of their recorded direct costs ($0 when not ``priced``).
        tokens: Each :class:`~faremeter.usage.Usage` count summed over the spans
            (``input_tokens``, ``cache_read_tokens``, ...); ``None``: spans
            without usage (groups never mix spans with and without). A plain
            mapping, since a sum may exceed the per-call bound a ``Usage`` enforces.
        saved: Sum of the spans' ``saved`` (what cache hits avoided paying).
    """

    key: str | None
    model: str | None
    status: str
    priced: bool
    spans: int
    cost: Decimal
    tokens: Mapping[str, int] | None
    saved: Decimal = Decimal(0)


@dataclass(frozen=True, kw_only=True, slots=True)
class TotalRow:
    """Additive totals of one combination of attributes (one row of ``totals``).

    The additive half of :class:`GroupRow`: no distinct-trace count, which is
    what lets the ledger answer it from its hourly rollup instead of the spans.

    Attributes:
        keys: The attribute values as text, in the order asked for (``None``:
            spans without that attribute).
        cost: Sum of the priced spans' direct cost.
        spans: Spans in the group, priced or not.
        unpriced: Spans whose price was unknown (not summed as $0).
        saved: Sum of the spans' ``saved`` (cache hits).
        input_tokens: Sum of input tokens.
        output_tokens: Sum of output tokens.
    """

    keys: tuple[str | None, ...]
    cost: Decimal
    spans: int
    unpriced: int
    saved: Decimal
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RepeatGroup:
    """Successful tool calls that repeated their arguments, grouped by how often.

    Calls are grouped by tool and by the ``tool_args_hash`` attribute (a digest
    of the canonical arguments); a group of ``calls`` identical calls holds
    ``calls - 1`` repeats that a cache would have served.

    Attributes:
        tool: The tool's name.
        calls: How many times each of these argument sets was called (>= 2).
        argument_sets: How many distinct argument sets were called exactly ``calls`` times.
        cost: What all those calls cost (``calls x argument_sets`` calls).
    """

    tool: str
    calls: int
    argument_sets: int
    cost: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class PrefixGroup:
    """Model calls that sent the same prompt prefix (one row of ``repeated_prompt_prefixes``).

    Calls are matched on the ``prompt_prefix_hash`` and ``prompt_prefix_tokens``
    attributes (a digest of the prompt's first tokens, and how many): every
    call after the first could have read that prefix from the provider's cache.

    Attributes:
        model: The model called.
        prefix_hash: The prefix's digest.
        prefix_tokens: Its length in tokens, as stamped (text).
        calls: How many calls sent it (>= 2).
    """

    model: str
    prefix_hash: str
    prefix_tokens: str
    calls: int
