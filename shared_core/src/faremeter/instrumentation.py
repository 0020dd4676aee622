"""The one instrument / uninstrument shape every adapter's handle follows.

Registering a handler twice double-counts every call, and removing one that
was never registered must be harmless, so both are idempotent here, once,
instead of in each adapter. Handles are also context managers (tests and
scripts instrument for a block).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import Generic, Self, TypeVar

__all__ = ["Instrumentation", "InstrumentationRegistry"]


class Instrumentation(abc.ABC):
    """An adapter installed into its framework (or ready to be)."""

    def __init__(self) -> None:
        self._state_lock = threading.Lock()
        self.active = False

    @abc.abstractmethod
    def _install(self) -> None:
        """Register with the framework (called once per activation)."""

    @abc.abstractmethod
    def _uninstall(self) -> None:
        """Unregister from the framework (called once per deactivation)."""

    def instrument(self) -> Self:
        """Install if not installed; returns ``self``."""
        with self._state_lock:
            if not self.active:
                self._install()
                self.active = True
        return self

    def uninstrument(self) -> None:
        """Remove from the framework; harmless when not installed."""
        with self._state_lock:
            if not self.active:
                return
            self.active = False
            self._uninstall()

    def __enter__(self) -> Self:
        return self.instrument()

    def __exit__(self, *exc: object) -> None:
        self.uninstrument()


T = TypeVar("T", bound=Instrumentation)


class InstrumentationRegistry(Generic[T]):
    """At most one active handle per key (usually the meter), per adapter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[object, T] = {}

    def ensure(self, key: object, create: Callable[[], T]) -> tuple[T, bool]:
        """The active handle for ``key``, created and installed if there is none.

        Returns:
            The handle and whether it was created by this call.
        """
        with self._lock:
            handle = self._active.get(key)
            if handle is not None and handle.active:
                return handle, False
            handle = create()
            handle.instrument()
            self._active[key] = handle
            return handle, True

    def discard(self, handle: T) -> None:
        """Forget ``handle`` (after it was uninstrumented)."""
        with self._lock:
            for key, value in list(self._active.items()):
                if value is handle:
                    del self._active[key]

    def active(self) -> list[T]:
        """Every installed handle."""
        with self._lock:
            return [h for h in self._active.values() if h.active]
