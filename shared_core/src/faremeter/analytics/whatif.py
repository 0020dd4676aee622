"""What-if repricing: the recorded usage of past calls under another model or route.

"summarize on gpt-4o-mini would have cost $X instead of $Y" is computed
from the usage each call really reported (input, cached, output and
reasoning tokens), priced span by span with the catalog, so long-context
tiers and cache-read rates apply exactly as they would have. The recorded
cost stays what it was charged; only the alternative is priced now.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from faremeter.errors import UnknownModelError
from faremeter.ledger import Ledger, UsageGroup, UsageTotal
from faremeter.pricing import PriceCatalog
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.usage import Usage

__all__ = [
    "Route",
    "WhatIf",
    "WhatIfRow",
    "linear",
    "price_of_totals",
    "what_if",
    "what_if_groups",
    "what_if_spans",
    "what_if_totals",
]

Route = Callable[[SpanRecord], str | None]
"""Chooses the model a call would have used (``None``: keep the recorded model)."""

_BILLED = frozenset({SpanStatus.OK, SpanStatus.FALLBACK, SpanStatus.ERROR})


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatIfRow:
    """The part of a what-if that moves calls from one recorded model.

    Attributes:
        model: The model the calls were recorded on.
        target: The model they are repriced at (``route`` when it varies).
        calls: Calls repriced.
        recorded: What they cost as recorded.
        what_if: What they would have cost on ``target``.
    """

    model: str
    target: str
    calls: int
    recorded: Decimal
    what_if: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatIf:
    """Recorded cost against the cost of the same usage elsewhere.

    Attributes:
        target: The model asked for, or ``route`` for a routing function.
        calls: Calls repriced (billed LLM spans with usage and a price).
        recorded: Their recorded cost.
        what_if: Their cost on the target.
        skipped: Matching spans left out: no usage, unpriced as recorded,
            cache hits, or a target that cannot price them.
        rows: The same split by recorded model.
    """

    target: str
    calls: int
    recorded: Decimal
    what_if: Decimal
    skipped: int
    rows: tuple[WhatIfRow, ...]

    @property
    def savings(self) -> Decimal:
        """``recorded - what_if`` (negative when the target costs more)."""
        return self.recorded - self.what_if

    @property
    def savings_ratio(self) -> Decimal:
        """Savings as a fraction of the recorded cost (``0`` for $0 recorded)."""
        return self.savings / self.recorded if self.recorded else Decimal(0)


def what_if(
    ledger: Ledger,
    catalog: PriceCatalog,
    *,
    model: str | Route,
    step: str | None = None,
    from_model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
) -> WhatIf:
    """Reprice recorded LLM calls at ``model`` (or wherever ``model(span)`` routes them).

    Args:
        ledger: Where the calls are.
        catalog: Prices for the alternative (``meter.catalog``).
        model: Target model name, or a route function of the span.
        step: Only calls of this ``step``.
        from_model: Only calls recorded on this model.
        since: Window start (aware).
        until: Window end (exclusive, aware).
        where: More attribute filters.

    Raises:
        UnknownModelError: When ``model`` is a name the catalog cannot price.
    """
    if isinstance(model, str):
        catalog.get(model)  # fail early with close matches, not per span
    flt: dict[str, object] = dict(where or {})
    if step is not None:
        flt["step"] = step
    if from_model is not None:
        flt["model"] = from_model
    if isinstance(model, str):
        if linear(catalog, model):
            totals = ledger.usage_totals(since=since, until=until, where=flt or None)
            return what_if_totals(totals, catalog, model=model)
        groups = ledger.usage_groups(since=since, until=until, where=flt or None)
        return what_if_groups(groups, catalog, model=model)
    spans = ledger.spans(kind=SpanKind.LLM, since=since, until=until, where=flt or None)
    return what_if_spans(spans, catalog, model=model)


def linear(catalog: PriceCatalog, model: str) -> bool:
    """Whether ``model``'s price is linear in token counts (no long-context tiers)."""
    return not catalog.get(model).tiers


def what_if_totals(totals: Sequence[UsageTotal], catalog: PriceCatalog, *, model: str) -> WhatIf:
    """:func:`what_if` at a model priced linearly, over summed token counts.

    Exact: without long-context tiers a call's price is a sum of token counts
    times per-token rates, so the price of the summed counts is the sum of the
    calls' prices. The rates come from the catalog itself (one token of each
    kind priced once), so cache, reasoning and audio rates apply as always.
    """
    unit = _unit_prices(catalog, model)
    acc: dict[tuple[str, str], list[Decimal | int]] = {}
    skipped = 0
    for g in totals:
        billed = g.tokens is not None and g.model and g.priced and SpanStatus(g.status) in _BILLED
        if not billed or unit is None:
            skipped += g.spans
            continue
        assert g.tokens is not None and g.model is not None
        a = acc.setdefault((g.model, model), [0, Decimal(0), Decimal(0)])
        a[0] += g.spans
        a[1] += g.cost
        a[2] += _linear_cost(unit, g.tokens)
    return _result(model, acc, skipped)


