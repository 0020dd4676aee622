"""Test helpers for applications and adapters that use faremeter.

Shipped as a pytest plugin (registered through the ``pytest11`` entry point):
installing faremeter gives every test suite a ``meter`` fixture backed by an
in-memory ledger with a deterministic clock and ids. Adapters also subclass
:class:`faremeter.testing.contract.AdapterContract` (imported separately so
this module does not need pytest).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from faremeter.meter import Meter

__all__ = ["FakeClock", "SequentialIds", "make_test_meter", "recorded_spans"]


class FakeClock:
    """A clock that advances by ``step_ns`` every time it is read.

    Deterministic latencies and orderings, safe to read from several threads.
    """

    def __init__(self, start_ns: int = 1_767_225_600_000_000_000, step_ns: int = 1_000_000) -> None:
        self._now = start_ns
        self._step = step_ns
        self._lock = threading.Lock()

    def __call__(self) -> int:
        """Now, advancing the clock by one step."""
        with self._lock:
            self._now += self._step
            return self._now

    def advance(self, ns: int) -> None:
        """Jump forward (e.g. across an hour or day boundary)."""
        with self._lock:
            self._now += ns


class SequentialIds:
    """Trace and span ids that count up: ``000…01``, ``000…02``."""

    def __init__(self) -> None:
        self._traces = itertools.count(1)
        self._spans = itertools.count(1)
        self._lock = threading.Lock()

    def trace_id(self) -> str:
        """The next trace id (32 hex digits)."""
        with self._lock:
            return f"{next(self._traces):032x}"

    def span_id(self) -> str:
        """The next span id (16 hex digits)."""
        with self._lock:
            return f"{next(self._spans):016x}"


def make_test_meter(
    *,
    tools: Mapping[str, Decimal | float | str] | None = None,
    deterministic: bool = True,
    **kwargs: Any,
) -> Meter:
    """An in-memory meter for tests, optionally with per-call tool prices."""
    from faremeter.cost import to_decimal
    from faremeter.pricing import PriceCatalog, ToolPrice

    catalog = kwargs.pop("catalog", None) or PriceCatalog.default()
    if tools:
        catalog = catalog.with_overrides(
            tools={name: ToolPrice(price_per_call=to_decimal(p)) for name, p in tools.items()}
        )
    if deterministic:
        kwargs.setdefault("clock", FakeClock())
        kwargs.setdefault("ids", SequentialIds())
    kwargs.setdefault("ledger", "memory")
    # Test meters never become the process default by being created first:
    # tests choose it explicitly (``faremeter.set_meter``) when they want that.
    kwargs.setdefault("_register", False)
    return Meter(catalog=catalog, **kwargs)


def recorded_spans(meter: Meter, **filters: Any) -> list[Any]:
    """Flush and return every span the meter's ledger holds (oldest first)."""
    meter.flush()
    spans = meter.ledger.spans(**filters)
    return sorted(spans, key=lambda s: (s.start_ns, s.span_id))
