"""One function per dashboard panel, each returning a JSON-able dict.

Every number comes from a ledger query (never from a cache of the page's
own), so a panel can be checked against the query that produced it and
against the sum of the spans. Money travels as decimal *strings*
(``"0.142"``): JSON numbers are floats in the browser, and a dashboard that
rounds differently from ``faremeter report`` would be a second truth.

Panels:
    :func:`ticker` (spend in the window, split and over time),
    :func:`tasks` (most expensive traces, outliers flagged),
    :func:`distribution` (per-trace histogram with P50/P90/P99),
    :func:`opportunities` (what to change to spend less),
    :func:`budgets` (money in flight and burn-down forecasts),
    :func:`savings` (cache and routing savings against baselines),
    :func:`anomalies` (spend spikes), and :func:`trace` (one task's tree).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from faremeter.analytics.anomalies import spend_spikes
from faremeter.analytics.distribution import DistributionRow
from faremeter.analytics.distribution import distribution as cost_distribution
from faremeter.analytics.suggestions import suggest
from faremeter.analytics.timeseries import spend_series
from faremeter.budgets.status import BudgetStatus
from faremeter.cost import ZERO
from faremeter.dashboard.query import PanelQuery
from faremeter.dashboard.savings import cache_savings, route_savings
from faremeter.dashboard.source import DashboardSource
from faremeter.ledger.filters import PROMOTED, SPAN_FIELDS
from faremeter.tree import TraceNode

__all__ = [
    "OUTLIER_FACTOR",
    "anomalies",
    "attribute_values",
    "budgets",
    "distribution",
    "money",
    "opportunities",
    "savings",
    "tasks",
    "ticker",
    "trace",
]

OUTLIER_FACTOR = Decimal(2)
"""A task is an outlier when it costs more than this many times the median task."""

_JSON = dict[str, Any]


def money(amount: Decimal | None) -> str | None:
    """Exact dollars as a plain decimal string (``None`` stays ``None``)."""
    if amount is None:
        return None
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _trace_where(q: PanelQuery) -> tuple[Mapping[str, str | None] | None, list[str]]:
    """Filters usable on trace-level queries (root attributes) and the ones dropped.

    Per-trace queries group whole traces by their root span's attributes; a
    span field such as ``model`` does not describe a trace, so it is reported
    back as ignored instead of silently changing the meaning.
    """
    kept = {k: v for k, v in q.where.items() if k not in SPAN_FIELDS}
    dropped = sorted(k for k in q.where if k in SPAN_FIELDS)
    return (kept or None), dropped


def _dist(src: DashboardSource, q: PanelQuery, outlier_limit: int = 100) -> DistributionRow | None:
    """The distribution of per-task cost over every task in the slice (one group)."""
    where, _ = _trace_where(q)
    rows = cost_distribution(
        src.ledger,
        by=None,
        factor=OUTLIER_FACTOR,
        outlier_limit=outlier_limit,
        since=q.since,
        until=q.until,
        where=where,
    )
    return rows[0] if rows else None


# -- ticker -------------------------------------------------------------------


_LLM_KINDS = frozenset({"llm", "embedding"})


@dataclass(slots=True)
class _Bucket:
    cost: Decimal = ZERO
    spans: int = 0


def ticker(src: DashboardSource, q: PanelQuery) -> _JSON:
    """Spend in the window: total, LLM/tool/other split, spans and a time series.

    One scan of the slice: ``ledger.time_series("hour", by="kind")``. Its
    rows add up to ``ledger.cost_split(...)`` (total, LLM = llm + embedding
    spans, tool, other) and, per hour, to ``ledger.time_series("hour")``. When
    the data spans more than two days the hours are summed into UTC days
    (equal to ``time_series("day")``), so a month is 30 bars, not 720.
    """
    now = src.now()
    rows = src.ledger.time_series(
        "hour", since=q.since, until=q.until, where=q.where_or_none(), by="kind"
    )
    split = {"llm": ZERO, "tool": ZERO, "other": ZERO}
    spans = unpriced = 0
    hours: dict[datetime, _Bucket] = {}
    for r in rows:
        part = "llm" if r.key in _LLM_KINDS else "tool" if r.key == "tool" else "other"
        split[part] += r.cost
        spans += r.spans
        unpriced += r.unpriced
        b = hours.setdefault(r.start, _Bucket())
        b.cost += r.cost
        b.spans += r.spans
    first = min(hours, default=None)
    last = max(hours, default=None)
    interval: Literal["hour", "day"] = "hour"
    series: dict[datetime, _Bucket] = hours
    if first is not None and last is not None and last - first > timedelta(days=2):
        interval = "day"
        series = {}
        for start, b in hours.items():
            day = series.setdefault(start.replace(hour=0), _Bucket())
            day.cost += b.cost
            day.spans += b.spans
    return {
        "query": q.to_json(),
        "as_of": now.isoformat(),
        "total": money(split["llm"] + split["tool"] + split["other"]),
        "llm": money(split["llm"]),
        "tool": money(split["tool"]),
        "other": money(split["other"]),
        "spans": spans,
        "unpriced": unpriced,
        "interval": interval,
        "series": [
            {"start": start.isoformat(), "cost": money(b.cost), "spans": b.spans}
            for start, b in sorted(series.items())
        ],
    }


# -- tasks --------------------------------------------------------------------


def tasks(src: DashboardSource, q: PanelQuery, *, limit: int = 50) -> _JSON:
    """The most expensive tasks (traces), with outliers flagged.

    Rows are ``ledger.top_traces(limit, ...)``. A row is an outlier when its
    cost is more than :data:`OUTLIER_FACTOR` × the median task cost of the
    same slice — the analytics outlier rule, with the median from
    ``ledger.percentiles`` (nearest rank: a real task's cost). Only the median
    is asked for, so the panel costs one sort of the per-trace rollup.
    """
    if not 1 <= limit <= 1_000:
        raise ValueError(f"limit must be within 1..1000, got {limit}")
    where, ignored = _trace_where(q)
    groups = src.ledger.percentiles(
        by=None, quantiles=(0.5,), since=q.since, until=q.until, where=where
    )
    median = groups[0].quantiles[0.5] if groups else None
    threshold = None if median is None else median * OUTLIER_FACTOR
    rows = src.ledger.top_traces(limit, since=q.since, until=q.until, where=where)
    return {
        "query": q.to_json(),
        "ignored_filters": ignored,
        "traces": groups[0].traces if groups else 0,
        "median": money(median),
        "outlier_threshold": money(threshold),
        "rows": [
            {
                "trace_id": r.trace_id,
                "name": r.root_name,
                "cost": money(r.cost),
                "spans": r.spans,
                "unpriced": r.unpriced,
                "started": r.started.isoformat(),
                "outlier": threshold is not None and r.cost > threshold,
            }
            for r in rows
        ],
    }


# -- distribution -------------------------------------------------------------


def _nice_width(top: Decimal, count: int) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 × 10^k at least ``top / count`` (readable bin edges)."""
    raw = top / count
    exp = raw.adjusted()
    for mantissa in (1, 2, Decimal("2.5"), 5, 10):
        width = Decimal(mantissa).scaleb(exp)
        if width >= raw:
            return width
    return Decimal(10).scaleb(exp)  # pragma: no cover - 10 × 10^k always fits


def _bins(
    src: DashboardSource, q: PanelQuery, where: Mapping[str, str | None] | None,
    top: Decimal, traces: int, count: int,
) -> tuple[Decimal, list[int]]:  # fmt: skip
    """Equal-width bins from $0 covering the largest total; returns (width, counts).

    The width is rounded up to a readable step, so fewer than ``count`` bins
    may be needed; a total on an edge falls in the bin it starts. The
    ledger counts the traces per bin (``trace_histogram``), so no trace's
    total leaves the database.
    """
    if top <= 0:
        return Decimal(1), [traces]
    width = _nice_width(top, count)
    n = int(top // width) + 1
    counts = [0] * n
    found = src.ledger.trace_histogram(width, since=q.since, until=q.until, where=where)
    for b, c in found.items():
        counts[min(n - 1, max(0, b))] += c
    return width, counts


def distribution(src: DashboardSource, q: PanelQuery, *, bins: int = 24) -> _JSON:
    """Histogram of per-task cost with P50 / P90 / P99 markers.

    Two queries over the per-trace rollup: ``ledger.percentiles`` over every
    task of the slice (one group) gives the count, total, maximum and the
    P50 / P90 / P99 markers by its nearest-rank rule, so each marker is an
    actual task's cost; ``ledger.trace_histogram`` counts the tasks in
    equal-width bins from $0 past the most expensive one. ``range`` is the
    x-axis the page must draw, so the markers can be checked against it.
    """
    if not 1 <= bins <= 200:
        raise ValueError(f"bins must be within 1..200, got {bins}")
    where, ignored = _trace_where(q)
    groups = src.ledger.percentiles(
        by=None, quantiles=_MARKERS, since=q.since, until=q.until, where=where
    )
    g = groups[0] if groups else None
    n = 0 if g is None else g.traces
    width, counts = _bins(src, q, where, ZERO if g is None else g.max, n, bins)

    def quantile(value: float) -> str | None:
        return None if g is None else money(g.quantiles[value])

    return {
        "query": q.to_json(),
        "ignored_filters": ignored,
        "traces": n,
        "total": money(ZERO if g is None else g.total),
        "p50": quantile(0.5),
        "p90": quantile(0.9),
        "p99": quantile(0.99),
        "max": None if g is None else money(g.max),
        "unpriced_traces": 0 if g is None else g.unpriced_traces,
        "bin_width": money(width),
        "range": [money(ZERO), money(width * len(counts))],
        "bins": [
            {"lo": money(width * i), "hi": money(width * (i + 1)), "count": c}
            for i, c in enumerate(counts)
        ],
    }


_MARKERS = (0.5, 0.9, 0.99)


# -- opportunities ------------------------------------------------------------


def _pct(part: Decimal, whole: Decimal) -> int:
    return 0 if not whole else round(part * 100 / whole)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def opportunities(src: DashboardSource, q: PanelQuery) -> _JSON:
    """What to change to spend less, largest amount first.

    The analytics suggestions (cheaper model per step by what-if repricing,
    tool cache hit rates, budget hits, prompt caching, retries without
    backoff), plus the outlier tasks and what they cost, failed calls that
    were still billed, and spans without a price. ``amount`` is the money an
    item is about (``None``: not a dollar amount), so the list can be ranked
    and checked.
    """
    where = q.where_or_none()
    led = src.ledger
    items: list[_JSON] = [
        {
            "kind": sug.kind,
            "title": sug.title,
            "detail": ", ".join(f"{k} {v}" for k, v in sug.evidence.items()),
            "amount": money(sug.impact),
        }
        for sug in suggest(led, src.catalog, since=q.since, until=q.until, where=where)
    ]
    dist = _dist(src, q)
    if dist is not None and dist.outliers:
        spent = sum((o.cost for o in dist.outliers), ZERO)
        items.append({
            "kind": "outlier_tasks",
            "title": f"{_n(len(dist.outliers), 'task')} cost more than "
                     f"{OUTLIER_FACTOR}× the median task (${money(dist.p50)})",
            "detail": "Cap them with a per-task budget, or open their trees to find the loop.",
            "amount": money(spent),
        })  # fmt: skip
    statuses = {
        r.keys[0]: r for r in led.totals("status", since=q.since, until=q.until, where=where)
    }
    failed = statuses.get("error")
    if failed is not None and failed.cost > 0:
        items.append({
            "kind": "failed_calls",
            "title": f"{_n(failed.spans, 'failed call')} still paid for",
            "detail": "Errors that repeat cost money each time: check retries and fallbacks.",
            "amount": money(failed.cost),
        })  # fmt: skip
    unpriced = sum(r.unpriced for r in statuses.values())
    if unpriced:
        items.append({
            "kind": "unpriced",
            "title": f"{_n(unpriced, 'span')} without a price",
            "detail": "Add a price override so every call is counted.",
            "amount": None,
        })  # fmt: skip
    items.sort(key=lambda i: -Decimal(i["amount"] or 0))
    return {"query": q.to_json(), "items": items}


# -- budgets ------------------------------------------------------------------


def _utc_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 10**9, tz=UTC).replace(microsecond=(ns // 1_000) % 10**6)


def _elapsed(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    """How far through its window a budget is (0..1), for drawing the burn-down."""
    if start is None or end is None or end <= start:
        return None
    return min(1.0, max(0.0, (now - start) / (end - start)))


def budgets(src: DashboardSource, q: PanelQuery) -> _JSON:
    """Each budget counter's limit, spend, money in flight and burn-down forecast.

    Reads ``meter.budgets.status()`` (one row per budget and subject in its
    current window; budgets are not filtered by the page's window). ``in_flight``
    is the sum of every counter's reservations: the estimated cost of calls that
    started and have not settled. ``projected`` is the spend expected by the
    end of the window at the current burn rate; ``over_forecast`` says the
    burn-down reaches zero before the window ends. ``elapsed`` (0..1) is how
    far through its calendar window each counter is, by the budget manager's
    clock, so the page can draw the burn-down line and its forecast.
    """
    manager = getattr(src.meter, "budgets", None)
    if manager is None:
        return {"query": q.to_json(), "configured": False, "in_flight": "0", "budgets": []}
    try:
        statuses: list[BudgetStatus] = manager.status()
    except Exception as exc:  # the budget store is down: say so, keep the page up
        return {"query": q.to_json(), "configured": True, "in_flight": None, "budgets": [],
                "error": f"budget store unavailable: {exc}"}  # fmt: skip
    clock = getattr(manager, "clock", None)
    reading: object = clock() if callable(clock) else None
    now = _utc_ns(reading) if isinstance(reading, int) else src.now()
    out: list[_JSON] = []
    in_flight = ZERO
    for s in statuses:
        in_flight += s.reserved
        out.append({
            "name": s.budget,
            "subject": s.subject,
            "action": s.action,
            "window": s.window,
            "window_start": _iso(s.window_start),
            "window_end": _iso(s.window_end),
            "elapsed": _elapsed(s.window_start, s.window_end, now),
            "limit": money(s.limit),
            "spent": money(s.spent),
            "reserved": money(s.reserved),
            "remaining": money(s.remaining),
            "projected": money(s.projected),
            "used_pct": _pct(s.spent + s.reserved, s.limit),
            "over_forecast": s.projected is not None and s.projected > s.limit,
        })  # fmt: skip
    return {"query": q.to_json(), "configured": True, "in_flight": money(in_flight), "budgets": out}


# -- savings ------------------------------------------------------------------


def savings(src: DashboardSource, q: PanelQuery) -> _JSON:
    """What caching and routing saved, against what the calls would have cost.

    Caching: every ``cached`` span's ``saved`` (the cost of the call it
    replaced), per model or tool; the baseline is spend + saved. Routing:
    spans stamped with ``route.model`` (the router's choice) and either
    ``route.baseline_cost`` or ``route.baseline_model`` (the model asked
    for, repriced from the span's recorded usage); saved is baseline −
    actual. Routed spans with no baseline are counted in ``without_baseline``.
    Both are read as sums from the ledger (:mod:`faremeter.dashboard.savings`).
    """
    where = q.where_or_none()
    led = src.ledger
    by_name = cache_savings(led, since=q.since, until=q.until, where=where)
    cache_saved = sum((v[0] for v in by_name.values()), ZERO)
    routes = route_savings(led, src.catalog, since=q.since, until=q.until, where=where)
    route_saved = sum((r.baseline - r.cost for r in routes), ZERO)
    split = led.cost_split(since=q.since, until=q.until, where=where)
    return {
        "query": q.to_json(),
        "spend": money(split.total),
        "cache": {
            "saved": money(cache_saved),
            "hits": sum(v[1] for v in by_name.values()),
            "by_name": [
                {"name": k, "saved": money(v[0]), "hits": v[1]}
                for k, v in sorted(by_name.items(), key=lambda kv: -kv[1][0])
            ],
        },
        "routing": {
            "saved": money(route_saved),
            "by_model": [
                {
                    "model": r.model,
                    "calls": r.calls,
                    "cost": money(r.cost),
                    "baseline": money(r.baseline),
                    "saved": money(r.baseline - r.cost),
                }
                for r in routes
            ],
            "without_baseline": sum(r.unknown for r in routes),
        },
        "saved": money(cache_saved + route_saved),
        "baseline": money(split.total + cache_saved + route_saved),
    }


# -- anomalies ----------------------------------------------------------------


def anomalies(src: DashboardSource, q: PanelQuery) -> _JSON:
    """Hours whose spend spiked against their own baseline.

    The analytics spend-rate rule replayed over the slice's hourly series
    (empty hours after the first span count as $0): an hour at 3× or more
    the median of the hours before it is listed, with the spend and the
    baseline it was judged by.
    """
    series = spend_series(src.ledger, "hour", since=q.since, until=q.until,
                          where=q.where_or_none())  # fmt: skip
    # Hours before the first span are not "$0 hours" of history: the detector
    # counts empty hours only once spending has started.
    while series and series[0].spans == 0:
        series = series[1:]
    items = [
        {
            "kind": a.kind,
            "at": a.at.isoformat(),
            "title": a.message,
            "amount": money(a.amounts.get("spent")),
            "baseline": money(a.amounts.get("baseline")),
        }
        for a in spend_spikes(series)
    ]
    return {"query": q.to_json(), "items": items}


# -- trace tree and filter values ---------------------------------------------


def _node(node: TraceNode) -> _JSON:
    s = node.span
    usage = s.usage
    return {
        "span_id": s.span_id,
        "name": s.name,
        "kind": s.kind.value,
        "status": s.status.value,
        "model": s.model,
        "direct": money(node.direct_cost),
        "children_cost": money(node.child_cost),
        "total": money(node.total_cost),
        "priced": s.cost.priced,
        "saved": money(s.saved),
        "input_tokens": None if usage is None else usage.input_tokens,
        "output_tokens": None if usage is None else usage.output_tokens,
        "latency_ms": round(s.latency_ms, 3),
        "attributes": {k: v for k, v in s.attributes.items()},
        "children": [_node(c) for c in node.children],
    }


def trace(src: DashboardSource, trace_id: str) -> _JSON | None:
    """One task as a tree with direct / children / total cost per span (``None`` if unknown)."""
    tree = src.ledger.trace_tree(trace_id)
    if not tree.roots:
        return None
    return {
        "trace_id": trace_id,
        "total": money(tree.total_cost),
        "unpriced": tree.unpriced,
        "roots": [_node(r) for r in tree.roots],
    }


def attribute_values(src: DashboardSource, q: PanelQuery, attribute: str) -> _JSON:
    """Values of one attribute in the slice with their spend, for the filter picker."""
    rows = src.ledger.cost_by(attribute, since=q.since, until=q.until, where=q.where_or_none())
    return {
        "attribute": attribute,
        "values": [{"value": r.key, "cost": money(r.cost), "spans": r.spans} for r in rows],
        "suggested": list(PROMOTED + SPAN_FIELDS),
    }
