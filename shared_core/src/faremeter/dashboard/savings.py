"""What caching and routing saved, computed from the ledger's rollups.

The savings panel adds up two things over a window: every cache hit's
``saved``, per tool or model, and every routed call's baseline (what the
model originally asked for would have cost) against what it cost. Both are
read as sums — ``usage_totals`` and ``totals``, which the hourly rollup
answers — instead of decoding each cached or routed span, so a month of a
busy ledger costs a handful of small queries:

* cache: ``saved`` summed per (tool, model) of ``cached`` spans; a hit with
  neither (rare: a cached span of another kind without a model) is named by
  its span name, read from those few spans;
* routing: per (``route.model``, ``route.baseline_model``), the summed usage
  of the calls priced at the baseline model. Pricing is linear in each token
  count for models without long-context tiers, so the price of the sum is the
  sum of the prices, exactly; a tiered baseline is priced per distinct usage
  (``usage_groups``). Calls stamped with ``route.baseline_cost`` keep that
  stamp as their baseline and are read one by one (nothing faremeter ships
  stamps it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from faremeter.analytics.whatif import linear, price_of_totals
from faremeter.cost import ZERO
from faremeter.ledger import Ledger
from faremeter.pricing import PriceCatalog
from faremeter.spans import SpanRecord

__all__ = ["ROUTE_BASELINE_COST", "ROUTE_BASELINE_MODEL", "ROUTE_MODEL", "RouteSaving",
           "cache_savings", "route_savings"]  # fmt: skip

ROUTE_MODEL = "route.model"
"""Attribute the router stamps on a routed call: the model it chose."""
ROUTE_BASELINE_COST = "route.baseline_cost"
"""What the call would have cost on the model asked for (exact decimal string)."""
ROUTE_BASELINE_MODEL = "route.baseline_model"
"""The model asked for; repriced from the span's usage when no cost is stamped."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RouteSaving:
    """Routed calls to one chosen model and what their baselines would have cost.

    Attributes:
        model: The model the router chose (``route.model``).
        calls: Routed calls to it (with or without a known baseline).
        spend: What all of them cost (orders the rows, like ``cost_by``).
        cost: What the calls with a known baseline cost.
        baseline: What those calls would have cost on their baselines.
        unknown: Calls with no baseline (none stamped, no baseline model or
            usage, a baseline the catalog cannot price) or no price.
    """

    model: str
    calls: int
    spend: Decimal
    cost: Decimal
    baseline: Decimal
    unknown: int


def cache_savings(
    ledger: Ledger,
    *,
    since: datetime | None,
    until: datetime | None,
    where: Mapping[str, object] | None,
) -> dict[str, tuple[Decimal, int]]:
    """Cache hits' ``saved`` and count per model (else tool, else span name)."""
    cached = {**(where or {}), "status": "cached"}
    out: dict[str, tuple[Decimal, int]] = {}

    def add(name: str, saved: Decimal, hits: int) -> None:
        before = out.get(name, (ZERO, 0))
        out[name] = (before[0] + saved, before[1] + hits)

    nameless = False
    for g in ledger.usage_totals(by="tool", kind=None, since=since, until=until, where=cached):
        name = g.model or g.key
        if name is None:
            nameless = True
        else:
            add(name, g.saved, g.spans)
    if nameless:
        for s in ledger.spans(since=since, until=until,
                              where={**cached, "model": None, "tool": None}):  # fmt: skip
            add(s.name, s.saved or ZERO, 1)
    return out


