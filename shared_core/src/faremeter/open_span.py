"""Spans that have started but not ended, and the per-trace running totals.

An :class:`OpenSpan` is the only mutable object on the recording path. Adapters
whose frameworks report start and end as separate callbacks (LangChain's
``run_id``, LlamaIndex's span ids) hold one between the two; ``with`` blocks
hold one for their body. Ending it freezes a :class:`SpanRecord`, prices it if
needed, adds it to its trace's running total and hands it to the ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from faremeter.cost import ZERO, Cost
from faremeter.spans import AttributeValue, SpanKind, SpanRecord, SpanStatus
from faremeter.tree import TraceTree
from faremeter.usage import Usage

if TYPE_CHECKING:
    from faremeter.meter import Meter

__all__ = ["OpenSpan", "TraceState"]


class TraceState:
    """What this process knows of one trace: its finished spans and running cost.

    Shared by every span of the trace, possibly across threads. Recording a
    span only appends to :attr:`records` (atomic in CPython), so the hot path
    takes no lock; :attr:`cost` and :attr:`unpriced` fold in the records added
    since the last read, under the lock. It lives as long as something
    references it (an open span or a trace handle), so a long-lived process
    does not accumulate finished traces.
    """

    __slots__ = ("_cost", "_folded", "_lock", "_opened", "_unpriced", "records", "root", "trace_id")

    def __init__(self, trace_id: str, opened: int = 0) -> None:
        self.trace_id = trace_id
        self.records: list[SpanRecord] = []
        self.root: OpenSpan | None = None
        self._opened = opened  # spans ever started in this trace (in this process)
        self._cost: Decimal = ZERO
        self._unpriced = 0
        self._folded = 0  # records already summed into _cost / _unpriced
        self._lock = threading.Lock()

    def opened(self) -> None:
        """Count a span that started and has not ended yet (see :attr:`pending`)."""
        with self._lock:
            self._opened += 1

    def add(self, record: SpanRecord) -> None:
        """Count a finished span into the trace (its cost is summed when read)."""
        self.records.append(record)

    def _fold(self) -> None:
        with self._lock:
            records = self.records
            end = len(records)
            cost, unpriced = self._cost, self._unpriced
            for record in records[self._folded : end]:
                total = record.cost.total
                if total is None:
                    unpriced += 1
                else:
                    cost += total
            self._cost, self._unpriced, self._folded = cost, unpriced, end

    @property
    def cost(self) -> Decimal:
        """The sum of the priced costs of the spans finished so far."""
        if self._folded != len(self.records):
            self._fold()
        return self._cost

    @property
    def unpriced(self) -> int:
        """How many finished spans could not be priced."""
        if self._folded != len(self.records):
            self._fold()
        return self._unpriced

    @property
    def open_spans(self) -> int:
        """Spans started and not finished (may dip below 0 transiently across threads)."""
        return self._opened - len(self.records)

    @property
    def pending(self) -> int:
        """Spans of this trace started and not yet finished (calls still in flight).

        A trace whose block has exited can still have calls in flight: LiteLLM
        ends sync calls on its logging thread, streams end when drained. Their
        cost is not in :attr:`cost` yet; ``meter.flush()`` waits for them.
        """
        return max(self.open_spans, 0)

    def tree(self) -> TraceTree:
        """The tree of spans finished so far, plus open ancestors as placeholders."""
        with self._lock:
            records = list(self.records)
        open_ids = {r.span_id for r in records}
        root = self.root
        if root is not None and root.span_id not in open_ids:
            records.append(root.snapshot())
        return TraceTree.from_spans(self.trace_id, records)


class OpenSpan:
    """A span between its start and its end.

    Attributes may be added while it is open (e.g. the model a router chose);
    :meth:`end` is idempotent so double callbacks never double-record.
    """

    __slots__ = (
        "_ended",
        "attributes",
        "kind",
        "meter",
        "model",
        "name",
        "parent",
        "parent_span_id",
        "provider",
        "span_id",
        "start_ns",
        "tags",
        "trace",
        "wrapper",
    )

    def __init__(
        self,
        *,
        meter: Meter,
        trace: TraceState,
        span_id: str,
        parent_span_id: str | None,
        name: str,
        kind: SpanKind,
        start_ns: int,
        attributes: dict[str, AttributeValue],
        model: str | None = None,
        provider: str | None = None,
        tags: tuple[str, ...] = (),
        parent: OpenSpan | None = None,
    ) -> None:
        self.meter = meter
        self.trace = trace
        self.span_id = span_id
        self.parent = parent  # the open parent object, for current_span() and wrapper marking
        self.wrapper = False  # a model call another model call was made inside (priced below)
        self.parent_span_id = parent_span_id
        self.name = name
        self.kind = kind
        self.start_ns = start_ns
        self.attributes = attributes
        self.model = model
        self.provider = provider
        self.tags = tags
        self._ended = False

    @property
    def trace_id(self) -> str:
        """The id of the trace this span belongs to."""
        return self.trace.trace_id

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` already ran."""
        return self._ended

    def set_attributes(self, **attrs: Any) -> None:
        """Add attribution known only after the start (e.g. a routing decision)."""
        from faremeter.context import clean_attributes

        self.attributes.update(clean_attributes(attrs))

    def end(
        self,
        *,
        status: SpanStatus | str = SpanStatus.OK,
        usage: Usage | None = None,
        model: str | None = None,
        provider: str | None = None,
        cost: Cost | None = None,
        saved: Decimal | None = None,
        error: BaseException | str | None = None,
        error_class: str | None = None,
        end_ns: int | None = None,
        content: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> SpanRecord | None:
        """Finish the span: price it, add it to its trace and send it to the ledger.

        Args:
            status: How it ended.
            usage: Token counts, for LLM and embedding spans.
            model: The model that actually answered (overrides the start's).
            provider: The provider, if learned at the end.
            cost: A cost known by other means (tool-reported, cache hit);
                otherwise LLM/embedding spans are priced from ``usage`` and
                tool spans from the catalog's tool prices.
            saved: What a cache hit saved.
            error: The exception (or its description) for an error span.
            error_class: Normalised error class, when the caller knows it.
            end_ns: End time; defaults to now.
            content: Prompts/responses; dropped unless the meter stores content.
            attributes: Extra attribution learned at the end.

        Returns:
            The record, or ``None`` if the span had already ended.
        """
        if self._ended:
            return None
        self._ended = True
        return self.meter._finish(  # pyright: ignore[reportPrivateUsage]
            self,
            status=status if type(status) is SpanStatus else SpanStatus(status),
            usage=usage,
            model=model,
            provider=provider,
            cost=cost,
            saved=saved,
            error=error,
            error_class=error_class,
            end_ns=end_ns,
            content=content,
            attributes=attributes,
        )

    def _end_as(
        self,
        status: SpanStatus,
        usage: Usage | None,
        model: str | None,
        provider: str | None,
        cost: Cost | None,
        saved: Decimal | None,
        error: BaseException | str | None,
        error_class: str | None,
        end_ns: int | None,
        content: Mapping[str, Any] | None,
        attributes: Mapping[str, Any] | None,
    ) -> SpanRecord | None:
        """:meth:`end` for the call lifecycle's hot path: positional, status already a member.

        Keyword passing through two layers costs about as much as pricing a
        call; :class:`faremeter.calls.CallTracker` ends every adapter span here.
        """
        if self._ended:
            return None
        self._ended = True
        return self.meter._finish(  # pyright: ignore[reportPrivateUsage]
            self,
            status,
            usage,
            model,
            provider,
            cost,
            saved,
            error,
            error_class,
            end_ns,
            content,
            attributes,
        )

    def snapshot(self) -> SpanRecord:
        """A provisional record of this still-open span (zero cost, now as end)."""
        return SpanRecord(
            trace_id=self.trace.trace_id,
            span_id=self.span_id,
            parent_span_id=self.parent_span_id,
            name=self.name,
            kind=self.kind,
            start_ns=self.start_ns,
            end_ns=self.meter.clock(),
            model=self.model,
            provider=self.provider,
            attributes=dict(self.attributes),
            tags=self.tags,
        )

    def __repr__(self) -> str:
        return (
            f"OpenSpan(name={self.name!r}, kind={self.kind.value}, "
            f"trace_id={self.trace.trace_id}, span_id={self.span_id})"
        )
