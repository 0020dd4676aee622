"""Cache stores: memory, SQLite and Redis behind one :class:`CacheBackend` protocol.

``RedisBackend`` is imported on first use so that ``redis`` is only needed
by those who use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faremeter.caching.backends.memory import MemoryBackend
from faremeter.caching.backends.protocol import CacheBackend, CacheBackendError
from faremeter.caching.backends.sqlite import SQLiteBackend

if TYPE_CHECKING:
    from faremeter.caching.backends.redis import RedisBackend

__all__ = [
    "CacheBackend",
    "CacheBackendError",
    "MemoryBackend",
    "RedisBackend",
    "SQLiteBackend",
    "backend_from_url",
]


def backend_from_url(url: str) -> CacheBackend:
    """``memory``, ``sqlite:///path.db`` or ``redis://host:port/db`` as a store.

    Raises:
        ValueError: For any other form, listing the accepted ones.
    """
    if url == "memory":
        return MemoryBackend()
    if url.startswith("sqlite:///"):
        return SQLiteBackend(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from faremeter.caching.backends.redis import RedisBackend

        return RedisBackend(url)
    raise ValueError(
        f"cache url {url!r} is not supported; use 'memory', 'sqlite:///path.db' or 'redis://host:6379/0'"
    )


def __getattr__(name: str) -> Any:
    if name == "RedisBackend":
        from faremeter.caching.backends.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module 'faremeter.caching.backends' has no attribute {name!r}")
