"""The :class:`Meter`: the one object an application holds.

It ties the price catalog, the ledger and (later) budgets together and opens
spans. Everything an adapter does goes through it, so pricing, attribution and
storage rules live here once instead of in every framework integration.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from faremeter.context import (
    activate,
    clean_attributes,
    current_attributes,
    current_span,
    deactivate,
)
from faremeter.cost import Cost, to_decimal
from faremeter.errors import ConfigError, UnknownModelError
from faremeter.open_span import OpenSpan, TraceState
from faremeter.spans import (
    SpanKind,
    SpanRecord,
    SpanStatus,
    build_record,
    new_span_id,
    new_trace_id,
)
from faremeter.tree import TraceTree
from faremeter.usage import Usage

if TYPE_CHECKING:
    import contextvars

    from faremeter.ledger import Ledger, LedgerHealth
    from faremeter.pricing import PriceCatalog

__all__ = ["DEFAULT_LEDGER_URL", "IdGenerator", "Meter", "SpanScope", "get_meter", "set_meter"]

logger = logging.getLogger("faremeter")

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_LEDGER_URL = "sqlite:///.faremeter/ledger.db"
"""Where ``Meter()`` keeps its ledger when nothing else is configured."""

_LEDGER_SCHEMES = ("memory", "sqlite:///", "postgresql://", "postgres://")
_PRICED_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})
_MAX_ERROR_CHARS = 500


class IdGenerator(Protocol):
    """Where trace and span ids come from (deterministic in tests)."""

    def trace_id(self) -> str:
        """A new 32-hex-digit trace id."""
        ...

    def span_id(self) -> str:
        """A new 16-hex-digit span id."""
        ...


class _RandomIds:
    __slots__ = ()

    def trace_id(self) -> str:
        return new_trace_id()

    def span_id(self) -> str:
        return new_span_id()


def _describe_error(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


class SpanScope:
    """The handle a ``with meter.trace(...)`` / ``with meter.span(...)`` block gets.

    Usable as a sync or async context manager. Exceptions from the body are
    recorded on the span (status ``error``) and re-raised unchanged.
    """

    __slots__ = ("_kw", "_meter", "_new_trace", "_token", "span")

    def __init__(self, meter: Meter, new_trace: bool, kw: dict[str, Any]) -> None:
        self._meter = meter
        self._new_trace = new_trace
        self._kw = kw
        self._token: contextvars.Token[OpenSpan | None] | None = None
        self.span: OpenSpan | None = None

    # -- context manager protocol -------------------------------------------------
    def __enter__(self) -> SpanScope:
        self.span = self._meter.start_span(new_trace=self._new_trace, **self._kw)
        if self._new_trace:
            self.span.trace.root = self.span
        self._token = activate(self.span)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            deactivate(self._token)
            self._token = None
        if self.span is not None:
            from faremeter.errors import BudgetExceeded

            if exc is None:
                self.span.end()
            elif isinstance(exc, BudgetExceeded):
                self.span.end(status=SpanStatus.DENIED, error=exc, error_class="budget")
            else:
                self.span.end(status=SpanStatus.ERROR, error=exc)

    async def __aenter__(self) -> SpanScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- handle -------------------------------------------------------------------
    def _open(self) -> OpenSpan:
        if self.span is None:
            raise RuntimeError("enter the block before using its handle")
        return self.span

    @property
    def trace_id(self) -> str:
        """The trace this block records into."""
        return self._open().trace_id

    @property
    def span_id(self) -> str:
        """The block's own span."""
        return self._open().span_id

    @property
    def cost(self) -> Decimal:
        """Running total of everything priced so far in this block's subtree.

        For a trace block that is the whole trace. Unpriced spans are not in
        it; :attr:`unpriced` counts them.
        """
        span = self._open()
        if self._new_trace:
            return span.trace.cost
        node = self.tree().find_span(span.span_id)
        return node.total_cost if node else Decimal(0)

    @property
    def unpriced(self) -> int:
        """Spans in the trace that could not be priced (unknown model or tool)."""
        return self._open().trace.unpriced

    def tree(self) -> TraceTree:
        """The trace so far, with direct, child and total cost per span."""
        return self._open().trace.tree()

    def set_attributes(self, **attrs: Any) -> None:
        """Add attribution to this block's span."""
        self._open().set_attributes(**attrs)


