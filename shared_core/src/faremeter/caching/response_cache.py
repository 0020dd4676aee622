"""``ResponseCache``: exact-match caching of model responses that records what it saved.

The key is the model plus *everything in the request that can change the
answer*: the messages (all of them — not just the last one), temperature,
top_p, tools, tool_choice, response_format, seed, stop, max_tokens, n and any
parameter faremeter does not know. Only parameters that cannot change the
answer are left out (transport and bookkeeping: ``stream``, ``timeout``,
``api_key``, ``metadata``, ``user``…, see :data:`NON_OUTPUT_PARAMS`), so an
unknown new parameter splits the key rather than serving a wrong answer.

**Which requests are cached.** By default only *deterministic* requests:
greedy decoding (``temperature`` 0, or ``top_k`` 1) and one choice (``n`` unset
or 1). A request without ``temperature`` samples at the provider's default
(1.0 at OpenAI and Anthropic); replaying one sampled answer to every caller
would silently remove the variety the caller asked for. Pass
``deterministic_only=False`` to cache every request (what LangChain's cache
does).

A hit is a ``cached`` ``llm`` span with cost 0 and ``saved`` = the cost the
miss had (stored with the response), or the price of its stored usage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from faremeter.caching.backends import CacheBackend, backend_from_url
from faremeter.caching.entries import CacheEntry
from faremeter.caching.guarded import GuardedStore
from faremeter.caching.keys import canonical_json, digest
from faremeter.caching.miss_leases import MissLeases
from faremeter.caching.recording import record_hit
from faremeter.cost import Cost
from faremeter.spans import SpanKind
from faremeter.usage import Usage

if TYPE_CHECKING:
    from faremeter.meter import Meter

__all__ = ["NON_OUTPUT_PARAMS", "CachedResponse", "ResponseCache", "is_deterministic"]

logger = logging.getLogger("faremeter.caching")

NON_OUTPUT_PARAMS: frozenset[str] = frozenset(
    {
        "stream",
        "stream_options",
        "timeout",
        "request_timeout",
        "max_retries",
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "headers",
        "extra_headers",
        "metadata",
        "user",
        "callbacks",
        "tags",
        "run_name",
        "caching",
        "cache",
    }
)
"""Request parameters left out of the key: they cannot change the answer."""


def is_deterministic(request: Mapping[str, Any]) -> bool:
    """Whether ``request`` asks for greedy decoding of a single choice."""
    n = request.get("n")
    if n not in (None, 1):
        return False
    temperature = request.get("temperature")
    if temperature is not None and not isinstance(temperature, bool):
        try:
            if float(temperature) == 0.0:
                return True
        except (TypeError, ValueError):
            return False
    top_k: object = request.get("top_k")
    return type(top_k) is int and top_k == 1


@dataclass(frozen=True, kw_only=True, slots=True)
class CachedResponse:
    """A response served from the cache.

    Attributes:
        response: The stored response (JSON data, as given to ``store``).
        model: The model that produced it.
        usage: Its token counts when it was produced.
        saved: What serving it saved (the miss's cost), ``None`` if unpriced.
        stored_at: When it was stored (cache clock, seconds).
        stale: True when it is past its TTL (only with ``allow_stale=True``).
    """

    response: Any
    model: str | None
    usage: Usage | None
    saved: Decimal | None
    stored_at: float
    stale: bool = False


class ResponseCache:
    """Exact-match cache of model responses.

    Example:
        >>> cache = ResponseCache(ttl=86_400, backend="redis://127.0.0.1:6379/0")
        >>> request = {"model": "gpt-4o-mini", "messages": msgs, "temperature": 0}
        >>> hit = cache.lookup(request)          # a ``cached`` span when it hits
        >>> if hit is None:
        ...     response = client.chat.completions.create(**request)
        ...     cache.store(request, response.model_dump(), usage=usage)

    Args:
        backend: A :class:`~faremeter.caching.backends.CacheBackend` or a URL.
        ttl: Seconds a response is served (``None``: until evicted). Default 1 day.
        meter: Where hit spans go and what prices stored usage; default meter if omitted.
        deterministic_only: Cache only greedy single-choice requests (see module doc).
        keep_stale: Seconds an expired entry stays in the store for
            ``lookup(allow_stale=True)`` — a fallback chain's last resort.
        clock: Seconds since the epoch for TTLs (injectable for tests).
        outage_cooldown: After a store failure, seconds during which the store
            is not asked (every call is a miss) before it is tried again.
        namespace: Key prefix, so several caches can share one store.
        lock_ttl: Longest a routed model's request waits for an identical
            request already running (in this process, or in another on a
            shared store) before sending its own — the stampede protection of
            :mod:`faremeter.caching.miss_leases`; ``None`` turns it off.
        poll_interval: Seconds between checks while waiting.
    """

    def __init__(
        self,
        *,
        backend: CacheBackend | str = "memory",
        ttl: float | None = 86_400.0,
        meter: Meter | None = None,
        deterministic_only: bool = True,
        keep_stale: float = 0.0,
        clock: Callable[[], float] = time.time,
        outage_cooldown: float = 1.0,
        namespace: str = "llm",
        lock_ttl: float | None = 60.0,
        poll_interval: float = 0.05,
    ) -> None:
        if ttl is not None and (isinstance(ttl, bool) or ttl <= 0):
            raise ValueError(f"ttl must be a number of seconds > 0 or None, got {ttl!r}")
        if keep_stale < 0:
            raise ValueError(f"keep_stale must be >= 0, got {keep_stale!r}")
        self.backend = backend_from_url(backend) if isinstance(backend, str) else backend
        self.ttl = None if ttl is None else float(ttl)
        self.keep_stale = float(keep_stale)
        self.deterministic_only = deterministic_only
        self._store = GuardedStore(self.backend, clock, cooldown=outage_cooldown)
        self._meter = meter
        self._clock = clock
        self._namespace = namespace
        self.misses: MissLeases | None = (
            None
            if lock_ttl is None
            else MissLeases(self._store, wait_s=lock_ttl, poll_s=poll_interval)
        )

    @property
    def meter(self) -> Meter:
        """The meter hits are recorded in."""
        if self._meter is None:
            from faremeter import get_meter

            return get_meter()
        return self._meter

    # -- keys ---------------------------------------------------------------
    def cacheable(self, request: Mapping[str, Any]) -> bool:
        """Whether ``request`` may be served from / stored in this cache."""
        return not self.deterministic_only or is_deterministic(request)

    def key(self, request: Mapping[str, Any]) -> str:
        """The store key of ``request`` (model + messages + output-changing params).

        Raises:
            ValueError: When the request names no model.
            TypeError: When a part has no canonical JSON form.
        """
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise ValueError("a cached request needs a 'model' (str)")
        parts = {k: v for k, v in request.items() if k not in NON_OUTPUT_PARAMS}
        return self.key_of(model, parts)

    def key_of(self, name: str, parts: Any) -> str:
        """A key from any canonical data (adapters keying on their own request form)."""
        return f"{self._namespace}:{name}:{digest(canonical_json(parts))}"

    # -- lookup / store -----------------------------------------------------
    def lookup(
        self,
        request: Mapping[str, Any],
        *,
        record: bool = True,
        allow_stale: bool = False,
    ) -> CachedResponse | None:
        """The cached response for ``request``, or ``None``.

        Args:
            request: ``model``, ``messages`` and parameters, as sent to the provider.
            record: Record the hit as a ``cached`` ``llm`` span. Pass False when
                the caller ends its own span for this call (as ``cached``, with
                the returned ``saved``), so the call is one span.
            allow_stale: Serve an expired entry still kept (``keep_stale``).
        """
        if not self.cacheable(request):
            return None
        try:
            key = self.key(request)
        except (TypeError, ValueError) as exc:
            logger.debug("faremeter cache: request not cacheable: %s", exc)
            return None
        return self.lookup_key(key, record=record, allow_stale=allow_stale)

    def lookup_key(
        self, key: str, *, record: bool = True, allow_stale: bool = False
    ) -> CachedResponse | None:
        """:meth:`lookup` by a key from :meth:`key` / :meth:`key_of`."""
        entry = self._store.get(key, allow_stale=allow_stale)
        if entry is None:
            return None
        hit = CachedResponse(
            response=entry.value,
            model=entry.model,
            usage=entry.usage,
            saved=self._saved(entry),
            stored_at=entry.stored_at,
            stale=entry.expired(self._clock()),
        )
        if record:
            record_hit(
                self.meter,
                entry.model or "llm",
                key,
                hit.saved,
                kind=SpanKind.LLM,
                model=entry.model,
                claim=False,
            )
        return hit

    def _saved(self, entry: CacheEntry) -> Decimal | None:
        if entry.cost is not None:
            return entry.cost
        if entry.model and entry.usage is not None:
            try:
                return self.meter.price(entry.model, entry.usage).total
            except Exception:
                logger.exception("faremeter cache: pricing a cached response failed")
        return None

    def store(
        self,
        request: Mapping[str, Any],
        response: Any,
        *,
        usage: Usage | None = None,
        cost: Cost | Decimal | None = None,
        model: str | None = None,
    ) -> bool:
        """Keep ``response`` (JSON data) for ``request``.

        Args:
            request: The request as sent.
            response: The response as JSON data (``response.model_dump()``…).
            usage: Its token counts (prices ``saved`` when ``cost`` is not given).
            cost: What the call cost; ``saved`` of later hits.
            model: The model that answered (defaults to the request's).

        Returns:
            Whether it was stored (False: not cacheable, not JSON, or store down).
        """
        if not self.cacheable(request):
            return False
        try:
            key = self.key(request)
        except (TypeError, ValueError) as exc:
            logger.debug("faremeter cache: request not cacheable: %s", exc)
            return False
        answered = model or request.get("model")
        return self.store_key(
            key,
            response,
            usage=usage,
            cost=cost,
            model=answered if isinstance(answered, str) else None,
        )

    def store_key(
        self,
        key: str,
        response: Any,
        *,
        usage: Usage | None = None,
        cost: Cost | Decimal | None = None,
        model: str | None = None,
    ) -> bool:
        """:meth:`store` by a key from :meth:`key` / :meth:`key_of`."""
        total = cost.total if isinstance(cost, Cost) else cost
        now = self._clock()
        entry = CacheEntry(
            value=response,
            cost=total,
            usage=usage,
            model=model,
            stored_at=now,
            expires_at=None if self.ttl is None else now + self.ttl,
        )
        store_ttl = None if self.ttl is None else self.ttl + self.keep_stale
        return self._store.put(key, entry, store_ttl)[1]

    def last_resort(self, request: Mapping[str, Any]) -> Callable[[], Any]:
        """A ``FallbackChain(last_resort=...)`` callable serving ``request`` from the cache.

        It returns the stored response (stale ones too, within ``keep_stale``)
        or ``None``; it records no span, since the chain ends its own call span
        as ``cached``.
        """

        def serve() -> Any:
            hit = self.lookup(request, record=False, allow_stale=True)
            return None if hit is None else hit.response

        return serve

    def invalidate(self, request: Mapping[str, Any]) -> None:
        """Forget the response of ``request``."""
        self._store.delete(self.key(request))

    def clear(self) -> None:
        """Drop every entry of the store."""
        self._store.clear()

    @property
    def store_failures(self) -> int:
        """Store operations that failed and were treated as misses."""
        return self._store.failures
