"""A trace as a tree with direct, child and total cost per span.

Seed 002's hierarchy: a coordinator's *direct* cost is its own calls, its
*child* cost is everything beneath it, and its *total* is both. Each span's
cost is counted exactly once however deep the tree, which is the invariant the
ledger's aggregate queries rely on too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from faremeter.cost import ZERO, format_usd
from faremeter.spans import SpanRecord, SpanStatus

__all__ = ["TraceNode", "TraceTree"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceNode:
    """One span in a tree, with costs rolled up from its subtree.

    Attributes:
        span: The span itself.
        children: Spans whose parent is this one, in start order.
        direct_cost: This span's own cost (0 when unpriced; see ``unpriced``).
        child_cost: The total cost of every descendant.
        unpriced: How many spans in this subtree (itself included) had no price.
    """

    span: SpanRecord
    children: tuple[TraceNode, ...]
    direct_cost: Decimal
    child_cost: Decimal
    unpriced: int

    @property
    def total_cost(self) -> Decimal:
        """Direct plus child cost."""
        return self.direct_cost + self.child_cost

    def walk(self, depth: int = 0) -> Iterator[tuple[int, TraceNode]]:
        """Depth-first (depth, node) pairs, parents before children."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)

    def find(self, name: str) -> TraceNode | None:
        """The first node in this subtree whose span has ``name``."""
        for _, node in self.walk():
            if node.span.name == name:
                return node
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceTree:
    """All spans of one trace arranged by parent.

    Spans whose parent is missing (not recorded, or recorded in another
    process that has not flushed yet) become extra roots rather than vanishing.
    """

    trace_id: str
    roots: tuple[TraceNode, ...]

    @classmethod
    def from_spans(cls, trace_id: str, spans: Iterable[SpanRecord]) -> TraceTree:
        """Build the tree; spans of other traces are ignored."""
        own = [s for s in spans if s.trace_id == trace_id]
        ids = {s.span_id for s in own}
        by_parent: dict[str | None, list[SpanRecord]] = {}
        for s in sorted(own, key=lambda s: (s.start_ns, s.end_ns)):
            parent = s.parent_span_id if s.parent_span_id in ids else None
            by_parent.setdefault(parent, []).append(s)

        def build(span: SpanRecord, seen: frozenset[str]) -> TraceNode:
            kids = tuple(
                build(c, seen | {span.span_id})
                for c in by_parent.get(span.span_id, ())
                if c.span_id not in seen
            )
            own_total = span.cost.total
            return TraceNode(
                span=span,
                children=kids,
                direct_cost=ZERO if own_total is None else own_total,
                child_cost=sum((k.total_cost for k in kids), ZERO),
                unpriced=(own_total is None) + sum(k.unpriced for k in kids),
            )

        return cls(
            trace_id=trace_id,
            roots=tuple(build(s, frozenset()) for s in by_parent.get(None, ())),
        )

    @property
    def total_cost(self) -> Decimal:
        """Sum of every span's direct cost."""
        return sum((r.total_cost for r in self.roots), ZERO)

    @property
    def unpriced(self) -> int:
        """Spans that could not be priced."""
        return sum(r.unpriced for r in self.roots)

    def walk(self) -> Iterator[tuple[int, TraceNode]]:
        """Depth-first (depth, node) pairs over all roots."""
        for root in self.roots:
            yield from root.walk()

    def find_span(self, span_id: str) -> TraceNode | None:
        """The node of the span with ``span_id``."""
        for _, node in self.walk():
            if node.span.span_id == span_id:
                return node
        return None

    def find(self, name: str) -> TraceNode | None:
        """The first node whose span has ``name``."""
        for root in self.roots:
            found = root.find(name)
            if found is not None:
                return found
        return None

    @property
    def spans(self) -> Sequence[SpanRecord]:
        """All spans, depth-first."""
        return [node.span for _, node in self.walk()]

    def render(self) -> str:
        """The tree as text: one line per span with its total (and direct) cost.

        ``print(t.tree())`` shows this; ``repr`` stays the full dataclass.
        """
        lines = [f"trace {self.trace_id}  total {format_usd(self.total_cost)}"]
        if self.unpriced:
            lines[0] += f"  ({self.unpriced} unpriced)"

        def label(node: TraceNode) -> str:
            span = node.span
            what = span.kind.value
            if span.model and span.model != span.name:
                what += f" {span.model}"
            step = span.attributes.get("step")
            text = f"{span.name} [{what}]"
            if step is not None and step != span.name:
                text += f" step={step}"
            if span.status is not SpanStatus.OK:
                text += f" {span.status.value}"
            cost = format_usd(node.total_cost)
            if span.cost.total is None:
                cost += " +unpriced"
            elif node.children and node.direct_cost:
                cost += f" (direct {format_usd(node.direct_cost)})"
            if span.saved:
                cost += f" saved {format_usd(span.saved)}"
            return f"{text}  {cost}"

        def walk(node: TraceNode, prefix: str, last: bool, top: bool) -> None:
            branch = "" if top else ("└─ " if last else "├─ ")
            lines.append(f"{prefix}{branch}{label(node)}")
            child_prefix = prefix if top else prefix + ("   " if last else "│  ")
            for i, child in enumerate(node.children):
                walk(child, child_prefix, i == len(node.children) - 1, False)

        for root in self.roots:
            walk(root, "", True, True)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
