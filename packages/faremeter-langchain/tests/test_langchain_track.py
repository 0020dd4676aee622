# pyright: basic
"""``track()``: attaches to every run inside, leaves nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tracers.context import _configure_hooks  # pyright: ignore[reportPrivateUsage]

from faremeter import Meter, SpanKind, Usage
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_langchain import FaremeterCallbackHandler, track
from faremeter_langchain._track import _active  # pyright: ignore[reportPrivateUsage]

sys.path.insert(0, str(Path(__file__).parent))
from lc_fakes import ToolFake, ai, make_agent, scripted

U = Usage(input_tokens=100, output_tokens=10)


@pytest.fixture
def meter() -> Any:
    m = make_test_meter()
    yield m
    m.close()


def fake(n: int = 1) -> ToolFake:
    return ToolFake(messages=scripted(*(ai(U, "gpt-4o-mini", f"a{i}") for i in range(n))))


def test_attaches_without_wiring_and_binds_attribution(meter: Meter) -> None:
    model = fake(2)
    with track(meter, user_id="u1", workflow="w"):
        model.invoke("hi")
        make_agent(fake(1), []).invoke({"messages": [("user", "x")]})
    spans = recorded_spans(meter)
    assert len([s for s in spans if s.kind is SpanKind.LLM]) == 2
    assert len({s.trace_id for s in spans}) == 2  # no trace= : one trace per top-level run
    assert all(s.attributes["user_id"] == "u1" and s.attributes["workflow"] == "w" for s in spans)


def test_nothing_registered_after_exit(meter: Meter) -> None:
    hooks = len(_configure_hooks)
    model = fake(3)
    for _ in range(100):
        with track(meter):
            pass
    assert len(_configure_hooks) == hooks  # langchain #32300: no hook per call
    with track(meter):
        model.invoke("inside")
    assert _active.get() is None
    model.invoke("outside")
    assert len(recorded_spans(meter)) == 1


def test_body_raising_still_detaches(meter: Meter) -> None:
    class Boom(Exception):
        pass

    boom = Boom()
    with pytest.raises(Boom) as info, track(meter, user_id="u1"):
        raise boom
    assert info.value is boom
    assert _active.get() is None
    fake().invoke("after")
    assert recorded_spans(meter) == []


async def test_async_with_and_trace(meter: Meter) -> None:
    model = fake(3)
    async with track(meter, trace="batch-job", team="t1") as t:
        await model.abatch(["a", "b", "c"])
    spans = recorded_spans(meter)
    assert len({s.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if s.parent_span_id is None]
    assert root.name == "batch-job" and root.kind is SpanKind.AGENT
    assert len([s for s in spans if s.kind is SpanKind.LLM]) == 3
    assert t.cost == sum(s.cost.total or 0 for s in spans)
    assert all(s.attributes["team"] == "t1" for s in spans)
    assert _active.get() is None


def test_explicit_handler_is_not_doubled(meter: Meter) -> None:
    with track(meter):
        fake().invoke("hi", config={"callbacks": [FaremeterCallbackHandler(meter)]})
    assert len(recorded_spans(meter)) == 1


def test_uses_default_meter(meter: Meter) -> None:
    import faremeter

    previous = faremeter.set_meter(meter)
    try:
        with track():
            fake().invoke("hi")
    finally:
        faremeter.set_meter(previous)
    assert len(recorded_spans(meter)) == 1


def test_import_does_not_pull_in_the_langsmith_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, faremeter_langchain; "
        "print('langsmith.client' in sys.modules, 'langchain_core.tracers.context' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout
