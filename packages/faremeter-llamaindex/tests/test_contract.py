# pyright: basic
"""The core's adapter contract, driven through real FunctionAgent runs."""

from __future__ import annotations

import asyncio

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage
from llama_index.core.tools import FunctionTool

import faremeter
from faremeter import Meter, Usage
from faremeter.testing.contract import AdapterContract
from faremeter_llamaindex import instrument
from faremeter_llamaindex.testing import Reply, ScriptedLLM


def run(agent: FunctionAgent, msg: str) -> str:
    """Run an agent to completion from sync code (it needs a running loop)."""

    async def main() -> str:
        return str(await agent.run(user_msg=msg))

    return asyncio.run(main())


def lookup(query: str = "") -> str:
    """Look something up."""
    return "42"


class TestLlamaIndexContract(AdapterContract):
    def _two_level(self, model: str = AdapterContract.MODEL) -> FunctionAgent:
        llm = ScriptedLLM(
            [
                Reply(tool_calls=[("lookup", {"query": "x"})], usage=self.FIRST_USAGE),
                Reply(text="it is 42", usage=self.SECOND_USAGE),
            ],
            model=model,
        )
        return FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm)

    def run_two_level_agent(self, meter: Meter) -> None:
        with instrument(meter):
            run(self._two_level(), "what is it?")

    def run_nested_agents(self, meter: Meter) -> None:
        inner = FunctionAgent(
            name="inner", llm=ScriptedLLM([Reply(text="inner done", usage=self.INNER_USAGE)])
        )

        async def delegate(task: str = "") -> str:
            """Hand the task to the inner agent."""
            return str(await inner.run(user_msg=task))

        outer = FunctionAgent(
            name="outer",
            tools=[FunctionTool.from_defaults(async_fn=delegate, name="delegate")],
            llm=ScriptedLLM(
                [
                    Reply(tool_calls=[("delegate", {"task": "t"})], usage=self.FIRST_USAGE),
                    Reply(text="all done", usage=self.SECOND_USAGE),
                ]
            ),
        )
        with instrument(meter):
            run(outer, "go")

    def run_error_mid_run(self, meter: Meter) -> None:
        llm = ScriptedLLM(
            [
                Reply(tool_calls=[("lookup", {"query": "x"})], usage=self.FIRST_USAGE),
                Reply(error=self.ScenarioError(self.ERROR_MESSAGE)),
            ]
        )
        agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm)
        with instrument(meter):
            run(agent, "boom")

    async def arun_concurrent(self, meter: Meter, n: int) -> None:
        async def one(i: int) -> None:
            with faremeter.attributes(user_id=f"u{i}"):
                await self._two_level().run(user_msg=f"run {i}")

        with instrument(meter):
            await asyncio.gather(*(one(i) for i in range(n)))

    def run_streaming(self, meter: Meter) -> None:
        llm = ScriptedLLM([Reply(text="streamed answer", usage=self.FIRST_USAGE)])
        with instrument(meter):
            chunks = list(llm.stream_chat([ChatMessage(role="user", content="hi")]))
        assert chunks

    def run_single_call(self, meter: Meter, model: str, usage: Usage) -> None:
        llm = ScriptedLLM([Reply(text="one", usage=usage)], model=model)
        with instrument(meter):
            llm.chat([ChatMessage(role="user", content="hi")])
