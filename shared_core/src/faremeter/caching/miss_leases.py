"""Stampede protection for response-cache misses: concurrent identical requests pay once.

A response cache only helps the *second* request; an agent that fans out the
same deterministic request (ten workers summarising one document) sends all
ten to the provider before any answer is stored. Here the first miss of a key
takes a *lease*; the others wait for it and are then served what it stored (a
``cached`` span with ``saved``), so the provider is paid once.

Unlike :class:`~faremeter.caching.singleflight.SingleFlight` (which wraps one
function), a routed call spans several steps between the lookup and the store
— routing, budgets, a fallback chain, a stream the caller drains — so a lease
is taken at the lookup and given back when the call ends
(:meth:`Lease.release`, idempotent), or when the leaseholder drops its ticket
(a garbage-collection finalizer: a call abandoned between lookup and store —
a budget denial, a stream never iterated — cannot keep others waiting).

* **Across threads and event loops** of one process: a table of in-flight keys;
  async waiters poll it rather than block their loop.
* **Across processes** on a shared store (SQLite, Redis): the store's lock
  (:meth:`~faremeter.caching.backends.CacheBackend.acquire`), polled until the
  holder stored the answer or the wait ends.
* **Bounded**: a waiter gives up after ``wait_s`` and runs its own request;
  a leader that failed or stored nothing lets its waiters run their own
  requests at once, concurrently (a provider error is not shared, and not
  retried one waiter after another).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faremeter.caching.guarded import GuardedStore

__all__ = ["Lease", "MissLeases"]

T = TypeVar("T")


class _Flight:
    """One key being computed in this process."""

    __slots__ = ("done", "owner", "waiters")

    def __init__(self, owner: tuple[int, int]) -> None:
        self.done = threading.Event()
        self.owner = owner  # (thread, asyncio task) of the leaseholder
        self.waiters = 0


class Lease:
    """The right (and duty) to compute one key; :meth:`release` when the call ends."""

    __slots__ = ("__weakref__", "_finalizer", "key")

    def __init__(self, key: str, finalizer: Callable[[Lease], weakref.finalize[Any, Any]]) -> None:
        self.key = key
        self._finalizer = finalizer(self)

    def release(self) -> None:
        """Let the waiters go (they look the key up again). Idempotent."""
        self._finalizer()

    @property
    def released(self) -> bool:
        """Whether :meth:`release` ran (or the lease was dropped)."""
        return not self._finalizer.alive


def _owner() -> tuple[int, int]:
    task = 0
    try:
        import asyncio

        current = asyncio.current_task()
        task = id(current) if current is not None else 0
    except RuntimeError:  # no running loop in this thread
        pass
    return threading.get_ident(), task


class MissLeases:
    """In-flight misses of one cache (see the module docstring).

    Args:
        store: The cache's store; its lock coordinates processes when shared.
        wait_s: Longest a request waits for an identical one before running
            its own (also the lifetime of the store lock).
        poll_s: How often a waiter looks again.
        sleep: Blocking sleep (injectable for tests).
    """

    def __init__(
        self,
        store: GuardedStore,
        *,
        wait_s: float,
        poll_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if wait_s <= 0 or poll_s <= 0:
            raise ValueError("wait_s and poll_s must be > 0")
        self._store = store
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        _all_leases.add(self)

    def _forget(self) -> None:
        """In a forked child: the leaseholders were the parent's threads, none runs here."""
        self._lock = threading.Lock()
        self._flights = {}

    def in_flight(self, key: str) -> int:
        """Requests of ``key`` in this process: its leaseholder plus those waiting (0: none)."""
        with self._lock:
            flight = self._flights.get(key)
            return 0 if flight is None else flight.waiters + 1

    # -- leases -------------------------------------------------------------
    def _enter(self, key: str, owner: tuple[int, int]) -> _Flight | None:
        """Become the leaseholder (``None``) or get the flight to wait for."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is None:
                self._flights[key] = _Flight(owner)
                return None
            if flight.owner != owner:
                flight.waiters += 1
            return flight

    def _left(self, flight: _Flight, owner: tuple[int, int] | None = None) -> None:
        if owner is not None and flight.owner == owner:
            return  # the leaseholder was not counted as a waiter
        with self._lock:
            flight.waiters -= 1

    def _lease(self, key: str, token: str | None) -> Lease:
        flight = self._flights[key]
        return Lease(
            key,
            lambda lease: weakref.finalize(lease, _end, self, key, flight, token),
        )

    def claim(self, key: str, found: Callable[[], T | None]) -> tuple[Lease | None, T | None]:
        """Lead the miss of ``key``, or wait for its leader and return what it stored.

        Args:
            key: The store key.
            found: Looks the key up in the store (no span recorded).

        Returns:
            ``(lease, None)`` to run the request (release the lease when it
            ends); ``(None, answer)`` when another request stored it meanwhile;
            ``(None, None)`` to run it uncoordinated (the wait ended, or the
            leader stored nothing).
        """
        deadline = time.monotonic() + self.wait_s
        owner = _owner()
        flight = self._enter(key, owner)
        if flight is not None:
            if flight.owner[0] == owner[0]:
                # The leaseholder runs on this very thread (a nested call, a stream
                # not drained yet, a coroutine of this thread's loop): blocking here
                # would stop it, so never wait on it.
                self._left(flight, owner)
                return None, None
            try:
                flight.done.wait(max(0.0, deadline - time.monotonic()))
            finally:
                self._left(flight)
            return None, found()
        token: str | None = None
        try:
            if self._store.backend.shared:
                token = os.urandom(16).hex()
                while not self._store.acquire(key, token, self.wait_s):
                    answer = found()
                    if answer is not None or time.monotonic() >= deadline:
                        token = None
                        _end(self, key, self._flights.get(key), None)
                        return None, answer
                    self._sleep(self.poll_s)
                answer = found()  # the previous holder may have stored it just before releasing
                if answer is not None:
                    _end(self, key, self._flights.get(key), token)
                    return None, answer
            return self._lease(key, token), None
        except BaseException:
            _end(self, key, self._flights.get(key), token)
            raise

    async def aclaim(
        self, key: str, found: Callable[[], Awaitable[T | None]]
    ) -> tuple[Lease | None, T | None]:
        """:meth:`claim` for coroutines: waits poll, shared stores run off the loop."""
        import asyncio

        deadline = time.monotonic() + self.wait_s
        owner = _owner()
        flight = self._enter(key, owner)
        if flight is not None:
            if flight.owner[0] == owner[0] and flight.owner[1] in (owner[1], 0):
                # This task itself holds it (a nested call), or a sync call of this
                # thread does (a stream paused in this task): it cannot finish while
                # we wait, so never wait on it. Another task's lease is waited for.
                self._left(flight, owner)
                return None, None
            try:
                while not flight.done.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(self.poll_s)
            finally:
                self._left(flight)
            return None, await found()
        token: str | None = None
        try:
            if self._store.backend.shared:
                token = os.urandom(16).hex()
                while not await asyncio.to_thread(self._store.acquire, key, token, self.wait_s):
                    answer = await found()
                    if answer is not None or time.monotonic() >= deadline:
                        token = None
                        _end(self, key, self._flights.get(key), None)
                        return None, answer
                    await asyncio.sleep(self.poll_s)
                answer = await found()
                if answer is not None:
                    _end(self, key, self._flights.get(key), token)
                    return None, answer
            return self._lease(key, token), None
        except BaseException:
            _end(self, key, self._flights.get(key), token)
            raise


_all_leases: weakref.WeakSet[MissLeases] = weakref.WeakSet()


def _forget_all_in_child() -> None:
    for leases in list(_all_leases):
        leases._forget()  # pyright: ignore[reportPrivateUsage]


os.register_at_fork(after_in_child=_forget_all_in_child)


def _end(leases: MissLeases, key: str, flight: _Flight | None, token: str | None) -> None:
    """Give a lease back: the store lock, then the waiters of this process."""
    try:
        if token is not None:
            leases._store.release(key, token)  # pyright: ignore[reportPrivateUsage]
    finally:
        if flight is not None:
            with leases._lock:  # pyright: ignore[reportPrivateUsage]
                if leases._flights.get(key) is flight:  # pyright: ignore[reportPrivateUsage]
                    del leases._flights[key]  # pyright: ignore[reportPrivateUsage]
            flight.done.set()
