"""In-process stampede protection: concurrent identical calls run once.

The first caller of a key (the *leader*) runs the work; callers arriving while
it runs wait and share its outcome — its result or its exception. Threads use
:class:`SingleFlight`, coroutines :class:`AsyncSingleFlight` (one flight table
per event loop, since futures belong to a loop). Across processes the caches
add a store lock on top (see :mod:`faremeter.caching.backends`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncSingleFlight", "SingleFlight"]

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "error", "result", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.waiters = 0


class SingleFlight(Generic[T]):
    """Deduplicate concurrent calls by key across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """Run ``fn`` once for all concurrent callers of ``key``.

        Returns:
            ``(result, leader)``: ``leader`` is True for the one caller that ran ``fn``.

        Raises:
            Whatever ``fn`` raised, in the leader and in every waiter.
        """
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            else:
                call.waiters += 1
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.result, False  # type: ignore[return-value]
        try:
            call.result = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return call.result, True

    def in_flight(self, key: str) -> int:
        """Callers currently waiting on ``key`` plus its leader (0 when idle)."""
        with self._lock:
            call = self._calls.get(key)
            return 0 if call is None else call.waiters + 1


class AsyncSingleFlight(Generic[T]):
    """Deduplicate concurrent coroutine calls by key within each event loop."""

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Future[Any]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _table(self) -> dict[str, asyncio.Future[Any]]:
        import asyncio  # on first async use: asyncio is heavy to import

        loop = asyncio.get_running_loop()
        with self._lock:
            table = self._loops.get(loop)
            if table is None:
                table = self._loops[loop] = {}
            return table

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Await ``fn()`` once for all concurrent callers of ``key`` on this loop.

        A waiter whose leader was cancelled becomes (or waits for) the next leader
        rather than inheriting a cancellation that was not meant for it.
        """
        import asyncio

        table = self._table()
        while True:
            future = table.get(key)
            if future is None:
                break
            try:
                return await asyncio.shield(future), False
            except asyncio.CancelledError:
                if not future.cancelled():
                    raise  # this waiter itself was cancelled
        future = asyncio.get_running_loop().create_future()
        table[key] = future
        try:
            result = await fn()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(result)
        finally:
            if table.get(key) is future:
                del table[key]
        return result, True
