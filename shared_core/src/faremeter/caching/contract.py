"""The behaviour every cache store must have, as a reusable check.

Run it against your own :class:`~faremeter.caching.backends.CacheBackend`
(the memory, SQLite and Redis stores are held to it in faremeter's tests)::

    from faremeter.caching.contract import check_backend_contract

    def test_my_store():
        check_backend_contract(MyStore(...), advance=None)
"""

from __future__ import annotations

from collections.abc import Callable

from faremeter.caching.backends.protocol import CacheBackend

__all__ = ["check_backend_contract"]


def check_backend_contract(backend: CacheBackend, advance: Callable[[float], None] | None) -> None:
    """Assert what the caches rely on.

    Args:
        backend: An empty store (it is cleared at the end).
        advance: Moves the store's clock forward by seconds, to check TTLs and
            lapsing locks; ``None`` for stores whose clock cannot be moved.

    Raises:
        AssertionError: Naming the first behaviour that does not hold.
    """
    assert backend.get("k") is None
    backend.set("k", '{"v":1}', None)
    assert backend.get("k") == '{"v":1}'
    backend.set("k", '{"v":2}', 60)  # overwrite
    assert backend.get("k") == '{"v":2}'
    backend.set("café", "ü", None)  # non-ASCII keys and values round-trip
    assert backend.get("café") == "ü"
    backend.delete("k")
    backend.delete("never-set")
    assert backend.get("k") is None

    assert backend.acquire("lock", "a", 30)
    assert not backend.acquire("lock", "b", 30)  # held by someone else
    backend.release("lock", "b")  # not the holder: no effect
    assert not backend.acquire("lock", "b", 30)
    backend.release("lock", "a")
    assert backend.acquire("lock", "b", 30)
    backend.release("lock", "b")

    if advance is not None:
        backend.set("short", "x", 10)
        assert backend.acquire("lapsing", "a", 10)
        advance(9.9)
        assert backend.get("short") == "x"
        assert not backend.acquire("lapsing", "b", 10)
        advance(0.2)
        assert backend.get("short") is None  # expired in the store itself
        assert backend.acquire("lapsing", "b", 5)  # a crashed holder's lock lapses

    backend.clear()
    assert backend.get("café") is None
