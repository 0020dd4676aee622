"""Prometheus metrics from faremeter's spans and budgets.

One line adds faremeter's numbers to an app's existing ``/metrics``::

    from faremeter.export import prometheus
    prometheus.instrument(meter)                        # default registry
    prometheus.instrument(meter, labels=("team",))      # attribution labels

Counters are fed by a span listener, so they move exactly when the ledger
gets the span and can never disagree with it: spend (USD), tokens by type,
spans by kind and status, unpriced spans, cache hits and dollars saved,
fallbacks and routing decisions. Budget gauges (limit, spent, reserved,
remaining) and circuit-breaker state are read when Prometheus
scrapes, so they show the budget store's truth, not a copy.

Cardinality is bounded: labels are fixed per metric plus the attribution keys
the user lists (``user_id`` and other per-entity keys are off unless listed),
and each label admits at most ``max_label_values`` distinct values; later
values are reported as ``__other__`` so a burst of new users cannot explode a
time-series database. Per-subject budget gauges (``per="user_id"``) are
limited to the ``budget_subjects`` most used.

Multiprocess servers (gunicorn, uvicorn workers): set
``PROMETHEUS_MULTIPROC_DIR`` before the workers import prometheus_client,
instrument the meter in every worker, and serve :func:`multiprocess_registry`.

Requires ``faremeter[prometheus]`` (prometheus-client).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "faremeter's Prometheus metrics need the prometheus extra: "
        "pip install 'faremeter[prometheus]'"
    ) from exc

from faremeter.spans import SpanKind, SpanRecord, SpanStatus, validate_attribute_name

logger = logging.getLogger("faremeter")

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from faremeter.meter import Meter

__all__ = [
    "DEFAULT_LABELS",
    "OTHER",
    "PrometheusMetrics",
    "instrument",
    "multiprocess_registry",
    "uninstrument",
]

DEFAULT_LABELS: tuple[str, ...] = ("workflow", "team")
"""Attribution keys used as labels unless told otherwise (bounded, low-cardinality keys)."""

OTHER = "__other__"
"""The label value that stands for every value beyond a label's bound."""

_TOKEN_TYPES = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("reasoning", "reasoning_tokens"),
)
_BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "half-open": 1.0, "open": 2.0}


