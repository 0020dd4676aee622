"""In-process store: a bounded LRU with per-entry TTL (cachetools ``TLRUCache``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cachetools import TLRUCache

__all__ = ["MemoryBackend"]


def _expiry(_key: str, value: tuple[float, str], _now: float) -> float:
    return value[0]


class MemoryBackend:
    """Entries in this process only, least recently used dropped past ``maxsize``.

    Args:
        maxsize: Entries kept at most (values count one each, whatever their size).
        timer: Seconds, monotonic; injectable so TTL tests never wait.
    """

    name = "memory"
    shared = False

    def __init__(
        self, maxsize: int = 10_000, *, timer: Callable[[], float] = time.monotonic
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._timer = timer
        self._data: TLRUCache[str, tuple[float, str]] = TLRUCache(
            maxsize=maxsize, ttu=_expiry, timer=timer
        )
        self._locks: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()

    def get(self, key: str) -> str | None:
        """See :meth:`CacheBackend.get`."""
        with self._mutex:
            entry = self._data.get(key)
        return None if entry is None else entry[1]

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """See :meth:`CacheBackend.set`."""
        expires = float("inf") if ttl is None else self._timer() + ttl
        with self._mutex:
            self._data[key] = (expires, value)

    def delete(self, key: str) -> None:
        """See :meth:`CacheBackend.delete`."""
        with self._mutex:
            self._data.pop(key, None)

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        """See :meth:`CacheBackend.acquire`."""
        now = self._timer()
        with self._mutex:
            held = self._locks.get(key)
            if held is not None and held[1] > now and held[0] != token:
                return False
            self._locks[key] = (token, now + ttl)
            return True

    def release(self, key: str, token: str) -> None:
        """See :meth:`CacheBackend.release`."""
        with self._mutex:
            held = self._locks.get(key)
            if held is not None and held[0] == token:
                del self._locks[key]

    def clear(self) -> None:
        """See :meth:`CacheBackend.clear`."""
        with self._mutex:
            self._data.clear()
            self._locks.clear()

    def close(self) -> None:
        """Nothing to release."""

    def __len__(self) -> int:
        with self._mutex:
            return len(self._data)
