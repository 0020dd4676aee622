"""A routed model's response cache: looked up before routing, filled after a successful call.

:class:`~faremeter.routing.routed_call.ModelRouting` holds one
:class:`RoutedCache` when it is given ``cache=ResponseCache(...)``; the
framework glue only turns its own response objects into JSON and back (a
:class:`ResponseCodec`). The rules, the same for every framework:

* **Key.** The routed model's identity (its span name, its tiers and the
  models it may call, as the adapter describes them) plus the request: the
  messages and every parameter that can change the answer — never the model
  the router would pick. A cached answer is served whichever tier produced
  it; two differently configured routed models never share answers.
* **Which requests.** Those the :class:`~faremeter.caching.ResponseCache`
  finds cacheable: by default deterministic ones (``temperature`` 0, one
  choice). The adapter reports the temperature the call will run with.
* **Hit.** Before routing and budget admission: no model is called, no
  budget is reserved. The call is one ``cached`` ``llm`` span named like the
  route span, $0, ``saved`` = what the miss cost, in the caller's trace with
  its attribution; the response is revived as the framework's own object.
* **Miss.** The call is routed as usual; its spans carry ``cache=miss`` and
  the key's digest (for hit rates). The final successful response is stored
  with what the call cost: the priced spans recorded under the route span,
  or — when they have not ended yet (LiteLLM ends sync calls on its logging
  thread) — the price of the usage the response reports.
* **Degraded calls** (a ``degrade`` budget shrank ``max_tokens`` or re-routed
  the call to fit) are not stored: the answer may be cut short.
* **Streams.** Stored only once the stream completed: the adapter assembles
  the chunks into the final response. A hit on a stream call replays the
  stored response as a stream of one chunk. A stream the caller abandons,
  or that fails, stores nothing.
* **Concurrent identical misses** pay once: the first takes a lease and is
  routed; the others wait for it (up to the cache's ``lock_ttl``, across
  processes on a shared store) and are served what it stored, each as a
  ``cached`` span with ``saved`` (:mod:`faremeter.caching.miss_leases`). A
  miss that fails or stores nothing lets its waiters send their own requests.
* **Outages.** A store that fails (Redis down) is a miss; storing after a
  miss never raises. With a shared store (SQLite, Redis) the async paths run
  the store's I/O in a worker thread, so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from faremeter.caching.keys import canonical_json, digest
from faremeter.caching.recording import key_digest
from faremeter.caching.response_cache import NON_OUTPUT_PARAMS
from faremeter.cost import Cost
from faremeter.spans import SpanKind, SpanStatus

if TYPE_CHECKING:
    from faremeter.caching.miss_leases import Lease
    from faremeter.caching.response_cache import CachedResponse, ResponseCache
    from faremeter.meter import Meter
    from faremeter.spans import SpanRecord
    from faremeter.usage import Usage

__all__ = [
    "CacheTicket",
    "ResponseCodec",
    "RoutedCache",
    "StoredResponse",
    "describe",
]

_log = logging.getLogger("faremeter.caching")

R = TypeVar("R")

_PRICED = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})
_MAX_DEPTH = 64  # ancestry walks stop here (a malformed parent chain is not a loop)


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredResponse:
    """A response as a codec keeps it.

    Attributes:
        data: The response as JSON data (what a hit revives).
        model: The model that answered, as the response names it.
        usage: The usage the response reports (prices ``saved`` when the
            call's priced spans have not ended when it is stored).
    """

    data: Any
    model: str | None = None
    usage: Usage | None = None


class ResponseCodec(Protocol[R]):
    """How a framework's response becomes JSON and back (JSON only, never pickle)."""

    def dump(self, response: R) -> StoredResponse | None:
        """The response to store; ``None`` when it cannot be kept faithfully."""
        ...

    def load(self, data: Any) -> R | None:
        """The framework object from stored data; ``None`` when unreadable (a miss)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheTicket(Generic[R]):
    """One routed call's cache outcome, from the lookup to the store.

    Attributes:
        key: The store key; ``None`` when the call is not cached (no cache,
            a non-deterministic request, or parts with no canonical form).
        codec: Turns the response into JSON and back.
        hit: The revived response when it was served from the cache.
        lease: Held by the one miss identical concurrent requests wait for;
            released when the call ends (:meth:`release`).
    """

    key: str | None = None
    codec: ResponseCodec[R] | None = field(default=None, repr=False)
    hit: R | None = None
    lease: Lease | None = field(default=None, repr=False, compare=False)

    def release(self) -> None:
        """The call ended (stored, failed or abandoned): let identical requests go."""
        if self.lease is not None:
            self.lease.release()

    @property
    def served(self) -> bool:
        """Whether the call was answered from the cache (nothing else to do)."""
        return self.hit is not None

    @property
    def storing(self) -> bool:
        """Whether a successful response of this call is to be stored."""
        return self.key is not None and self.hit is None and self.codec is not None

    def miss_attributes(self) -> dict[str, str]:
        """Stamped on the call's spans: a miss of this key (for hit rates)."""
        return {} if self.key is None else {"cache": "miss", "cache_key": key_digest(self.key)}


NO_TICKET: CacheTicket[Any] = CacheTicket()


def describe(value: Any) -> Any:
    """``value`` as canonical JSON data, leaves without one replaced by their type's name.

    For routed-model identities built from framework objects: a field that is
    a client or a callable contributes its type, never its ``repr`` (which
    holds a memory address and would change every process).
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():  # pyright: ignore[reportUnknownVariableType]
            out[str(k)] = describe(v)  # pyright: ignore[reportUnknownArgumentType]
        return out
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    try:
        canonical_json(value)
    except (TypeError, ValueError):
        kind: type[Any] = type(value)  # pyright: ignore[reportUnknownVariableType]
        return f"<{kind.__module__}.{kind.__qualname__}>"
    return value


class CallWatch:
    """Finds what one routed call was charged: the priced spans under its route span.

    The chain's attempt span is current while the framework call runs;
    :meth:`enter` notes it (the route span is its parent) and where the
    trace's finished spans stood, so :meth:`charged` scans only spans that
    finished since, keeping those descending from the route span.
    """

    __slots__ = ("_records", "_route_id", "_start", "answered")

    def __init__(self) -> None:
        self._records: list[SpanRecord] | None = None
        self._route_id: str | None = None
        self._start = 0
        self.answered: str | None = None

    def enter(self, model: str) -> None:
        """Called inside each attempt, with the attempt's model."""
        from faremeter.context import current_span

        self.answered = model
        if self._route_id is not None:
            return
        span = current_span()
        if span is None or span.kind is not SpanKind.CHAIN or span.name != f"attempt:{model}":
            return  # no attempt span recorded: fall back on the response's usage
        self._route_id = span.parent_span_id
        self._records = span.trace.records
        self._start = len(span.trace.records)

    def charged(self) -> tuple[Decimal, str | None] | None:
        """The call's recorded cost and the model that answered, or ``None`` if not all recorded.

        ``None`` when no priced model span has finished under the route span
        yet, or one of them could not be priced.
        """
        records, route_id = self._records, self._route_id
        if records is None or route_id is None:
            return None
        fresh = records[self._start :]
        parents = {r.span_id: r.parent_span_id for r in fresh}
        total = Decimal(0)
        model: str | None = None
        priced = False
        for record in fresh:
            if not _descends(record.parent_span_id, route_id, parents):
                continue
            cost = record.cost.total
            if record.kind in _PRICED and record.status is SpanStatus.OK:
                if cost is None:
                    return None  # unpriced: the response's usage may still price it
                priced = True
                model = record.model or model
            if cost is not None:
                total += cost
        return (total, model) if priced else None


def _descends(parent: str | None, ancestor: str, parents: Mapping[str, str | None]) -> bool:
    for _ in range(_MAX_DEPTH):
        if parent is None:
            return False
        if parent == ancestor:
            return True
        parent = parents.get(parent)
    return False


class RoutedCache:
    """A :class:`~faremeter.caching.ResponseCache` applied to one routed model's calls.

    Args:
        cache: Where responses are kept and how long.
        name: The routed call's span name (the key's readable part, the hit span's name).
        identity: JSON data telling this routed model apart from others: its
            tiers and models, and what the adapter knows of how each is configured.
    """

    def __init__(self, cache: ResponseCache, *, name: str, identity: Any) -> None:
        self.cache = cache
        self.name = name
        self._identity = identity
        self._identity_digest: str | None = None

    @property
    def identity(self) -> str:
        """Digest of the routed model's identity (computed once)."""
        if self._identity_digest is None:
            self._identity_digest = digest(canonical_json(describe(self._identity)))
        return self._identity_digest

    # ------------------------------------------------------------------ lookup

    def key(self, request: Mapping[str, Any]) -> str | None:
        """The store key of ``request``, or ``None`` when it is not to be cached."""
        parts = {k: v for k, v in request.items() if k not in NON_OUTPUT_PARAMS}
        if not self.cache.cacheable(parts):
            return None
        try:
            return self.cache.key_of(self.name, {"routed": self.identity, "request": parts})
        except (TypeError, ValueError) as exc:
            _log.debug("faremeter cache: routed request not cacheable: %s", exc)
            return None

    def lookup(
        self,
        meter: Meter,
        request: Callable[[], Mapping[str, Any]],
        codec: ResponseCodec[R],
        attributes: Mapping[str, Any] | None,
    ) -> CacheTicket[R]:
        """The call's ticket: served from the store (recorded as a hit) or to be stored."""
        try:
            key = self.key(request())
            if key is None:
                return NO_TICKET
            found = self.cache.lookup_key(key, record=False)
            lease = None
            misses = self.cache.misses
            if found is None and misses is not None:
                lease, found = misses.claim(key, lambda: self.cache.lookup_key(key, record=False))
            return self._ticket(meter, key, found, codec, attributes, lease)
        except Exception:  # faremeter's fault: the call goes uncached
            _log.exception("faremeter cache: routed lookup failed; the call is not cached")
            return NO_TICKET

    async def alookup(
        self,
        meter: Meter,
        request: Callable[[], Mapping[str, Any]],
        codec: ResponseCodec[R],
        attributes: Mapping[str, Any] | None,
    ) -> CacheTicket[R]:
        """:meth:`lookup` without blocking the event loop on a shared store."""
        try:
            key = self.key(request())
            if key is None:
                return NO_TICKET
            found = await self._alookup_key(key)
            lease = None
            misses = self.cache.misses
            if found is None and misses is not None:
                lease, found = await misses.aclaim(key, lambda: self._alookup_key(key))
            return self._ticket(meter, key, found, codec, attributes, lease)
        except Exception:
            _log.exception("faremeter cache: routed lookup failed; the call is not cached")
            return NO_TICKET

    async def _alookup_key(self, key: str) -> CachedResponse | None:
        if self.cache.backend.shared:
            return await asyncio.to_thread(self.cache.lookup_key, key, record=False)
        return self.cache.lookup_key(key, record=False)

    def _ticket(
        self,
        meter: Meter,
        key: str,
        found: CachedResponse | None,
        codec: ResponseCodec[R],
        attributes: Mapping[str, Any] | None,
        lease: Lease | None = None,
    ) -> CacheTicket[R]:
        if found is None:
            return CacheTicket(key=key, codec=codec, lease=lease)
        try:
            revived = codec.load(found.response)
        except Exception:
            _log.exception("faremeter cache: a stored response could not be revived; a miss")
            revived = None
        if revived is None:
            return CacheTicket(key=key, codec=codec, lease=lease)
        self._record_hit(meter, key, found, attributes)
        return CacheTicket(key=key, codec=codec, hit=revived)

    def _record_hit(
        self,
        meter: Meter,
        key: str,
        found: CachedResponse,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        """One ``cached`` ``llm`` span for the call: $0, ``saved`` = what the miss cost."""
        try:
            attrs: dict[str, Any] = dict(attributes or {})
            attrs.update(cache="hit", cache_key=key_digest(key))
            span = meter.start_span(
                self.name, kind=SpanKind.LLM, model=found.model, attributes=attrs
            )
            span.end(status=SpanStatus.CACHED, cost=Cost(), saved=found.saved, model=found.model)
        except Exception:
            _log.exception("faremeter cache: recording a routed hit failed")

    # ------------------------------------------------------------------- store

    def store(self, meter: Meter, ticket: CacheTicket[R], response: R, watch: CallWatch) -> bool:
        """Keep a miss's final response with what it cost; never raises."""
        entry = self._entry(meter, ticket, response, watch)
        if entry is None:
            return False
        key, stored, cost, model = entry
        return self.cache.store_key(key, stored.data, usage=stored.usage, cost=cost, model=model)

    async def astore(
        self, meter: Meter, ticket: CacheTicket[R], response: R, watch: CallWatch
    ) -> bool:
        """:meth:`store` without blocking the event loop on a shared store."""
        entry = self._entry(meter, ticket, response, watch)
        if entry is None:
            return False
        key, stored, cost, model = entry
        if not self.cache.backend.shared:
            return self.cache.store_key(
                key, stored.data, usage=stored.usage, cost=cost, model=model
            )
        return await asyncio.to_thread(
            self.cache.store_key, key, stored.data, usage=stored.usage, cost=cost, model=model
        )

    def _entry(
        self, meter: Meter, ticket: CacheTicket[R], response: R, watch: CallWatch
    ) -> tuple[str, StoredResponse, Decimal | None, str | None] | None:
        if not ticket.storing or ticket.key is None or ticket.codec is None:
            return None
        try:
            stored = ticket.codec.dump(response)
            if stored is None:
                return None
            cost: Decimal | None = None
            model = stored.model or watch.answered
            charged = watch.charged()
            if charged is not None:
                cost, recorded_model = charged
                model = recorded_model or model
            elif model and stored.usage is not None:
                cost = meter.price(model, stored.usage).total
            return ticket.key, stored, cost, model
        except Exception:
            _log.exception("faremeter cache: a routed response could not be stored")
            return None