class _Bounded:
    """Admits a label's first ``limit`` distinct values; the rest become ``__other__``."""

    __slots__ = ("_limit", "_lock", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = "" if value is None else str(value)
        if text in self._seen:
            return text
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(text)
                return text
        return OTHER


class _Family:
    """A counter plus a cache of its children (``labels()`` validates on every call)."""

    __slots__ = ("children", "counter")

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.children: dict[tuple[str, ...], Any] = {}

    def inc(self, values: tuple[str, ...], amount: float) -> None:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.counter.labels(*values)
        child.inc(amount)


class PrometheusMetrics:
    """The metric families and the span listener that feeds them.

    Args:
        registry: Where to register (default: prometheus_client's ``REGISTRY``).
        labels: Attribution keys to add as labels to every span metric.
        max_label_values: Distinct values each label may take before the rest
            are reported as ``__other__``.
        budget_subjects: Per-subject budget counters exported per budget
            (the most used first); the rest are left out.
        namespace: Metric name prefix.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        labels: Sequence[str] = DEFAULT_LABELS,
        max_label_values: int = 100,
        budget_subjects: int = 20,
        namespace: str = "faremeter",
    ) -> None:
        if max_label_values < 1:
            raise ValueError(f"max_label_values must be >= 1, got {max_label_values}")
        self.registry = registry if registry is not None else REGISTRY
        self.labels = tuple(validate_attribute_name(k) for k in labels)
        clashes = {"kind", "model", "provider", "status", "type", "name", "tier", "reason"} & set(
            self.labels
        )
        if clashes:
            raise ValueError(f"labels {sorted(clashes)} clash with built-in metric labels")
        self.label_names = tuple(k.replace(".", "_").replace("-", "_") for k in self.labels)
        self._bounds = {key: _Bounded(max_label_values) for key in (*self.labels, "model", "name")}
        self.budget_subjects = budget_subjects
        self._meters: weakref.WeakSet[Meter] = weakref.WeakSet()
        self._breakers: list[tuple[Any, tuple[str, ...]]] = []
        self._breakers_lock = threading.Lock()
        extra = self.label_names
        ns = namespace

        def counter(name: str, doc: str, fixed: tuple[str, ...]) -> _Family:
            return _Family(
                Counter(name, doc, (*fixed, *extra), namespace=ns, registry=self.registry)
            )

        self.spend = counter(
            "spend_usd", "Priced spend in US dollars.", ("kind", "model", "provider")
        )
        self.tokens = counter("tokens", "Tokens by type (input includes cache).", ("model", "type"))
        self.spans = counter("spans", "Finished spans by kind and status.", ("kind", "status"))
        self.unpriced = counter(
            "unpriced_spans",
            "Spans whose cost is unknown (never counted as $0).",
            ("kind", "model"),
        )
        self.cache_hits = counter("cache_hits", "Cache hits (cached spans).", ("kind", "name"))
        self.saved = counter(
            "saved_usd", "Dollars saved by cache hits, in US dollars.", ("kind", "name")
        )
        self.fallbacks = counter("fallbacks", "Calls that fell back to another model.", ("model",))
        self.routes = counter(
            "route_decisions", "Routing decisions by chosen model.", ("model", "tier")
        )
        self._state_collector = _StateCollector(
            self.meters, budget_subjects, ns, breakers=self.breakers
        )
        self.registry.register(self._state_collector)

    # -- span listener --------------------------------------------------------
    def _extra(self, record: SpanRecord) -> tuple[str, ...]:
        attrs = record.attributes
        bounds = self._bounds
        return tuple(bounds[key](attrs.get(key)) for key in self.labels)

    def __call__(self, record: SpanRecord) -> None:
        """Count one finished span (called by the meter for every span)."""
        extra = self._extra(record)
        kind = record.kind.value
        model = self._bounds["model"](record.model) if record.model else ""
        self.spans.inc((kind, record.status.value, *extra), 1)
        total = record.cost.total
        if total is None:
            self.unpriced.inc((kind, model, *extra), 1)
        elif total:
            self.spend.inc((kind, model, record.provider or "", *extra), float(total))
        usage = record.usage
        if usage is not None:
            for label, field in _TOKEN_TYPES:
                count = getattr(usage, field)
                if count:
                    self.tokens.inc((model, label, *extra), count)
        if record.status is SpanStatus.CACHED:
            name = model or self._bounds["name"](record.name)
            self.cache_hits.inc((kind, name, *extra), 1)
            if record.saved:
                self.saved.inc((kind, name, *extra), float(record.saved))
        elif record.status is SpanStatus.FALLBACK:
            self.fallbacks.inc((model, *extra), 1)
        routed = record.attributes.get("route.model")
        if routed is not None and record.kind in (SpanKind.LLM, SpanKind.EMBEDDING, SpanKind.CHAIN):
            tier = record.attributes.get("route.tier")
            self.routes.inc(
                (self._bounds["model"](routed), "" if tier is None else str(tier), *extra), 1
            )

    # -- scrape-time state ----------------------------------------------------
    def watch(self, meter: Meter) -> None:
        """Read ``meter``'s budgets (``meter.budgets.status()``) when Prometheus scrapes."""
        self._meters.add(meter)

    def watch_breaker(self, breaker: Any, models: Sequence[str]) -> None:
        """Export ``breaker.state(model)`` for each of ``models`` at every scrape.

        ``breaker`` is any :class:`faremeter.fallback.Breaker` (in-process or
        Redis); list the models of the fallback chain that uses it. Bounded
        by construction: one series per listed model.
        """
        with self._breakers_lock:
            self._breakers.append((breaker, tuple(models)))

    def breakers(self) -> list[tuple[Any, tuple[str, ...]]]:
        """The watched breakers and their models."""
        with self._breakers_lock:
            return list(self._breakers)

    def unwatch(self, meter: Meter) -> None:
        """Stop reading ``meter``'s state."""
        self._meters.discard(meter)

    def meters(self) -> list[Meter]:
        """The meters whose state is exported."""
        return list(self._meters)

    def close(self) -> None:
        """Unregister every family from the registry."""
        for family in (
            self.spend,
            self.tokens,
            self.spans,
            self.unpriced,
            self.cache_hits,
            self.saved,
            self.fallbacks,
            self.routes,
        ):
            self.registry.unregister(family.counter)
        self.registry.unregister(self._state_collector)


def _statuses(source: Any) -> list[Any]:
    status = getattr(source, "status", None)
    if status is None:
        return []
    result = status() if callable(status) else status
    if isinstance(result, dict):
        return list(result.values())  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]
    if isinstance(result, Iterable):
        return list(result)  # pyright: ignore[reportUnknownArgumentType]
    return [result]


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(Decimal(str(value)))
    except ArithmeticError:
        return None


