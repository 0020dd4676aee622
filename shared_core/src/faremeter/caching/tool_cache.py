"""``ToolCache``: content-addressed caching of tool calls that records what it saved.

The key is the tool name plus the canonical JSON of the call's arguments
(bound to parameter names, defaults applied; rules in
:mod:`faremeter.caching.keys`). A hit returns the stored result without
running the tool and is recorded as a ``cached`` span with cost 0 and
``saved`` = what the miss cost; a miss runs the tool and records normally
(who records what: :mod:`faremeter.caching.recording`).

Concurrent identical misses run the tool once: threads and coroutines of one
process share the leader's result (:mod:`faremeter.caching.singleflight`); on
a shared store (SQLite file, Redis) a store lock makes other processes wait
for the leader's value instead of calling the tool again. A store outage is a
miss, logged once — never an error in the agent.

Failures are not cached unless the exception type is listed in
``cache_errors`` (for deterministic failures such as "no such record").
Results must be JSON data (or be turned into it by ``serialize``); a result
that is not is returned uncached. JSON has no tuples: a tuple comes back from
a hit as a list.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from faremeter.caching.backends import CacheBackend, backend_from_url
from faremeter.caching.entries import CacheEntry, decode_entry
from faremeter.caching.guarded import GuardedStore
from faremeter.caching.keys import bind_arguments, canonical_json, digest
from faremeter.caching.recording import claimable_span, key_digest, record_hit, tag_miss
from faremeter.caching.singleflight import AsyncSingleFlight, SingleFlight
from faremeter.context import activate, attributes, deactivate
from faremeter.cost import Cost, to_decimal
from faremeter.spans import SpanKind, SpanStatus

if TYPE_CHECKING:
    from faremeter.meter import Meter

__all__ = ["CacheStats", "CachedToolError", "ToolCache", "cache_priced_tool"]

logger = logging.getLogger("faremeter.caching")

P = ParamSpec("P")
R = TypeVar("R")

_UNSET: Any = object()


class CachedToolError(Exception):
    """A cached failure whose original exception type could not be rebuilt."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message} (cached)")
        self.type_name = type_name
        self.message = message


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheStats:
    """What one cache did in this process (the ledger has the durable picture).

    Attributes:
        hits: Calls answered from the store or by another caller's run.
        misses: Calls that ran the tool.
        uncacheable: Calls run without the cache (arguments with no key,
            results that are not JSON, excluded tools).
        store_failures: Store operations that failed and were treated as misses.
    """

    hits: int
    misses: int
    uncacheable: int
    store_failures: int

    @property
    def hit_rate(self) -> float:
        """Hits over cacheable calls (0.0 before any call)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass(frozen=True, slots=True)
class _Outcome:
    value: Any
    text: str | None
    entry: CacheEntry | None
    from_store: bool


class _Tool:
    """One wrapped tool: its name, how its results are priced and (de)serialised."""

    __slots__ = ("cost", "deserialize", "fn", "key", "meter", "name", "records_miss", "serialize")

    def __init__(
        self,
        *,
        fn: Callable[..., Any],
        name: str,
        cost: Callable[[Any], Cost] | None,
        records_miss: bool | None,
        key: Callable[..., Any] | None,
        serialize: Callable[[Any], Any] | None,
        deserialize: Callable[[Any], Any] | None,
        meter: Meter | None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.cost = cost
        self.records_miss = records_miss
        self.key = key
        self.serialize = serialize
        self.deserialize = deserialize
        self.meter = meter


class ToolCache:
    """Cache tool results by content and record every hit's saving.

    Example:
        >>> cache = ToolCache(ttl=3600, backend="sqlite:///.faremeter/cache.db")
        >>> @cache.wrap(price="0.005")
        ... def web_search(query: str) -> list[str]: ...

    Args:
        ttl: Seconds an entry is served (``None``: until evicted). Default 1 h.
        backend: A :class:`~faremeter.caching.backends.CacheBackend` or a URL
            (``memory``, ``sqlite:///path.db``, ``redis://host:6379/0``).
        ttls: Per-tool TTLs overriding ``ttl`` (``{"web_search": 600}``).
        exclude: Tools never cached (side effects: sending mail, payments).
        cache_errors: Exception types whose failures are cached too.
        meter: Where spans go; the process default meter when omitted.
        clock: Seconds since the epoch for TTLs (injectable for tests).
        outage_cooldown: After a store failure, seconds during which the store
            is not asked (every call is a miss) before it is tried again.
        sleep: How a process waits for another's result (injectable).
        async_sleep: The same for coroutines (default ``asyncio.sleep``).
        lock_ttl: Longest a process waits for another process running the
            same call before running it itself (and the lock's lifetime).
        poll_interval: Seconds between checks while waiting for that process.
        namespace: Key prefix, so two caches can share one store.
    """

    def __init__(
        self,
        *,
        ttl: float | None = 3600.0,
        backend: CacheBackend | str = "memory",
        ttls: Mapping[str, float | None] | None = None,
        exclude: Iterable[str] = (),
        cache_errors: tuple[type[Exception], ...] = (),
        meter: Meter | None = None,
        clock: Callable[[], float] = time.time,
        outage_cooldown: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
        lock_ttl: float = 30.0,
        poll_interval: float = 0.05,
        namespace: str = "tool",
    ) -> None:
        self.default_ttl = _check_ttl("ttl", ttl)
        self.ttls = {name: _check_ttl(f"ttls[{name!r}]", v) for name, v in (ttls or {}).items()}
        self.exclude = frozenset(exclude)
        for exc_type in cache_errors:
            if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(f"cache_errors must hold Exception subclasses, got {exc_type!r}")
        self.cache_errors = cache_errors
        if lock_ttl <= 0 or poll_interval <= 0:
            raise ValueError("lock_ttl and poll_interval must be > 0")
        self.backend = backend_from_url(backend) if isinstance(backend, str) else backend
        self._store = GuardedStore(self.backend, clock, cooldown=outage_cooldown)
        self._meter = meter
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep or _asyncio_sleep
        self._lock_ttl = lock_ttl
        self._polls = max(1, int(lock_ttl / poll_interval))
        self._poll = poll_interval
        self._namespace = namespace
        self._flight: SingleFlight[_Outcome] = SingleFlight()
        self._aflight: AsyncSingleFlight[_Outcome] = AsyncSingleFlight()
        self._counts = {"hits": 0, "misses": 0, "uncacheable": 0}
        self._count_lock = threading.Lock()

    # -- configuration ------------------------------------------------------
    def ttl_for(self, name: str) -> float | None:
        """The TTL of tool ``name``."""
        return self.ttls.get(name, self.default_ttl)

    def enabled_for(self, name: str) -> bool:
        """Whether calls of ``name`` go through the cache."""
        return name not in self.exclude

    def key(self, name: str, arguments: Mapping[str, Any]) -> str:
        """The store key of a call of ``name`` with ``arguments`` (by parameter name)."""
        return f"{self._namespace}:{name}:{digest(canonical_json(arguments))}"

    @property
    def stats(self) -> CacheStats:
        """Counters of this cache in this process."""
        with self._count_lock:
            c = dict(self._counts)
        return CacheStats(
            hits=c["hits"],
            misses=c["misses"],
            uncacheable=c["uncacheable"],
            store_failures=self._store.failures,
        )

    def _count(self, what: str) -> None:
        with self._count_lock:
            self._counts[what] += 1

    # -- direct access ------------------------------------------------------
    def lookup(self, name: str, arguments: Mapping[str, Any]) -> CacheEntry | None:
        """The live entry for a call, without recording anything."""
        return self._store.get(self.key(name, arguments))

    def invalidate(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Forget the entry of one call (e.g. after the data behind it changed)."""
        self._store.delete(self.key(name, arguments))

    def clear(self) -> None:
        """Drop every entry of the store."""
        self._store.clear()

    # -- wrapping -----------------------------------------------------------
    @overload
    def wrap(
        self,
        fn: Callable[P, R],
        /,
        *,
        name: str | None = None,
        price: Decimal | float | str | None = None,
        cost: Callable[[Any], Cost] | None = None,
        records_miss: bool | None = None,
        key: Callable[..., Any] | None = None,
        serialize: Callable[[Any], Any] | None = None,
        deserialize: Callable[[Any], Any] | None = None,
        meter: Meter | None = None,
    ) -> Callable[P, R]: ...

    @overload
    def wrap(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        price: Decimal | float | str | None = None,
        cost: Callable[[Any], Cost] | None = None,
        records_miss: bool | None = None,
        key: Callable[..., Any] | None = None,
        serialize: Callable[[Any], Any] | None = None,
        deserialize: Callable[[Any], Any] | None = None,
        meter: Meter | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def wrap(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        price: Decimal | float | str | None = None,
        cost: Callable[[Any], Cost] | None = None,
        records_miss: bool | None = None,
        key: Callable[..., Any] | None = None,
        serialize: Callable[[Any], Any] | None = None,
        deserialize: Callable[[Any], Any] | None = None,
        meter: Meter | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Cache a callable (sync or async) without rewriting it.

        Args:
            fn: The tool function (or use as ``@cache.wrap(...)``).
            name: Tool name (the catalog prices by it); defaults to ``fn.__name__``.
            price: USD per call, for ``saved`` and for the miss span; else the
                catalog's tool price for ``name``.
            cost: Price of one call from its result (per-unit tools); wins
                over ``price``.
            records_miss: Who records a miss: ``None`` (auto: the cache unless an
                open span of this tool already stands for the call), ``False``
                (``fn`` records itself, e.g. a ``@meter.priced_tool``), ``True``.
            key: Arguments → the data to key on (default: every argument by name).
            serialize: Result → JSON data for the store (default: as is).
            deserialize: Stored JSON data → the result a hit returns.
            meter: Where spans go; defaults to the cache's meter.
        """
        per_call = None if price is None else to_decimal(price)
        if per_call is not None and per_call < 0:
            raise ValueError(f"price must be >= 0, got {per_call}")

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            tool_name = name or getattr(func, "__name__", None) or type(func).__name__
            price_fn: Callable[[Any], Cost] | None = cost
            if price_fn is None and per_call is not None:
                fixed = Cost.of_tool(per_call)

                def fixed_price(result: Any) -> Cost:
                    return fixed

                price_fn = fixed_price

            spec = _Tool(
                fn=func,
                name=tool_name,
                cost=price_fn,
                records_miss=records_miss,
                key=key,
                serialize=serialize,
                deserialize=deserialize,
                meter=meter,
            )
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await self._acall(spec, args, kwargs)

                async_wrapper.__faremeter_cache__ = self  # type: ignore[attr-defined]
                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(func)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                return self._call(spec, args, kwargs)

            wrapper.__faremeter_cache__ = self  # type: ignore[attr-defined]
            return wrapper

        if fn is not None:
            return decorate(fn)
        return decorate

    # -- shared steps -------------------------------------------------------
    def _meter_for(self, spec: _Tool) -> Meter:
        meter = spec.meter or self._meter
        if meter is None:
            from faremeter import get_meter

            meter = get_meter()
        return meter

    def _key_for(self, spec: _Tool, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
        if not self.enabled_for(spec.name):
            return None
        try:
            if spec.key is not None:
                data = spec.key(*args, **kwargs)
            else:
                data = bind_arguments(spec.fn, args, kwargs)
            return self.key(spec.name, data)
        except Exception as exc:
            # No key (an object without a canonical form, wrong arguments):
            # run uncached; the call itself reports wrong arguments.
            logger.debug("faremeter cache: %r called uncached: %s", spec.name, exc)
            return None

    def _serve(self, spec: _Tool, key: str, entry: CacheEntry, value: Any = _UNSET) -> Any:
        """Record a hit and return (or raise) what it holds."""
        self._count("hits")
        meter = self._meter_for(spec)
        if entry.error is not None:
            record_hit(meter, spec.name, key, None, error=f"{entry.error[0]}: {entry.error[1]}")
            raise self._rebuild(entry.error)
        record_hit(meter, spec.name, key, entry.cost)
        if value is _UNSET:
            value = entry.value
        return spec.deserialize(value) if spec.deserialize is not None else value

    def _rebuild(self, error: tuple[str, str]) -> Exception:
        type_name, message = error
        for exc_type in self.cache_errors:
            if _type_name(exc_type) == type_name:
                try:
                    return exc_type(message)
                except Exception:
                    break
        return CachedToolError(type_name, message)

    def _price(self, spec: _Tool, meter: Meter, result: Any) -> Cost:
        try:
            if spec.cost is not None:
                return spec.cost(result)
            return meter.catalog.tool_cost(spec.name)
        except Exception:  # a bad cost() must not break the tool
            logger.exception("faremeter cache: pricing tool %r failed", spec.name)
            return Cost.unpriced("pricing the tool failed")

    def _begin_miss(self, spec: _Tool, key: str) -> tuple[Meter, Any, Any]:
        """Open the miss span (if the cache records it) and make it current."""
        self._count("misses")
        meter = self._meter_for(spec)
        owner = claimable_span(spec.name)
        records = spec.records_miss if spec.records_miss is not None else owner is None
        if owner is not None:
            tag_miss(owner, key)
        if records:
            span = meter.start_span(spec.name, kind=SpanKind.TOOL)
            tag_miss(span, key)
            return meter, span, activate(span)
        if owner is None:
            # fn records its own span (priced_tool): tag it through the context.
            scope = attributes(cache="miss", cache_key=key_digest(key))
            scope.__enter__()
            return meter, None, scope
        return meter, None, None

    @staticmethod
    def _end_scope(token: Any) -> None:
        if token is None:
            return
        if hasattr(token, "__exit__"):
            token.__exit__(None, None, None)
        else:
            deactivate(token)

    def _finish_miss(self, spec: _Tool, key: str, meter: Meter, span: Any, result: Any) -> _Outcome:
        cost = self._price(spec, meter, result)
        if span is not None:
            span.end(cost=cost)
        try:
            value = spec.serialize(result) if spec.serialize is not None else result
        except Exception:
            logger.exception("faremeter cache: serialising %r's result failed", spec.name)
            return _Outcome(result, None, None, False)
        now = self._clock()
        ttl = self.ttl_for(spec.name)
        entry = CacheEntry(
            value=value,
            cost=cost.total,
            stored_at=now,
            expires_at=None if ttl is None else now + ttl,
        )
        text, _stored = self._store.put(key, entry, ttl)
        if text is None:
            self._count("uncacheable")
        return _Outcome(result, text, entry, False)

    def _fail_miss(self, spec: _Tool, key: str, span: Any, exc: BaseException) -> None:
        if span is not None:
            span.end(status=SpanStatus.ERROR, error=exc, cost=Cost())
        if self.cache_errors and isinstance(exc, self.cache_errors):
            now = self._clock()
            ttl = self.ttl_for(spec.name)
            entry = CacheEntry(
                stored_at=now,
                expires_at=None if ttl is None else now + ttl,
                error=(_type_name(type(exc)), str(exc)),
            )
            self._store.put(key, entry, ttl)

    def _follower_value(self, spec: _Tool, key: str, outcome: _Outcome) -> Any:
        """A waiter's share of the leader's outcome: a hit, on its own copy."""
        if outcome.entry is None:  # the leader's result could not be stored
            self._count("uncacheable")
            return outcome.value
        entry = outcome.entry
        if outcome.text is not None:
            entry = decode_entry(outcome.text) or entry
        elif outcome.from_store:
            # The leader found another process's value: read our own copy.
            entry = self._store.get(key) or entry
        return self._serve(spec, key, entry)

    # -- sync path ----------------------------------------------------------
    def _call(self, spec: _Tool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = self._key_for(spec, args, kwargs)
        if key is None:
            self._count("uncacheable")
            return spec.fn(*args, **kwargs)
        entry = self._store.get(key)
        if entry is not None:
            return self._serve(spec, key, entry)
        outcome, leader = self._flight.do(key, lambda: self._lead(spec, key, args, kwargs))
        if leader and not outcome.from_store:
            return outcome.value
        if leader:
            assert outcome.entry is not None
            return self._serve(spec, key, outcome.entry)
        return self._follower_value(spec, key, outcome)

    def _lead(
        self, spec: _Tool, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _Outcome:
        # A caller that missed just before the previous leader stored the value
        # and left the flight table becomes a leader: look once more first.
        entry = self._store.get(key)
        if entry is not None:
            return _Outcome(None, None, entry, True)
        token = os.urandom(16).hex()
        held = False
        if self.backend.shared:
            for _ in range(self._polls):
                if self._store.acquire(key, token, self._lock_ttl):
                    held = True
                    break
                self._sleep(self._poll)
                entry = self._store.get(key)
                if entry is not None:
                    return _Outcome(None, None, entry, True)
        try:
            if held:
                # The previous holder may have stored the value just before releasing.
                entry = self._store.get(key)
                if entry is not None:
                    return _Outcome(None, None, entry, True)
            meter, span, scope = self._begin_miss(spec, key)
            try:
                result = spec.fn(*args, **kwargs)
            except BaseException as exc:
                self._end_scope(scope)
                scope = None
                self._fail_miss(spec, key, span, exc)
                raise
            finally:
                self._end_scope(scope)
            return self._finish_miss(spec, key, meter, span, result)
        finally:
            if held:
                self._store.release(key, token)

    # -- async path ---------------------------------------------------------
    async def _acall(self, spec: _Tool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = self._key_for(spec, args, kwargs)
        if key is None:
            self._count("uncacheable")
            return await spec.fn(*args, **kwargs)
        entry = self._store.get(key)
        if entry is not None:
            return self._serve(spec, key, entry)
        outcome, leader = await self._aflight.do(key, lambda: self._alead(spec, key, args, kwargs))
        if leader and not outcome.from_store:
            return outcome.value
        if leader:
            assert outcome.entry is not None
            return self._serve(spec, key, outcome.entry)
        return self._follower_value(spec, key, outcome)

    async def _alead(
        self, spec: _Tool, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _Outcome:
        entry = self._store.get(key)
        if entry is not None:
            return _Outcome(None, None, entry, True)
        token = os.urandom(16).hex()
        held = False
        if self.backend.shared:
            for _ in range(self._polls):
                if self._store.acquire(key, token, self._lock_ttl):
                    held = True
                    break
                await self._async_sleep(self._poll)
                entry = self._store.get(key)
                if entry is not None:
                    return _Outcome(None, None, entry, True)
        try:
            if held:
                entry = self._store.get(key)
                if entry is not None:
                    return _Outcome(None, None, entry, True)
            meter, span, scope = self._begin_miss(spec, key)
            try:
                result = await spec.fn(*args, **kwargs)
            except BaseException as exc:
                self._end_scope(scope)
                scope = None
                self._fail_miss(spec, key, span, exc)
                raise
            finally:
                self._end_scope(scope)
            return self._finish_miss(spec, key, meter, span, result)
        finally:
            if held:
                self._store.release(key, token)


async def _asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def _check_ttl(label: str, ttl: float | None) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"{label} must be a number of seconds > 0 or None, got {ttl!r}")
    return float(ttl)


def _type_name(exc_type: type[BaseException]) -> str:
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def cache_priced_tool(
    meter: Meter,
    cache: ToolCache,
    func: Callable[P, R],
    pricing: Any,
) -> Callable[P, R]:
    """``@meter.priced_tool(..., cache=cache)``: a priced tool whose results are cached.

    The priced wrapper records (and budgets) every miss; the cache records
    hits with ``saved`` = the price of the call it replaced. ``pricing`` is the
    decorator's :class:`faremeter.priced_tool.ToolPricing`.
    """
    from faremeter.priced_tool import wrap_priced_tool

    inner = wrap_priced_tool(meter, func, pricing)
    name: str = pricing.name
    return cache.wrap(
        inner,
        name=name,
        cost=lambda result: pricing.cost(meter, result),
        records_miss=False,
        meter=meter,
    )
