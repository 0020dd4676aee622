"""Redis store (redis-py): one cache for a fleet, with a cross-process lock.

The lock is ``SET key token NX PX ttl`` and released by a compare-and-delete
Lua script, so only the holder can release it and a crashed holder's lock
lapses on its own. ``redis`` is imported when this store is built, never by
``import faremeter``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RedisBackend"]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisBackend:
    """Entries in Redis under ``prefix`` (TTL enforced by Redis itself).

    Args:
        url: ``redis://host:port/db``; ignored when ``client`` is given.
        client: A ready ``redis.Redis`` (``decode_responses`` either way).
        prefix: Namespace for every key (one per app or per test).
        socket_timeout: Seconds before a slow Redis counts as down (a miss).
    """

    name = "redis"
    shared = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Any = None,
        prefix: str = "faremeter:cache:",
        socket_timeout: float = 0.5,
    ) -> None:
        if client is None:
            try:
                import redis
            except ImportError:  # pragma: no cover - depends on the install
                raise ImportError(
                    "the Redis cache needs redis-py: pip install 'faremeter[redis]'"
                ) from None
            client = redis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                decode_responses=True,
            )
        self._client: Any = client
        self._prefix = prefix
        self._release: Any = client.register_script(_RELEASE)

    def _k(self, key: str) -> str:
        return self._prefix + key

    def _lk(self, key: str) -> str:
        return self._prefix + "lock:" + key

    def get(self, key: str) -> str | None:
        """See :meth:`CacheBackend.get`."""
        value = self._client.get(self._k(key))
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """See :meth:`CacheBackend.set`."""
        if ttl is None:
            self._client.set(self._k(key), value)
        else:
            self._client.set(self._k(key), value, px=max(1, int(ttl * 1000)))

    def delete(self, key: str) -> None:
        """See :meth:`CacheBackend.delete`."""
        self._client.delete(self._k(key))

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        """See :meth:`CacheBackend.acquire`."""
        return bool(self._client.set(self._lk(key), token, nx=True, px=max(1, int(ttl * 1000))))

    def release(self, key: str, token: str) -> None:
        """See :meth:`CacheBackend.release`."""
        self._release(keys=[self._lk(key)], args=[token])

    def clear(self) -> None:
        """See :meth:`CacheBackend.clear`."""
        batch: list[Any] = []
        for key in self._client.scan_iter(match=self._prefix + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                self._client.delete(*batch)
                batch.clear()
        if batch:
            self._client.delete(*batch)

    def close(self) -> None:
        """See :meth:`CacheBackend.close`."""
        self._client.close()