class _StateCollector(Collector):
    """Budget and breaker gauges, computed at scrape time from what is watched.

    Tolerant by design: a meter without budgets exports none, and
    a store that fails while being read loses that scrape's gauges, never the
    scrape (Prometheus would then drop every other faremeter series too).
    """

    def __init__(
        self,
        meters: Callable[[], list[Meter]],
        budget_subjects: int,
        namespace: str,
        breakers: Callable[[], list[tuple[Any, tuple[str, ...]]]] = list,
    ) -> None:
        self._meters = meters
        self._breakers = breakers
        self._budget_subjects = budget_subjects
        self._ns = namespace

    def collect(self) -> Iterator[Metric]:
        ns = self._ns
        gauges = {
            field: GaugeMetricFamily(
                f"{ns}_budget_{field}_usd",
                f"Budget {field} in US dollars (current window).",
                labels=("budget", "subject"),
            )
            for field in ("limit", "spent", "reserved", "remaining")
        }
        breaker = GaugeMetricFamily(
            f"{ns}_breaker_state",
            "Circuit breaker state per model: 0 closed, 1 half-open, 2 open.",
            labels=("model",),
        )
        for meter in self._meters():
            try:
                self._budgets(meter, gauges)
            except Exception:  # the budget store is down: skip its gauges this scrape
                logger.warning("faremeter: reading budgets for /metrics failed", exc_info=True)
        for watched, models in self._breakers():
            try:
                self._breaker_states(watched, models, breaker)
            except Exception:  # e.g. a Redis-backed breaker whose store is down
                logger.warning("faremeter: reading breakers for /metrics failed", exc_info=True)
        yield from gauges.values()
        yield breaker

    def _budgets(self, meter: Meter, gauges: dict[str, GaugeMetricFamily]) -> None:
        budgets = getattr(meter, "budgets", None)
        if budgets is None:
            return
        per_budget: dict[str, list[Any]] = {}
        for status in _statuses(budgets):
            per_budget.setdefault(str(getattr(status, "budget", "")), []).append(status)
        for name, statuses in per_budget.items():
            # Per-subject budgets: the most used first, at most budget_subjects of them.
            statuses.sort(key=_used, reverse=True)
            for status in statuses[: self._budget_subjects]:
                subject = getattr(status, "subject", None)
                labels = [name, "" if subject is None else str(subject)]
                for field, gauge in gauges.items():
                    value = _number(getattr(status, field, None))
                    if value is not None:
                        gauge.add_metric(labels, value)

    @staticmethod
    def _breaker_states(breaker: Any, models: tuple[str, ...], gauge: GaugeMetricFamily) -> None:
        for model in models:
            state = breaker.state(model)
            state_name = str(getattr(state, "value", state)).lower()
            if state_name in _BREAKER_STATES:
                gauge.add_metric([model], _BREAKER_STATES[state_name])


