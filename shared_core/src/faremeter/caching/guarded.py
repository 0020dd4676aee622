"""A store seen through the caches' failure rule: an outage is a miss, never an error.

Every backend call goes through :class:`GuardedStore`, which catches whatever
the store raises, logs the first failure of an outage (and the recovery) —
not one line per call — and answers as if the key were absent. The agent
pays for the call it would have made without a cache; it never fails
because a cache did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from faremeter.caching.backends.protocol import CacheBackend
from faremeter.caching.entries import CacheEntry, decode_entry, encode_entry

__all__ = ["GuardedStore"]

logger = logging.getLogger("faremeter.caching")

T = TypeVar("T")


class GuardedStore:
    """A backend plus the cache clock, with failures turned into misses.

    After a failure the store is left alone for ``cooldown`` seconds: a Redis
    that hangs until its socket timeout would otherwise add that timeout to
    every call (get, lock and set) for as long as it is down.

    Attributes:
        backend: The store.
        clock: Seconds; entries past ``expires_at`` by this clock are misses.
        failures: Backend calls that failed (for health checks and tests).
        skipped: Backend calls not attempted during a cooldown.
    """

    def __init__(
        self,
        backend: CacheBackend,
        clock: Callable[[], float],
        *,
        cooldown: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if cooldown < 0:
            raise ValueError(f"outage cooldown must be >= 0 seconds, got {cooldown!r}")
        self.backend = backend
        self.clock = clock
        self.failures = 0
        self.skipped = 0
        self._cooldown = cooldown
        self._monotonic = monotonic
        self._retry_at = 0.0
        self._failing = False
        self._lock = threading.Lock()

    def _guard(self, what: str, fn: Callable[[], T], default: T) -> T:
        if self._failing and self._cooldown and self._monotonic() < self._retry_at:
            self.skipped += 1
            return default
        try:
            result = fn()
        except Exception as exc:
            with self._lock:
                self.failures += 1
                first = not self._failing
                self._failing = True
                self._retry_at = self._monotonic() + self._cooldown
            if first:
                logger.warning(
                    "faremeter cache: %s store failed on %s (%s: %s); treating lookups as "
                    "misses until it answers again",
                    self.backend.name,
                    what,
                    type(exc).__name__,
                    exc,
                )
            return default
        if self._failing:
            with self._lock:
                recovered, self._failing = self._failing, False
            if recovered:
                logger.warning("faremeter cache: %s store answers again", self.backend.name)
        return result

    def get(self, key: str, *, allow_stale: bool = False) -> CacheEntry | None:
        """The live entry under ``key`` (``allow_stale``: expired ones too)."""
        text = self._guard("get", lambda: self.backend.get(key), None)
        if text is None:
            return None
        entry = decode_entry(text)
        if entry is None or (not allow_stale and entry.expired(self.clock())):
            return None
        return entry

    def put(self, key: str, entry: CacheEntry, store_ttl: float | None) -> tuple[str | None, bool]:
        """Store ``entry``.

        Returns:
            ``(json_text, stored)``: the text is ``None`` when the value is not
            JSON; ``stored`` is False when that, or the store failed.
        """
        try:
            text = encode_entry(entry)
        except (TypeError, ValueError) as exc:
            logger.debug("faremeter cache: %s not cached, its value is not JSON: %s", key, exc)
            return None, False

        def write() -> bool:
            self.backend.set(key, text, store_ttl)
            return True

        return text, self._guard("set", write, False)

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._guard("delete", lambda: self.backend.delete(key), None)

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        """Take the cross-process lock; a failing store answers True (run uncoordinated)."""
        return self._guard("acquire", lambda: self.backend.acquire(key, token, ttl), True)

    def release(self, key: str, token: str) -> None:
        """Give the lock back."""
        self._guard("release", lambda: self.backend.release(key, token), None)

    def clear(self) -> None:
        """Drop every entry."""
        self._guard("clear", self.backend.clear, None)
