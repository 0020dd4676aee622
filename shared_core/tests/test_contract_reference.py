"""The contract suite run against the core's manual API.

This is the reference "adapter": if it fails, the contract or the core is
wrong, not a framework integration.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from faremeter import Meter, Usage
from faremeter.calls import CallTracker
from faremeter.testing.contract import AdapterContract

_keys = itertools.count()


class TestManualApiContract(AdapterContract):
    """The core's manual API plus a bare :class:`CallTracker` as the "framework"."""

    trackers: dict[int, CallTracker] = {}  # noqa: RUF012 - one per meter, test-local

    def tracker(self, meter: Meter) -> CallTracker:
        return self.trackers.setdefault(id(meter), CallTracker(meter, where="reference"))

    def _call(
        self, meter: Meter, model: str, usage: Usage | None, reply: str, **end: object
    ) -> None:
        tracker = self.tracker(meter)
        key = next(_keys)
        tracker.start(key, name=model, model=model, prompt=["What is the answer?"])
        tracker.end(key, usage=usage, completion=reply, **end)  # type: ignore[arg-type]

    def run_two_level_agent(self, meter: Meter) -> None:
        with meter.trace("agent"):
            meter.record_llm(self.MODEL, self.FIRST_USAGE)
            meter.record_tool("lookup")
            meter.record_llm(self.MODEL, self.SECOND_USAGE)

    def run_nested_agents(self, meter: Meter) -> None:
        @meter.priced_tool(name="delegate")
        def delegate() -> None:
            with meter.span("inner-agent", kind="agent"):
                meter.record_llm(self.MODEL, self.INNER_USAGE)

        with meter.trace("outer-agent"):
            meter.record_llm(self.MODEL, self.FIRST_USAGE)
            delegate()
            meter.record_llm(self.MODEL, self.SECOND_USAGE)

    def run_error_mid_run(self, meter: Meter) -> None:
        with meter.trace("agent"):
            meter.record_llm(self.MODEL, self.FIRST_USAGE)
            with meter.span(self.MODEL, kind="llm"):
                raise self.ScenarioError(self.ERROR_MESSAGE)

    async def arun_concurrent(self, meter: Meter, n: int) -> None:
        async def one(i: int) -> None:
            async with meter.trace("agent", user_id=f"u{i}"):
                meter.record_llm(self.MODEL, self.FIRST_USAGE)
                await asyncio.sleep(0)
                meter.record_tool("lookup")
                await asyncio.sleep(0)
                meter.record_llm(self.MODEL, self.SECOND_USAGE)

        await asyncio.gather(*(one(i) for i in range(n)))

    def run_streaming(self, meter: Meter) -> None:
        span = meter.start_span(self.MODEL, kind="llm", model=self.MODEL)
        chunks = ["Hel", "lo"]
        assert "".join(chunks) == "Hello"
        span.end(usage=self.FIRST_USAGE)

    async def arun_streaming(self, meter: Meter) -> None:
        tracker = self.tracker(meter)
        key = next(_keys)
        tracker.start(key, name=self.MODEL, model=self.MODEL, prompt="hi")
        tracker.defer(key)  # the framework's span closed; the stream is still open
        for chunk in ("Hel", "lo"):
            await asyncio.sleep(0)
            tracker.note(key, text=chunk)
        tracker.note(key, usage=self.FIRST_USAGE)
        tracker.end(key)

    def run_single_call(
        self, meter: Meter, model: str, usage: Usage | None, reply: str = "ok"
    ) -> None:
        self._call(meter, model, usage, reply)

    def run_cached_call(self, meter: Meter) -> None:
        self._call(meter, self.MODEL, self.FIRST_USAGE, "ok")
        self._call(meter, self.MODEL, self.FIRST_USAGE, "ok", cached=True)

    def run_provider_error(self, meter: Meter, error: BaseException) -> None:
        tracker = self.tracker(meter)
        key = next(_keys)
        tracker.start(key, name=self.MODEL, model=self.MODEL, prompt="hi")
        tracker.fail(key, error)
        raise error

    def run_wrapping_call(self, meter: Meter, inner: Callable[[], None]) -> None:
        tracker = self.tracker(meter)
        key = next(_keys)
        tracker.start(key, name="framework-model", model=self.MODEL, prompt="hi", activate=True)
        inner()
        tracker.end(key, usage=self.FIRST_USAGE, completion="ok")

    def open_calls(self, meter: Meter) -> int:
        return self.tracker(meter).open_calls
