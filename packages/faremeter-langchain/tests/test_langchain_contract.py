# pyright: basic
"""The core's adapter contract, driven through real LangChain / LangGraph runs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.caches import InMemoryCache
from langchain_core.tools import tool

from faremeter import Meter, Usage
from faremeter.testing.contract import AdapterContract
from faremeter_langchain import FaremeterCallbackHandler

sys.path.insert(0, str(Path(__file__).parent))
from lc_fakes import StreamingFake, ToolFake, ai, make_agent, scripted


class WrappingFake(ToolFake):
    """A chat model whose provider call is itself instrumented (``inner``)."""

    inner: Any = None

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.inner()
        return super()._generate(messages, stop, run_manager, **kw)


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return "42"


class TestLangChainContract(AdapterContract):
    def _two_level(self, handler: FaremeterCallbackHandler) -> tuple[object, dict[str, object]]:
        model = ToolFake(
            messages=scripted(
                ai(self.FIRST_USAGE, self.MODEL, tool="lookup"),
                ai(self.SECOND_USAGE, self.MODEL, content="done"),
            )
        )
        return make_agent(model, [lookup]), {"callbacks": [handler]}

    def run_two_level_agent(self, meter: Meter) -> None:
        agent, config = self._two_level(FaremeterCallbackHandler(meter))
        agent.invoke({"messages": [("user", "hi")]}, config=config)  # type: ignore[attr-defined]

    def run_nested_agents(self, meter: Meter) -> None:
        inner = make_agent(
            ToolFake(messages=scripted(ai(self.INNER_USAGE, self.MODEL, content="inner"))),
            [],
            name="inner",
        )

        @tool
        def delegate(query: str) -> str:
            """Ask the inner agent."""
            result = inner.invoke({"messages": [("user", query)]})
            return str(result["messages"][-1].content)

        outer = make_agent(
            ToolFake(
                messages=scripted(
                    ai(self.FIRST_USAGE, self.MODEL, tool="delegate"),
                    ai(self.SECOND_USAGE, self.MODEL, content="done"),
                )
            ),
            [delegate],
            name="outer",
        )
        outer.invoke(
            {"messages": [("user", "hi")]},
            config={"callbacks": [FaremeterCallbackHandler(meter)]},
        )

    def run_error_mid_run(self, meter: Meter) -> None:
        model = ToolFake(
            messages=scripted(
                ai(self.FIRST_USAGE, self.MODEL, tool="lookup"),
                self.ScenarioError(self.ERROR_MESSAGE),
            )
        )
        make_agent(model, [lookup]).invoke(
            {"messages": [("user", "hi")]},
            config={"callbacks": [FaremeterCallbackHandler(meter)]},
        )

    async def arun_concurrent(self, meter: Meter, n: int) -> None:
        handler = FaremeterCallbackHandler(meter)

        async def one(i: int) -> None:
            agent, config = self._two_level(handler)
            config["metadata"] = {"user_id": f"u{i}"}
            await agent.ainvoke({"messages": [("user", "hi")]}, config=config)  # type: ignore[attr-defined]

        await asyncio.gather(*(one(i) for i in range(n)))
        assert handler.open_runs == 0

    def run_streaming(self, meter: Meter) -> None:
        model = StreamingFake(
            messages=scripted(ai(self.FIRST_USAGE, self.MODEL, "a streamed answer"))
        )
        chunks = list(model.stream("hi", config={"callbacks": [FaremeterCallbackHandler(meter)]}))
        assert len(chunks) > 2

    handlers: dict[int, FaremeterCallbackHandler] = {}  # noqa: RUF012 - one per meter

    def handler(self, meter: Meter) -> FaremeterCallbackHandler:
        return self.handlers.setdefault(id(meter), FaremeterCallbackHandler(meter))

    def run_single_call(
        self, meter: Meter, model: str, usage: Usage | None, reply: str = "ok"
    ) -> None:
        fake = ToolFake(messages=scripted(ai(usage, model, reply)))
        fake.invoke("hi", config={"callbacks": [self.handler(meter)]})

    async def arun_streaming(self, meter: Meter) -> None:
        model = StreamingFake(
            messages=scripted(ai(self.FIRST_USAGE, self.MODEL, "a streamed answer"))
        )
        chunks = [c async for c in model.astream("hi", config={"callbacks": [self.handler(meter)]})]
        assert len(chunks) > 2

    def run_cached_call(self, meter: Meter) -> None:
        model = ToolFake(
            messages=scripted(ai(self.FIRST_USAGE, self.MODEL, "cached answer")),
            cache=InMemoryCache(),
        )
        for _ in range(2):
            model.invoke("same question", config={"callbacks": [self.handler(meter)]})

    def run_provider_error(self, meter: Meter, error: BaseException) -> None:
        ToolFake(messages=scripted(error)).invoke("hi", config={"callbacks": [self.handler(meter)]})

    def run_wrapping_call(self, meter: Meter, inner: Callable[[], None]) -> None:
        model = WrappingFake(
            messages=scripted(ai(self.FIRST_USAGE, self.MODEL, "wrapped")), inner=inner
        )
        model.invoke("hi", config={"callbacks": [self.handler(meter)]})

    def open_calls(self, meter: Meter) -> int:
        return self.handler(meter).open_runs