def price_of_totals(catalog: PriceCatalog, model: str, tokens: Mapping[str, int]) -> Decimal | None:
    """What summed token counts (a :class:`UsageTotal`'s ``tokens``) cost on ``model``.

    Exact when ``model`` is priced linearly (see :func:`linear`): the sum of
    each call's price. ``None`` when the catalog cannot price ``model``.
    """
    unit = _unit_prices(catalog, model)
    return None if unit is None else _linear_cost(unit, tokens)


_UNIT_USAGES: dict[str, Usage] = {
    "input": Usage(input_tokens=1),
    "cache_read": Usage(input_tokens=1, cache_read_tokens=1),
    "cache_write": Usage(input_tokens=1, cache_write_tokens=1),
    "cache_write_1h": Usage(input_tokens=1, cache_write_tokens=1, cache_write_1h_tokens=1),
    "audio_input": Usage(input_tokens=1, audio_input_tokens=1),
    "output": Usage(output_tokens=1),
    "reasoning": Usage(output_tokens=1, reasoning_tokens=1),
    "audio_output": Usage(output_tokens=1, audio_output_tokens=1),
}


def _unit_prices(catalog: PriceCatalog, model: str) -> dict[str, Decimal] | None:
    """What one token of each kind costs on ``model`` (``None``: unpriceable)."""
    out: dict[str, Decimal] = {}
    for kind, usage in _UNIT_USAGES.items():
        total = _price(catalog, model, usage)
        if total is None:
            return None
        out[kind] = total
    return out


def _linear_cost(unit: Mapping[str, Decimal], t: Mapping[str, int]) -> Decimal:
    """The linear price of summed counts, split the way the catalog splits one call."""
    cr, cw, cw1 = (
        t.get("cache_read_tokens", 0),
        t.get("cache_write_tokens", 0),
        t.get("cache_write_1h_tokens", 0),
    )
    ai, ao, r = (
        t.get("audio_input_tokens", 0),
        t.get("audio_output_tokens", 0),
        t.get("reasoning_tokens", 0),
    )
    plain_in = t.get("input_tokens", 0) - cr - cw - ai
    plain_out = t.get("output_tokens", 0) - r - ao
    return (
        plain_in * unit["input"]
        + cr * unit["cache_read"]
        + (cw - cw1) * unit["cache_write"]
        + cw1 * unit["cache_write_1h"]
        + ai * unit["audio_input"]
        + plain_out * unit["output"]
        + r * unit["reasoning"]
        + ao * unit["audio_output"]
    )


def what_if_groups(groups: Sequence[UsageGroup], catalog: PriceCatalog, *, model: str) -> WhatIf:
    """:func:`what_if` at one model over the ledger's usage groups (no span decoding)."""
    acc: dict[tuple[str, str], list[Decimal | int]] = {}
    skipped = 0
    for g in groups:
        usable = g.usage is not None and g.model and SpanStatus(g.status) in _BILLED
        priced = g.spans - g.unpriced
        if not usable or priced == 0:
            skipped += g.spans
            continue
        assert g.usage is not None and g.model is not None
        alt = _price(catalog, model, g.usage)
        if alt is None:
            skipped += g.spans
            continue
        skipped += g.unpriced
        a = acc.setdefault((g.model, model), [0, Decimal(0), Decimal(0)])
        a[0] += priced
        a[1] += g.cost
        a[2] += alt * priced
    return _result(model, acc, skipped)


def what_if_spans(spans: list[SpanRecord], catalog: PriceCatalog, *, model: str | Route) -> WhatIf:
    """:func:`what_if` over spans already at hand (suggestions reuse one query)."""
    route: Route = (lambda _s: model) if isinstance(model, str) else model
    target_label = model if isinstance(model, str) else "route"
    memo: dict[tuple[str, Usage], Decimal | None] = {}
    acc: dict[tuple[str, str], list[Decimal | int]] = {}
    skipped = 0
    for s in spans:
        recorded = s.cost.total
        if s.usage is None or recorded is None or s.status not in _BILLED or not s.model:
            skipped += 1
            continue
        target = route(s) or s.model
        key = (target, s.usage)
        if key not in memo:
            memo[key] = _price(catalog, target, s.usage)
        alt = memo[key]
        if alt is None:
            skipped += 1
            continue
        a = acc.setdefault((s.model, target), [0, Decimal(0), Decimal(0)])
        a[0] += 1
        a[1] += recorded
        a[2] += alt
    return _result(target_label, acc, skipped)


def _result(target: str, acc: dict[tuple[str, str], list[Decimal | int]], skipped: int) -> WhatIf:
    rows = tuple(
        WhatIfRow(model=m, target=t, calls=int(a[0]), recorded=Decimal(a[1]), what_if=Decimal(a[2]))
        for (m, t), a in sorted(acc.items())
    )
    return WhatIf(
        target=target,
        calls=sum(r.calls for r in rows),
        recorded=sum((r.recorded for r in rows), Decimal(0)),
        what_if=sum((r.what_if for r in rows), Decimal(0)),
        skipped=skipped,
        rows=rows,
    )


def _price(catalog: PriceCatalog, model: str, usage: Usage) -> Decimal | None:
    try:
        return catalog.cost(model, usage).total
    except UnknownModelError:
        return None
