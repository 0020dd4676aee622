"""The :class:`Meter`: the one object an application holds.

It ties the price catalog, the ledger and the budgets together and opens
spans. Everything an adapter does goes through it, so pricing, attribution and
storage rules live here once instead of in every framework integration.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from faremeter import default_meter
from faremeter.context import clean_attributes, current_attributes, current_span
from faremeter.cost import Cost
from faremeter.errors import ConfigError, UnknownModelError
from faremeter.ids import IdGenerator, RandomIds
from faremeter.open_span import OpenSpan, TraceState
from faremeter.priced_tool import ToolPricing, wrap_priced_tool
from faremeter.redact import describe_error
from faremeter.scope import SpanScope
from faremeter.spans import SpanKind, SpanRecord, SpanStatus, build_record
from faremeter.usage import Usage

if TYPE_CHECKING:
    from faremeter.caching import ToolCache
    from faremeter.ledger import Ledger, LedgerHealth
    from faremeter.pricing import PriceCatalog

__all__ = ["DEFAULT_LEDGER_URL", "Meter", "MeterHealth"]

logger = logging.getLogger("faremeter")

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_LEDGER_URL = "sqlite:///.faremeter/ledger.db"
"""Where ``Meter()`` keeps its ledger when nothing else is configured."""

_LEDGER_SCHEMES = ("memory", "sqlite:///", "postgresql://", "postgres://")
_PRICED_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})
_WRAPPER_ATTRS = {"wrapper": True}


class MeterHealth:
    """What :meth:`Meter.health` reports: the ledger's state plus faremeter's own faults."""

    __slots__ = ("faults", "ledger")

    def __init__(self, ledger: LedgerHealth, faults: int) -> None:
        self.ledger = ledger
        self.faults = faults

    def __getattr__(self, name: str) -> Any:
        # The ledger's fields (queued, written, dropped, ok, ...) read through.
        return getattr(self.ledger, name)

    def __repr__(self) -> str:
        return f"MeterHealth(faults={self.faults}, ledger={self.ledger!r})"


class Meter:
    """Prices, attributes and records what an application's agents spend.

    ``Meter()`` works with zero configuration: a SQLite ledger at
    ``.faremeter/ledger.db`` (created on first use), overridden by
    ``FAREMETER_LEDGER_URL`` or ``ledger=``; the bundled price snapshot. The
    first meter an application creates becomes the process default that
    adapters record into when they are given no meter (see
    :func:`faremeter.get_meter`).

    Args:
        ledger: ``"memory"``, ``"sqlite:///path.db"``, ``"postgresql://..."`` or a
            ready :class:`~faremeter.ledger.Ledger`.
        catalog: Prices; defaults to the bundled snapshot.
        attributes: Attribution stamped on every span (e.g. ``environment``).
        store_content: Keep prompts and responses (off by default).
        queue_size: Bound of the in-memory queue in front of the ledger.
        clock: Nanoseconds since the epoch; injectable for tests.
        ids: Trace/span id source; injectable for tests.
        budgets: A :class:`~faremeter.budgets.BudgetManager`, or a list of
            :class:`~faremeter.Budget` to enforce with ``budget_store``.
        budget_store: Where budget spend lives: ``"memory"`` (default),
            ``"sqlite:///path.db"`` or ``"redis://host:port/db"``.
    """

    def __init__(
        self,
        *,
        ledger: str | Ledger | None = None,
        catalog: PriceCatalog | None = None,
        attributes: Mapping[str, Any] | None = None,
        store_content: bool = False,
        queue_size: int = 100_000,
        clock: Callable[[], int] | None = None,
        ids: IdGenerator | None = None,
        budgets: Any = None,
        budget_store: str | None = None,
        _register: bool = True,
    ) -> None:
        if isinstance(ledger, str) or ledger is None:
            url = ledger or os.environ.get("FAREMETER_LEDGER_URL") or DEFAULT_LEDGER_URL
            if not url.startswith(_LEDGER_SCHEMES):
                raise ConfigError(
                    f"ledger url {url!r} is not supported; use 'memory', "
                    "'sqlite:///path.db' or 'postgresql://user@host/db'"
                )
            self._ledger_url: str | None = url
            self._ledger: Ledger | None = None
        else:
            self._ledger_url = None
            self._ledger = ledger
        self._catalog = catalog
        self.default_attributes = clean_attributes(attributes or {})
        self.store_content = store_content
        self._queue_size = queue_size
        self.clock: Callable[[], int] = clock or time.time_ns
        self.ids: IdGenerator = ids or RandomIds()
        self._lock = threading.Lock()
        self._warned_models: set[str] = set()
        self._faults = 0
        self._listeners: tuple[Callable[[SpanRecord], None], ...] = ()
        self.budgets: Any = self._budget_manager(budgets, budget_store, self.clock)
        if _register:
            default_meter.adopt(self)

    @staticmethod
    def _budget_manager(budgets: Any, store: str | None, clock: Callable[[], int]) -> Any:
        if budgets is None:
            return None
        if isinstance(budgets, list | tuple):
            from faremeter.budgets import BudgetManager

            # The meter's clock, so budget windows and span times agree (and tests
            # with a fake clock roll windows deterministically).
            return BudgetManager(list(budgets), store=store or "memory", clock=clock)  # pyright: ignore[reportUnknownArgumentType]
        return budgets

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, /, **overrides: Any) -> Meter:
        """Build a meter from ``faremeter.toml`` (or ``FAREMETER_CONFIG``).

        Raises:
            ConfigError: Naming the file, the key and the reason.
        """
        from faremeter.config import load_config
        from faremeter.pricing import PriceCatalog

        config = load_config(Path(path) if path is not None else None)
        kwargs: dict[str, Any] = {
            "catalog": PriceCatalog.from_config(config),
            "ledger": config.ledger.url,
            "store_content": config.ledger.store_content,
            "queue_size": config.ledger.queue_size,
        }
        kwargs.update(overrides)
        if config.budgets and "budgets" not in overrides:
            from faremeter.budgets.config import budgets_from_config, manager_from_config

            budgets = budgets_from_config(config.budgets, source=config.source)
            clock = overrides.get("clock")
            extra = {"clock": clock} if clock is not None else {}
            kwargs["budgets"] = manager_from_config(budgets, config.budget_store, **extra)
        return cls(**kwargs)

    # -- parts --------------------------------------------------------------------
    @property
    def catalog(self) -> PriceCatalog:
        """The prices this meter charges at."""
        if self._catalog is None:
            from faremeter.pricing import PriceCatalog

            self._catalog = PriceCatalog.default()
        return self._catalog

    @property
    def ledger(self) -> Ledger:
        """Where spans are stored; opened on first use."""
        ledger = self._ledger
        if ledger is None:
            with self._lock:
                if self._ledger is None:
                    from faremeter.ledger import Ledger

                    assert self._ledger_url is not None
                    self._ledger = Ledger.from_url(
                        self._ledger_url,
                        queue_size=self._queue_size,
                        store_content=self.store_content,
                    )
                ledger = self._ledger
        return ledger

    # -- pricing ------------------------------------------------------------------
    def price(self, model: str, usage: Usage, *, batch: bool = False) -> Cost:
        """Price a model call; an unknown model is unpriced (and warned once), never raised."""
        try:
            return self.catalog.cost(model, usage, batch=batch)
        except UnknownModelError as exc:
            with self._lock:
                first = model not in self._warned_models
                self._warned_models.add(model)
            if first:
                logger.warning(
                    "faremeter: %s; calls to it are recorded unpriced. Add it under "
                    "[prices] in faremeter.toml or PriceCatalog.with_overrides().",
                    exc,
                )
            return Cost.unpriced(f"unknown model {model!r}", model=model)

    # -- budgets ------------------------------------------------------------------
    def reserve_call(self, span: OpenSpan, amount: Decimal | None) -> Any:
        """Reserve ``amount`` against every budget matching ``span`` (before the call runs).

        Returns the reservation to settle, or ``None`` when no budget is
        configured. Raises :class:`~faremeter.BudgetExceeded` when a ``deny``
        budget would be crossed; the caller records the denial.
        """
        manager = self.budgets
        if manager is None:
            return None
        return manager.reserve(
            attributes=span.attributes,
            trace_id=span.trace_id,
            amount=amount,
            kind="tool" if span.kind is SpanKind.TOOL else "llm",
            name=span.model or span.name,
        )

    def unreserved_call(self, span: OpenSpan) -> Any:
        """A zero reservation whose settlement commits ``span``'s real cost, unchecked.

        For a call a budget refused but the framework runs anyway (LlamaIndex
        cannot be stopped from a callback): the money is still counted.
        """
        manager = self.budgets
        if manager is None or not hasattr(manager, "unreserved"):
            return None
        try:
            return manager.unreserved(
                attributes=span.attributes,
                trace_id=span.trace_id,
                kind="tool" if span.kind is SpanKind.TOOL else "llm",
                name=span.model or span.name,
            )
        except Exception:  # a budget store fault must not break the call
            self._faults += 1
            logger.exception("faremeter: recording an unreserved call failed")
            return None

    def settle_call(self, reservation: Any, cost: Cost | None, *, failed: bool = False) -> None:
        """Settle a reservation to what the call really cost (or release it on failure)."""
        if reservation is None:
            return
        try:
            if failed:
                reservation.release()
            else:
                # A call that ran but could not be priced commits its estimate
                # (settle(None)): spend nobody can price is not free.
                reservation.settle(None if cost is None else cost.total)
        except Exception:  # a budget store fault must not break the app after the call ran
            self._faults += 1
            logger.exception("faremeter: settling a budget reservation failed")

    # -- spans --------------------------------------------------------------------
    def trace(self, name: str, **attributes: Any) -> SpanScope:
        """Open a new trace (one agent run / task) as a ``with`` block.

        A trace opened inside another trace is its own trace (its own cost and
        per-trace budget) linked by the ``parent_trace_id`` attribute; it
        inherits the outer attribution.

        Example:
            >>> with meter.trace("research", user_id="u1", workflow="deep") as t:
            ...     agent.invoke(question)
            >>> t.cost, t.tree()
        """
        return SpanScope(
            self, True, {"name": name, "kind": SpanKind.AGENT, "attributes": attributes}
        )

    def span(
        self, name: str, *, kind: SpanKind | str = SpanKind.CHAIN, **attributes: Any
    ) -> SpanScope:
        """Open a child span of the current span (or a new trace if there is none)."""
        return SpanScope(
            self, False, {"name": name, "kind": SpanKind(kind), "attributes": attributes}
        )

    def start_span(
        self,
        name: str,
        *,
        kind: SpanKind | str,
        parent: OpenSpan | None = None,
        new_trace: bool = False,
        attributes: Mapping[str, Any] | None = None,
        model: str | None = None,
        provider: str | None = None,
        tags: tuple[str, ...] = (),
        start_ns: int | None = None,
    ) -> OpenSpan:
        """Start a span whose end will be reported later (adapters use this).

        A model call started inside another open model call (a LangChain model
        that calls LiteLLM, a LlamaIndex LLM wrapping another) marks the outer
        one a *wrapper*: the call closest to the provider carries the cost and
        the wrapper records $0, so one provider request is charged once.

        Args:
            name: What to call it.
            kind: agent, chain, llm, tool, retrieval or embedding.
            parent: The parent span; defaults to the current span of this
                context (so spans from any framework nest under the enclosing
                ``meter.trace`` / adapter span).
            new_trace: Start a new trace even inside another one.
            attributes: Attribution for this span; it also inherits the
                parent's and the context's.
            model: The model requested, for LLM and embedding spans.
            provider: The provider, when known.
            tags: Free-form labels.
            start_ns: Start time; defaults to now.
        """
        if parent is None:
            parent = current_span()
        return self._open(
            name, kind, parent, new_trace, attributes, model, provider, tags, start_ns
        )

    def _open(
        self,
        name: str,
        kind: SpanKind | str,
        parent: OpenSpan | None,
        new_trace: bool,
        attributes: Mapping[str, Any] | None,
        model: str | None,
        provider: str | None,
        tags: tuple[str, ...],
        start_ns: int | None,
    ) -> OpenSpan:
        """:meth:`start_span` with the parent already resolved (``None``: a new trace).

        Positional, for the call lifecycle's hot path, which has looked the
        parent up already.
        """
        kind = kind if type(kind) is SpanKind else SpanKind(kind)
        defaults = self.default_attributes
        merged: dict[str, Any] = dict(defaults) if defaults else {}
        if parent is not None:
            merged.update(parent.attributes)
        in_context = current_attributes()
        if in_context:
            merged.update(in_context)
        if attributes:
            merged.update(clean_attributes(attributes))
        if parent is None or new_trace:
            if parent is not None:
                merged["parent_trace_id"] = parent.trace_id
            trace = TraceState(self.ids.trace_id(), 1)  # its first span: counted unlocked
            parent_id = None
        else:
            trace = parent.trace
            parent_id = parent.span_id
            if kind in _PRICED_KINDS:
                _mark_wrapper(parent, kind)
            trace.opened()
        # Built in place rather than through OpenSpan(...): keyword passing of
        # thirteen arguments costs more than the assignments themselves.
        span = object.__new__(OpenSpan)
        span.meter = self
        span.trace = trace
        span.span_id = self.ids.span_id()
        span.parent = None if new_trace else parent
        span.wrapper = False
        span.parent_span_id = parent_id
        span.name = name
        span.kind = kind
        span.start_ns = self.clock() if start_ns is None else start_ns
        span.attributes = merged
        span.model = model
        span.provider = provider
        span.tags = tags
        span._ended = False  # pyright: ignore[reportPrivateUsage]
        return span

    def _finish(
        self,
        span: OpenSpan,
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
        trace = span.trace
        try:
            model = model or span.model
            if span.wrapper and span.kind in _PRICED_KINDS:
                # The call below, closest to the provider, carries the cost.
                cost, usage, saved = Cost(), None, None
                span.attributes.update(_WRAPPER_ATTRS)
            elif cost is None:
                cost = self._default_cost(span, status, usage, model)
            if attributes:
                span.attributes.update(clean_attributes(attributes))
            if error is not None:
                error = describe_error(error, keep_content=self.store_content)
                if error_class is None and status is SpanStatus.ERROR:
                    from faremeter.error_classes import classify_error

                    error_class = classify_error(error)
            version = None
            if cost.model is not None and cost.unpriced_reason is None:
                version = getattr(self.catalog, "price_version", None)
            # Positional, in SpanRecord's field order (see build_record).
            record = build_record(
                trace.trace_id,
                span.span_id,
                span.parent_span_id,
                span.name,
                span.kind,
                status,
                span.start_ns,
                self.clock() if end_ns is None else end_ns,
                model,
                provider or span.provider,
                usage,
                cost,
                saved,
                version,
                span.attributes,
                span.tags,
                error,
                error_class,
                content if self.store_content else None,
            )
            trace.add(record)
            if trace.root is span:
                # The root's record now stands in for it; keeping the reference
                # would tie span and trace in a cycle that only the cyclic GC
                # frees (measurably slower per run than plain refcounting).
                trace.root = None
            for listener in self._listeners:
                try:
                    listener(record)
                except Exception:  # an exporter's fault must not lose the span
                    self._faults += 1
                    logger.exception("faremeter: span listener %r failed", listener)
            ledger = self._ledger
            (self.ledger if ledger is None else ledger).record(record)
            return record
        except Exception:  # faremeter's own fault must never break the host app
            self._faults += 1
            logger.exception("faremeter: failed to record span %r", span.name)
            return None

    def _default_cost(
        self, span: OpenSpan, status: SpanStatus, usage: Usage | None, model: str | None
    ) -> Cost:
        if span.kind in _PRICED_KINDS:
            if usage is None:
                # A failed or refused request is not billed; a finished one
                # without counts cost *something* we do not know — unpriced, never $0.
                if status is SpanStatus.ERROR or status is SpanStatus.DENIED:
                    return Cost()
                return Cost.unpriced("no usage reported", model=model)
            if not model:
                return Cost.unpriced("no model name reported")
            return self.price(model, usage)
        if span.kind is SpanKind.TOOL and status is SpanStatus.OK:
            return self.catalog.tool_cost(span.name)
        return Cost()

    # -- manual recording ---------------------------------------------------------
    def record_llm(
        self,
        model: str,
        usage: Usage,
        *,
        name: str | None = None,
        latency_ms: float | None = None,
        provider: str | None = None,
        status: SpanStatus | str = SpanStatus.OK,
        cost: Cost | None = None,
        kind: SpanKind | str = SpanKind.LLM,
        **attributes: Any,
    ) -> SpanRecord | None:
        """Record a model call made outside any instrumented framework.

        The call becomes a child of the current span (or its own trace), priced
        from the catalog unless ``cost`` is given.
        """
        end = self.clock()
        start = end - int((latency_ms or 0.0) * 1e6)
        span = self.start_span(
            name or model,
            kind=kind,
            attributes=attributes,
            model=model,
            provider=provider,
            start_ns=start,
        )
        return span.end(status=status, usage=usage, cost=cost, end_ns=end)

    def record_tool(
        self,
        name: str,
        *,
        calls: int = 1,
        units: int | Decimal | None = None,
        cost: Cost | Decimal | float | str | None = None,
        latency_ms: float | None = None,
        status: SpanStatus | str = SpanStatus.OK,
        **attributes: Any,
    ) -> SpanRecord | None:
        """Record a tool call; priced by ``cost`` or the catalog's tool prices."""
        if cost is None:
            priced = self.catalog.tool_cost(name, calls=calls, units=units)
        elif isinstance(cost, Cost):
            priced = cost
        else:
            priced = Cost.of_tool(cost)
        end = self.clock()
        start = end - int((latency_ms or 0.0) * 1e6)
        span = self.start_span(name, kind=SpanKind.TOOL, attributes=attributes, start_ns=start)
        return span.end(status=status, cost=priced, end_ns=end)

    @overload
    def priced_tool(self, fn: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def priced_tool(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        price_per_call: Decimal | float | str | None = None,
        price_per_unit: Decimal | float | str | None = None,
        units: Callable[[Any], int | Decimal] | None = None,
        cache: ToolCache | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def priced_tool(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        price_per_call: Decimal | float | str | None = None,
        price_per_unit: Decimal | float | str | None = None,
        units: Callable[[Any], int | Decimal] | None = None,
        cache: ToolCache | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a tool so each call is a priced ``tool`` span.

        Without prices the catalog's tool price for ``name`` applies (unpriced
        if none is configured). ``units`` computes billable units from the
        result (e.g. ``len`` of returned records) for per-unit prices. A known
        per-call price is reserved against budgets first: a denied tool never
        runs. A tool that raises is recorded as an error span, not charged,
        and the exception propagates unchanged. Works on sync and async
        functions. With ``cache`` (a :class:`~faremeter.ToolCache`), a repeated
        call with the same arguments is served from the cache as a ``cached``
        span that costs $0 and records what it ``saved``.
        """
        if price_per_call is not None or price_per_unit is not None:
            ToolPricing(
                "_", price_per_call=price_per_call, price_per_unit=price_per_unit, units=None
            )

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            pricing = ToolPricing(
                name or func.__name__,
                price_per_call=price_per_call,
                price_per_unit=price_per_unit,
                units=units,
            )
            if cache is not None:
                from faremeter.caching.tool_cache import cache_priced_tool

                return cache_priced_tool(self, cache, func, pricing)
            return wrap_priced_tool(self, func, pricing)

        if fn is not None:
            return decorate(fn)
        return decorate

    def record_outcome(
        self,
        name: str,
        value: int | float | Decimal | str = 1,
        *,
        trace: Any = None,
        **attributes: Any,
    ) -> SpanRecord | None:
        """Record that a task achieved ``name`` (``ticket_resolved``), at no cost.

        A zero-cost ``outcome:<name>`` span under the trace root;
        :func:`faremeter.analytics.cost_per_outcome` turns outcomes into unit
        economics ("$1.20 per resolved ticket").
        """
        from faremeter.analytics.outcomes import record_outcome

        return record_outcome(self, name, value, trace=trace, **attributes)

    # -- listeners ----------------------------------------------------------------
    def add_span_listener(self, listener: Callable[[SpanRecord], None]) -> Callable[[], None]:
        """Call ``listener`` with every span this meter finishes; returns its remover.

        Listeners (exporters, live anomaly detection, metrics) run on the
        recording thread right after the span joined its trace and before it
        is queued for the ledger, so they must be quick and must not block;
        their exceptions are logged and counted, never raised into the app.
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    # -- lifecycle ----------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Finish in-flight calls and write everything recorded so far.

        First waits (at most ``timeout``, default 5 s for this part) for calls
        that adapters started and that end on their own — LiteLLM ends sync
        calls on a logging thread — so that after a True return every call
        made inside a trace is in the ledger and in its ``t.cost``. Streams a
        consumer has not drained yet are not waited for.

        Returns:
            True when nothing is in flight any more and it all reached storage.
        """
        from faremeter.calls import drain_calls

        deadline = time.monotonic() + (5.0 if timeout is None else timeout)
        drained = drain_calls(self, deadline)
        if self._ledger is None:
            return drained
        left = None if timeout is None else max(0.0, deadline - time.monotonic())
        return self._ledger.flush(left) and drained

    def close(self) -> None:
        """Flush and release the ledger."""
        if self._ledger is not None:
            self._ledger.close()
        default_meter.forget(self)

    def health(self) -> MeterHealth:
        """The ledger's state (queued, written, dropped, failures) and faremeter's own faults."""
        return MeterHealth(self.ledger.health(), self._faults)

    def count_fault(self) -> None:
        """Count one of faremeter's own faults (adapters call it when they swallow one)."""
        self._faults += 1

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _from_environment() -> Meter:
    """The meter :func:`faremeter.get_meter` builds when the app made none."""
    config_path = os.environ.get("FAREMETER_CONFIG")
    if config_path or Path("faremeter.toml").exists():
        return Meter.from_config(config_path, _register=False)
    return Meter(_register=False)


default_meter.set_factory(_from_environment)


def _mark_wrapper(parent: OpenSpan, kind: SpanKind) -> None:
    """Mark the nearest open model call above a new one as its wrapper."""
    node: OpenSpan | None = parent
    while node is not None:
        if node.kind is kind and not node.ended:
            node.wrapper = True
            return
        node = node.parent
