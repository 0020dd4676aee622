# pyright: basic
from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index_instrumentation import get_dispatcher

from faremeter import Meter
from faremeter.testing import make_test_meter
from faremeter_llamaindex import FaremeterEventHandler, FaremeterSpanHandler


def ours_installed() -> list[object]:
    d = get_dispatcher()
    return [
        h
        for h in [*d.span_handlers, *d.event_handlers]
        if isinstance(h, FaremeterSpanHandler | FaremeterEventHandler)
    ]


@pytest.fixture(autouse=True)
def no_leaked_handlers() -> Iterator[None]:
    """Every test starts and ends with no faremeter handler on the dispatcher."""
    assert not ours_installed(), "a previous test leaked its handlers"
    yield
    leaked = ours_installed()
    d = get_dispatcher()
    d.span_handlers = [h for h in d.span_handlers if h not in leaked]
    d.event_handlers = [h for h in d.event_handlers if h not in leaked]
    assert not leaked, "this test left faremeter handlers on the dispatcher"


@pytest.fixture
def tmeter() -> Iterator[Meter]:
    m = make_test_meter(tools={"lookup": "0.001", "add": "0.002", "delegate": "0.002"})
    yield m
    m.close()