def _used(status: Any) -> float:
    spent = _number(getattr(status, "spent", None)) or 0.0
    reserved = _number(getattr(status, "reserved", None)) or 0.0
    limit = _number(getattr(status, "limit", None)) or 0.0
    return (spent + reserved) / limit if limit > 0 else spent + reserved


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, PrometheusMetrics] = (
    weakref.WeakKeyDictionary()
)
_installed: weakref.WeakKeyDictionary[Meter, Callable[[], None]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def instrument(
    meter: Meter,
    *,
    registry: CollectorRegistry | None = None,
    labels: Sequence[str] | None = None,
    max_label_values: int = 100,
    budget_subjects: int = 20,
) -> PrometheusMetrics:
    """Feed ``meter``'s spans and budgets into Prometheus; idempotent.

    Circuit breakers live in fallback chains, not on the meter: add them with
    ``instrument(meter).watch_breaker(breaker, models)``.

    Several meters may share one registry (their series add up); the label
    set is fixed by the first ``instrument`` call on that registry.

    Args:
        meter: The meter to export.
        registry: Target registry (default: prometheus_client's global one).
        labels: Attribution keys to use as labels (default ``workflow``,
            ``team``). Listing an unbounded key such as ``user_id`` is allowed;
            ``max_label_values`` still bounds it.
        max_label_values: Bound on distinct values per label.
        budget_subjects: Bound on per-subject budget gauges per budget.

    Raises:
        ValueError: If ``labels`` differ from those already registered on
            ``registry``, or name a built-in label.
    """
    target = registry if registry is not None else REGISTRY
    wanted = tuple(DEFAULT_LABELS if labels is None else labels)
    with _lock:
        metrics = _by_registry.get(target)
        if metrics is None:
            metrics = PrometheusMetrics(
                registry=target,
                labels=wanted,
                max_label_values=max_label_values,
                budget_subjects=budget_subjects,
            )
            _by_registry[target] = metrics
        elif labels is not None and metrics.labels != wanted:
            raise ValueError(
                f"this registry already exports faremeter metrics with labels {metrics.labels}; "
                f"cannot add {wanted}"
            )
        previous = _installed.pop(meter, None)
        if previous is not None:
            previous()
        remove_listener = meter.add_span_listener(metrics)
        metrics.watch(meter)
        bound = metrics

        def undo() -> None:
            remove_listener()
            bound.unwatch(meter)

        _installed[meter] = undo
        return metrics


def uninstrument(meter: Meter) -> bool:
    """Stop exporting ``meter``; True if it was instrumented. Series already counted stay."""
    with _lock:
        undo = _installed.pop(meter, None)
    if undo is None:
        return False
    undo()
    return True


def multiprocess_registry(
    *meters: Meter,
    breakers: Sequence[tuple[Any, Sequence[str]]] = (),
    budget_subjects: int = 20,
) -> CollectorRegistry:
    """A registry for the ``/metrics`` endpoint of a multiprocess server.

    It aggregates every worker's counters from ``PROMETHEUS_MULTIPROC_DIR``
    (summed across processes) and adds the budget gauges read from ``meters``
    and the state of ``breakers`` (``(breaker, models)`` pairs) in the serving
    process — back them with a shared store (SQLite / Redis) to make them
    fleet-wide.

    Raises:
        ValueError: If ``PROMETHEUS_MULTIPROC_DIR`` is not set.
    """
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # pyright: ignore[reportUnknownMemberType]
    watched = list(meters)
    watched_breakers = [(breaker, tuple(models)) for breaker, models in breakers]
    if watched or watched_breakers:
        registry.register(
            _StateCollector(
                lambda: watched, budget_subjects, "faremeter", breakers=lambda: watched_breakers
            )
        )
    return registry
