"""The faremeter pytest plugin: fixtures for code that records costs.

Registered automatically via the ``pytest11`` entry point.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faremeter.default_meter import set_meter
from faremeter.meter import Meter
from faremeter.testing import make_test_meter


@pytest.fixture
def meter() -> Iterator[Meter]:
    """An in-memory meter (deterministic clock and ids), installed as the default meter.

    The previous default meter is restored afterwards, so one test's recording
    never leaks into the next.
    """
    m = make_test_meter()
    previous = set_meter(m)
    try:
        yield m
    finally:
        set_meter(previous)
        m.close()