def route_savings(
    ledger: Ledger,
    catalog: PriceCatalog,
    *,
    since: datetime | None,
    until: datetime | None,
    where: Mapping[str, object] | None,
) -> list[RouteSaving]:
    """Routed calls per chosen model with their baselines, most spent first."""
    base = dict(where or {})
    window: dict[str, Any] = {"since": since, "until": until}
    pairs = ledger.totals(ROUTE_MODEL, ROUTE_BASELINE_MODEL, where=base or None, **window)
    plain = {
        r.keys: r.spans
        for r in ledger.totals(
            ROUTE_MODEL, ROUTE_BASELINE_MODEL, where={**base, ROUTE_BASELINE_COST: None}, **window
        )
    }
    acc: dict[str, list[Any]] = {}
    for row in pairs:
        chosen, baseline_model = row.keys
        if chosen is None:
            continue
        a = acc.setdefault(chosen, [0, ZERO, ZERO, ZERO, 0])
        a[0] += row.spans
        a[1] += row.cost
        scope = {**base, ROUTE_MODEL: chosen, ROUTE_BASELINE_MODEL: baseline_model}
        if plain.get(row.keys, 0):
            cost, baseline, unknown = _unstamped(
                ledger, catalog, baseline_model, {**scope, ROUTE_BASELINE_COST: None}, window
            )
            a[2] += cost
            a[3] += baseline
            a[4] += unknown
        if plain.get(row.keys, 0) < row.spans:
            for s in ledger.spans(where=scope, **window):
                if s.attributes.get(ROUTE_BASELINE_COST) is None:
                    continue  # counted above, from the sums
                known = _stamped_baseline(catalog, s)
                cost = s.cost.total
                if known is None or cost is None:
                    a[4] += 1
                else:
                    a[2] += cost
                    a[3] += known
    rows = [
        RouteSaving(model=m, calls=a[0], spend=a[1], cost=a[2], baseline=a[3], unknown=a[4])
        for m, a in acc.items()
    ]
    rows.sort(key=lambda r: (-r.spend, r.model))
    return rows


def _unstamped(
    ledger: Ledger,
    catalog: PriceCatalog,
    baseline_model: str | None,
    scope: dict[str, object],
    window: dict[str, Any],
) -> tuple[Decimal, Decimal, int]:
    """(cost, baseline, unknown calls) of routed calls repriced at ``baseline_model``."""
    totals = ledger.usage_totals(kind=None, where=scope, **window)
    if baseline_model is None:
        return ZERO, ZERO, sum(g.spans for g in totals)
    try:
        tiered = not linear(catalog, baseline_model)
    except Exception:  # a baseline we cannot price is reported, not guessed
        return ZERO, ZERO, sum(g.spans for g in totals)
    cost = baseline = ZERO
    unknown = 0
    if tiered:
        for g in ledger.usage_groups(kind=None, where=scope, **window):
            priced = g.spans - g.unpriced
            alt = None if g.usage is None or not priced else _price(catalog, baseline_model, g)
            if alt is None:
                unknown += g.spans
                continue
            unknown += g.unpriced
            cost += g.cost
            baseline += alt * priced
        return cost, baseline, unknown
    for t in totals:
        alt = None
        if t.priced and t.tokens is not None:
            alt = price_of_totals(catalog, baseline_model, t.tokens)
        if alt is None:
            unknown += t.spans
            continue
        cost += t.cost
        baseline += alt
    return cost, baseline, unknown


def _price(catalog: PriceCatalog, model: str, group: Any) -> Decimal | None:
    try:
        return catalog.cost(model, group.usage).total
    except Exception:  # a baseline we cannot price is reported, not guessed
        return None


def _stamped_baseline(catalog: PriceCatalog, span: SpanRecord) -> Decimal | None:
    """A stamped call's baseline: the stamp, else its usage at the baseline model."""
    stamp = span.attributes.get(ROUTE_BASELINE_COST)
    if isinstance(stamp, int | float | str) and not isinstance(stamp, bool):
        try:
            value = Decimal(repr(stamp) if isinstance(stamp, float) else stamp)
        except InvalidOperation:
            value = None
        if value is not None and value.is_finite():
            return value
    model = span.attributes.get(ROUTE_BASELINE_MODEL)
    if not isinstance(model, str) or span.usage is None:
        return None
    try:
        return catalog.cost(model, span.usage).total
    except Exception:  # a baseline we cannot price is reported, not guessed
        return None
