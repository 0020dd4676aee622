"""What the router chose and what it saved, computed from the ledger.

A routed call stamps its priced model spans with two attributes (see
:mod:`faremeter.routing.routed_call`): ``route.model`` — the model the router
chose — and ``route.baseline_model`` — the most expensive capable candidate of
that route. The savings baseline of a call is the *same recorded usage*
priced on the baseline model: "had we sent every routed call to the most
expensive model the route allowed, with the same tokens". It is a computed
counterfactual, never an assertion that the baseline would have used the same
tokens or answered as well.

The computation reads aggregated usage groups (model, exact usage, status)
from the ledger, so a million routed calls cost a handful of grouped queries,
not a million decoded spans. Money is exact ``Decimal`` throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from faremeter.spans import SpanKind

if TYPE_CHECKING:
    from faremeter.ledger import Ledger
    from faremeter.ledger.results import UsageGroup
    from faremeter.pricing import PriceCatalog

__all__ = [
    "BASELINE_ATTRIBUTE",
    "CHOSEN_ATTRIBUTE",
    "RoutedReport",
    "RoutedRow",
    "routed_report",
]

CHOSEN_ATTRIBUTE: Final = "route.model"
"""Attribute naming the model the router chose for the call."""

BASELINE_ATTRIBUTE: Final = "route.baseline_model"
"""Attribute naming the route's most expensive capable candidate (the savings baseline)."""

_ZERO: Final = Decimal(0)
# A cache hit or a denied call reached no provider: nothing to compare.
_SKIPPED_STATUSES: Final = frozenset({"cached", "denied"})


@dataclass(frozen=True, kw_only=True, slots=True)
class RoutedRow:
    """Routed model calls sharing a step, a chosen model, a called model and a baseline.

    Attributes:
        step: The ``step`` attribute of the calls (``None``: unset).
        chosen: The model the router chose.
        model: The model actually called (differs from ``chosen`` after a fallback).
        baseline_model: The route's most expensive candidate.
        calls: Model calls in the row (every attempt that reached a provider).
        cost: What they cost (priced calls only).
        baseline_cost: The same recorded usage priced on ``baseline_model``.
        unpriced: Calls left out of both sums (unpriced, no usage, or a
            baseline the catalog cannot price).
    """

    step: str | None
    chosen: str
    model: str | None
    baseline_model: str
    calls: int
    cost: Decimal
    baseline_cost: Decimal
    unpriced: int = 0

    @property
    def saved(self) -> Decimal:
        """Baseline cost minus real cost (negative when the route cost more)."""
        return self.baseline_cost - self.cost

    @property
    def fallback(self) -> bool:
        """The calls ran on another model than the router chose."""
        return self.model != self.chosen


@dataclass(frozen=True, kw_only=True, slots=True)
class RoutedReport:
    """Every routed call in a window, by step and model, with the savings baseline.

    Attributes:
        rows: One row per (step, chosen, called model, baseline), by step then model.
    """

    rows: tuple[RoutedRow, ...]

    @property
    def calls(self) -> int:
        """Routed model calls compared."""
        return sum(r.calls for r in self.rows)

    @property
    def cost(self) -> Decimal:
        """What the routed calls cost."""
        return sum((r.cost for r in self.rows), _ZERO)

    @property
    def baseline_cost(self) -> Decimal:
        """What the same usage would have cost on each route's baseline model."""
        return sum((r.baseline_cost for r in self.rows), _ZERO)

    @property
    def saved(self) -> Decimal:
        """Total baseline cost minus total real cost."""
        return self.baseline_cost - self.cost

    @property
    def fallback_calls(self) -> int:
        """Calls that ran on another model than the router chose."""
        return sum(r.calls for r in self.rows if r.fallback)

    def by_model(self) -> Mapping[str, tuple[int, Decimal, Decimal]]:
        """Chosen model -> (calls, cost, saved), summed over steps."""
        out: dict[str, tuple[int, Decimal, Decimal]] = {}
        for r in self.rows:
            calls, cost, saved = out.get(r.chosen, (0, _ZERO, _ZERO))
            out[r.chosen] = (calls + r.calls, cost + r.cost, saved + r.saved)
        return out


def routed_report(
    ledger: Ledger,
    catalog: PriceCatalog,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, object] | None = None,
) -> RoutedReport:
    """What the router chose per step and model, and the savings against each route's baseline.

    Args:
        ledger: Where the routed calls were recorded.
        catalog: Prices the baseline (the recorded cost of each call is kept as is).
        since: Only calls from this time on.
        until: Only calls before this time.
        where: Further attribute filters (``{"workflow": "research"}``).

    Returns:
        The rows, and totals through the report's properties.
    """
    base_where = dict(where or {})
    rows: list[RoutedRow] = []
    baselines = _keys(ledger, BASELINE_ATTRIBUTE, base_where, since, until)
    for baseline in baselines:
        w_base = {**base_where, BASELINE_ATTRIBUTE: baseline}
        for chosen in _keys(ledger, CHOSEN_ATTRIBUTE, w_base, since, until):
            w_chosen = {**w_base, CHOSEN_ATTRIBUTE: chosen}
            groups = ledger.usage_groups(
                by="step", kind=SpanKind.LLM, since=since, until=until, where=w_chosen
            )
            rows.extend(_rows(groups, chosen, baseline, catalog))
    rows.sort(key=lambda r: (r.step or "", r.chosen, r.model or "", r.baseline_model))
    return RoutedReport(rows=tuple(rows))


def _keys(
    ledger: Ledger,
    attribute: str,
    where: Mapping[str, object],
    since: datetime | None,
    until: datetime | None,
) -> list[str]:
    groups = ledger.usage_groups(
        by=attribute, kind=SpanKind.LLM, since=since, until=until, where=where
    )
    return sorted({g.key for g in groups if g.key is not None})


def _rows(
    groups: list[UsageGroup], chosen: str, baseline: str, catalog: PriceCatalog
) -> list[RoutedRow]:
    acc: dict[tuple[str | None, str | None], list[Decimal | int]] = {}
    for g in groups:
        if g.status in _SKIPPED_STATUSES:
            continue
        slot = acc.setdefault((g.key, g.model), [0, _ZERO, _ZERO, 0])
        base = None
        if g.usage is not None and g.unpriced == 0:
            try:
                base = catalog.cost(baseline, g.usage).total
            except LookupError:
                base = None
        if base is None:
            slot[3] = int(slot[3]) + g.spans
            continue
        slot[0] = int(slot[0]) + g.spans
        slot[1] = Decimal(slot[1]) + g.cost
        slot[2] = Decimal(slot[2]) + base * g.spans
    return [
        RoutedRow(
            step=step,
            chosen=chosen,
            model=model,
            baseline_model=baseline,
            calls=int(v[0]),
            cost=Decimal(v[1]),
            baseline_cost=Decimal(v[2]),
            unpriced=int(v[3]),
        )
        for (step, model), v in acc.items()
    ]