class Meter:
    """Prices, attributes and records what an application's agents spend.

    ``Meter()`` works with zero configuration: a SQLite ledger at
    ``.faremeter/ledger.db`` (created on first use), overridden by
    ``FAREMETER_LEDGER_URL`` or ``ledger=``; the bundled price snapshot.

    Args:
        ledger: ``"memory"``, ``"sqlite:///path.db"``, ``"postgresql://..."`` or a
            ready :class:`~faremeter.ledger.Ledger`.
        catalog: Prices; defaults to the bundled snapshot.
        attributes: Attribution stamped on every span (e.g. ``environment``).
        store_content: Keep prompts and responses (off by default).
        queue_size: Bound of the in-memory queue in front of the ledger.
        clock: Nanoseconds since the epoch; injectable for tests.
        ids: Trace/span id source; injectable for tests.
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
        self.ids: IdGenerator = ids or _RandomIds()
        self._lock = threading.Lock()
        self._warned_models: set[str] = set()
        self._faults = 0

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Meter:
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

        Args:
            name: What to call it.
            kind: agent, chain, llm, tool, retrieval, embedding or cache.
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
        merged: dict[str, Any] = dict(self.default_attributes)
        if parent is not None:
            merged.update(parent.attributes)
        merged.update(current_attributes())
        if attributes:
            merged.update(clean_attributes(attributes))
        if parent is not None and new_trace:
            merged["parent_trace_id"] = parent.trace_id
        if parent is None or new_trace:
            trace = TraceState(self.ids.trace_id())
            parent_id = None
        else:
            trace = parent.trace
            parent_id = parent.span_id
        return OpenSpan(
            meter=self,
            trace=trace,
            span_id=self.ids.span_id(),
            parent_span_id=parent_id,
            name=name,
            kind=kind if type(kind) is SpanKind else SpanKind(kind),
            start_ns=self.clock() if start_ns is None else start_ns,
            attributes=merged,
            model=model,
            provider=provider,
            tags=tags,
        )

    def _finish(
        self,
        span: OpenSpan,
        *,
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
        try:
            model = model or span.model
            if cost is None:
                cost = self._default_cost(span, status, usage, model)
            if attributes:
                span.attributes.update(clean_attributes(attributes))
            # Positional, in SpanRecord's field order (see build_record).
            record = build_record(
                span.trace.trace_id,
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
                self._price_version(cost),
                span.attributes,
                span.tags,
                _describe_error(error),
                error_class,
                content if self.store_content else None,
            )
            trace = span.trace
            trace.add(record)
            if trace.root is span:
                # The root's record now stands in for it; keeping the reference
                # would tie span and trace in a cycle that only the cyclic GC
                # frees (measurably slower per run than plain refcounting).
                trace.root = None
            self.ledger.record(record)
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
                # A failed request is not billed; a finished one without counts
                # cost *something* we do not know — unpriced, never $0.
                if status is SpanStatus.ERROR:
                    return Cost()
                return Cost.unpriced("no usage reported", model=model)
            if not model:
                return Cost.unpriced("no model name reported")
            return self.price(model, usage)
        if span.kind is SpanKind.TOOL and status is SpanStatus.OK:
            return self.catalog.tool_cost(span.name)
        return Cost()

    def _price_version(self, cost: Cost) -> str | None:
        if cost.model is None or not cost.priced:
            return None
        return getattr(self.catalog, "price_version", None)

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
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a tool so each call is a priced ``tool`` span.

        Without prices the catalog's tool price for ``name`` applies (unpriced
        if none is configured). ``units`` computes billable units from the
        result (e.g. ``len`` of returned records) for per-unit prices. A tool
        that raises is recorded as an error span, not charged, and the
        exception propagates unchanged. Works on sync and async functions.
        """
        per_call = None if price_per_call is None else to_decimal(price_per_call)
        per_unit = None if price_per_unit is None else to_decimal(price_per_unit)
        for label, value in (("price_per_call", per_call), ("price_per_unit", per_unit)):
            if value is not None and value < 0:
                raise ValueError(f"{label} must be >= 0, got {value}")

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            tool_name = name or func.__name__

            def price(result: Any) -> Cost:
                n_units = units(result) if units is not None else None
                if per_call is None and per_unit is None:
                    return self.catalog.tool_cost(tool_name, calls=1, units=n_units)
                amount = per_call or Decimal(0)
                if per_unit is not None:
                    amount += per_unit * to_decimal(n_units or 0)
                return Cost.of_tool(amount)

            def finish(span: OpenSpan, result: Any) -> None:
                try:
                    cost = price(result)
                except Exception:  # a bad units() must not break the tool
                    logger.exception("faremeter: pricing tool %r failed", tool_name)
                    cost = Cost.unpriced("pricing the tool failed")
                span.end(cost=cost)

            if inspect.iscoroutinefunction(func):
                async_func: Callable[..., Awaitable[Any]] = func

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    span = self.start_span(tool_name, kind=SpanKind.TOOL)
                    token = activate(span)
                    try:
                        result = await async_func(*args, **kwargs)
                    except BaseException as exc:
                        span.end(status=SpanStatus.ERROR, error=exc, cost=Cost())
                        raise
                    finally:
                        deactivate(token)
                    finish(span, result)
                    return result

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(func)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                span = self.start_span(tool_name, kind=SpanKind.TOOL)
                token = activate(span)
                try:
                    result = func(*args, **kwargs)
                except BaseException as exc:
                    span.end(status=SpanStatus.ERROR, error=exc, cost=Cost())
                    raise
                finally:
                    deactivate(token)
                finish(span, result)
                return result

            return wrapper

        if fn is not None:
            return decorate(fn)
        return decorate

    # -- lifecycle ----------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Write everything recorded so far; True when it all reached storage."""
        if self._ledger is None:
            return True
        return self._ledger.flush(timeout)

    def close(self) -> None:
        """Flush and release the ledger."""
        if self._ledger is not None:
            self._ledger.close()

    def health(self) -> LedgerHealth:
        """The ledger's state: queued, written, dropped, failures, last error."""
        return self.ledger.health()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default_meter: Meter | None = None
_default_lock = threading.Lock()


def get_meter() -> Meter:
    """The process-wide meter adapters use when given none (created on first use)."""
    global _default_meter
    meter = _default_meter
    if meter is None:
        with _default_lock:
            if _default_meter is None:
                config_path = os.environ.get("FAREMETER_CONFIG")
                if config_path or Path("faremeter.toml").exists():
                    _default_meter = Meter.from_config(config_path)
                else:
                    _default_meter = Meter()
            meter = _default_meter
    return meter


def set_meter(meter: Meter | None) -> Meter | None:
    """Install ``meter`` as the process-wide default; returns the previous one."""
    global _default_meter
    with _default_lock:
        previous, _default_meter = _default_meter, meter
    return previous
