# pyright: basic
"""The core's adapter contract, driven through real FunctionAgent runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import ChatMessage, CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.tools import FunctionTool

import faremeter
from faremeter import Meter, Usage
from faremeter.testing.contract import AdapterContract
from faremeter_llamaindex import LlamaIndexInstrumentation, instrument
from faremeter_llamaindex.testing import Reply, ScriptedLLM, openai_usage


def run(agent: FunctionAgent, msg: str) -> str:
    """Run an agent to completion from sync code (it needs a running loop)."""

    async def main() -> str:
        return str(await agent.run(user_msg=msg))

    return asyncio.run(main())


def lookup(query: str = "") -> str:
    """Look something up."""
    return "42"


class TestLlamaIndexContract(AdapterContract):
    has_response_cache = False  # LlamaIndex has no LLM response cache

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
        with self._instrument(meter):
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
        with self._instrument(meter):
            run(outer, "go")

    def run_error_mid_run(self, meter: Meter) -> None:
        llm = ScriptedLLM(
            [
                Reply(tool_calls=[("lookup", {"query": "x"})], usage=self.FIRST_USAGE),
                Reply(error=self.ScenarioError(self.ERROR_MESSAGE)),
            ]
        )
        agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm)
        with self._instrument(meter):
            run(agent, "boom")

    async def arun_concurrent(self, meter: Meter, n: int) -> None:
        async def one(i: int) -> None:
            with faremeter.attributes(user_id=f"u{i}"):
                await self._two_level().run(user_msg=f"run {i}")

        with self._instrument(meter):
            await asyncio.gather(*(one(i) for i in range(n)))

    def run_streaming(self, meter: Meter) -> None:
        llm = ScriptedLLM([Reply(text="streamed answer", usage=self.FIRST_USAGE)])
        with self._instrument(meter):
            chunks = list(llm.stream_chat([ChatMessage(role="user", content="hi")]))
        assert chunks

    async def arun_streaming(self, meter: Meter) -> None:
        # A CustomLLM's astream_chat iterates its own stream_chat outside the
        # first span: the case that used to be charged twice.
        llm = StreamingLLM(usage=self.FIRST_USAGE)
        with self._instrument(meter):
            gen = await llm.astream_chat([ChatMessage(role="user", content="hi")])
            chunks = [c async for c in gen]
        assert chunks[-1].message.content == "streamed answer"

    def run_single_call(
        self, meter: Meter, model: str, usage: Usage | None, reply: str = "ok"
    ) -> None:
        llm = ScriptedLLM([Reply(text=reply, usage=usage)], model=model)
        with self._instrument(meter):
            llm.chat([ChatMessage(role="user", content="What is the answer?")])

    def run_cached_call(self, meter: Meter) -> None:
        raise NotImplementedError("LlamaIndex has no LLM response cache")

    def run_provider_error(self, meter: Meter, error: BaseException) -> None:
        llm = ScriptedLLM([Reply(error=error)])
        with self._instrument(meter):
            llm.chat([ChatMessage(role="user", content="hi")])

    def run_wrapping_call(self, meter: Meter, inner: Callable[[], None]) -> None:
        llm = StreamingLLM(usage=self.FIRST_USAGE, before=inner)
        with self._instrument(meter):
            llm.complete("hi")

    def open_calls(self, meter: Meter) -> int:
        return sum(h.recorder.open_calls for h in self._handles.get(id(meter), []))

    # Every handle a test created, to count what it still holds after uninstrument().
    _handles: ClassVar[dict[int, list[LlamaIndexInstrumentation]]] = {}

    def _instrument(self, meter: Meter) -> LlamaIndexInstrumentation:
        handle = instrument(meter)
        handles = self._handles.setdefault(id(meter), [])
        if handle not in handles:
            handles.append(handle)
        return handle


class StreamingLLM(CustomLLM):
    """A completion LLM reporting usage in ``raw`` (streamed: on the last chunk only)."""

    usage: Any = None
    before: Any = None

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=AdapterContract.MODEL)

    def _raw(self) -> dict[str, Any]:
        return {"usage": openai_usage(self.usage)}

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.before is not None:
            self.before()
        return CompletionResponse(text="streamed answer", raw=self._raw())

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text="streamed", delta="streamed")
            yield CompletionResponse(text="streamed answer", delta=" answer", raw=self._raw())

        return gen()
