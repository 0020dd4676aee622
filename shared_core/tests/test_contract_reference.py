"""The contract suite run against the core's manual API.

This is the reference "adapter": if it fails, the contract or the core is
wrong, not a framework integration.
"""

from __future__ import annotations

import asyncio

from faremeter import Meter, Usage
from faremeter.testing.contract import AdapterContract


class TestManualApiContract(AdapterContract):
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

    def run_single_call(self, meter: Meter, model: str, usage: Usage) -> None:
        meter.record_llm(model, usage)
