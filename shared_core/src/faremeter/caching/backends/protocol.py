"""The one small interface every cache store implements.

A store keeps text under text keys with an optional time to live, and offers
a *lock*: the primitive that lets concurrent identical misses — in one process
or, on a shared store, across processes — run the expensive call once. Values
are JSON text produced by the cache layer, never pickles: a store shared by a
fleet must not be a remote-code-execution channel.

Expiry is also checked by the cache layer against its own (injectable) clock,
so a store's TTL is a clean-up hint and tests never wait for real time.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["CacheBackend", "CacheBackendError"]


class CacheBackendError(Exception):
    """A store could not answer (connection lost, disk full...).

    The caches treat it as a miss and log it: a cache outage costs money,
    never a failed agent run.
    """


@runtime_checkable
class CacheBackend(Protocol):
    """Where cached values live (memory, SQLite, Redis or your own).

    Implementations raise :class:`CacheBackendError` (or any exception) on
    failure; the caches catch, log and carry on as if it were a miss.
    """

    name: str
    """Short label for logs and reports (``memory``, ``sqlite``, ``redis``)."""

    shared: bool
    """True when other processes see the same entries (SQLite file, Redis)."""

    def get(self, key: str) -> str | None:
        """The stored text, or ``None`` when absent (or expired in the store)."""
        ...

    def set(self, key: str, value: str, ttl: float | None) -> None:
        """Store ``value``; drop it after ``ttl`` seconds (``None``: keep)."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error when absent)."""
        ...

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        """Take the lock ``key`` for ``token`` unless someone holds it.

        The lock lapses after ``ttl`` seconds so a crashed holder cannot block
        others forever. Returns whether ``token`` now holds it.
        """
        ...

    def release(self, key: str, token: str) -> None:
        """Give the lock back, only if ``token`` still holds it."""
        ...

    def clear(self) -> None:
        """Drop every entry this store holds (for its namespace)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
