# pyright: basic
"""RoutedChatModel: LangChain's standard unit tests plus routing and fallback behaviour."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableBinding
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel

import faremeter
from faremeter.fallback import RetryPolicy
from faremeter.pricing import ModelPrice, PriceCatalog
from faremeter.routing import Router, RouteRule
from faremeter_langchain._routed import RoutedChatModel

CAPS = ("function_calling", "response_schema")


def catalog() -> PriceCatalog:
    return PriceCatalog(
        models={
            "cheap": ModelPrice(
                input_per_mtok="0.15",
                output_per_mtok="0.6",
                max_input_tokens=16_000,
                capabilities=CAPS,
            ),
            "cheap-notools": ModelPrice(
                input_per_mtok="0.1", output_per_mtok="0.4", max_input_tokens=16_000
            ),
            "strong": ModelPrice(
                input_per_mtok="2.5",
                output_per_mtok="10",
                max_input_tokens=128_000,
                capabilities=CAPS,
            ),
        }
    )


def make_router() -> Router:
    return Router(
        {"economy": ["cheap", "cheap-notools"], "standard": ["strong"]},
        catalog=catalog(),
        complexity=False,
        default_tier="standard",
        steps={"parse": "economy", "draft": "strong"},
    )


class ToolFake(GenericFakeChatModel):
    """LangChain's generic fake, answering forever, with tool binding."""

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)


def fake(name: str, *messages: AIMessage) -> ToolFake:
    replies = list(messages) or [AIMessage(content=f"hello from {name}")]
    return ToolFake(messages=itertools.cycle(replies), name=name)


class RateLimitError(Exception):
    status_code = 429


class Failing(ToolFake):
    """Raises a provider rate-limit error on every call and stream."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise RateLimitError("429 too many requests")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise RateLimitError("429 too many requests")


NO_WAIT: dict[str, Any] = {
    "retry": RetryPolicy(retries={}, jitter_s=0),
    "sleep": lambda s: None,
    "clock": lambda: 0.0,
}


def routed(**models: Any) -> RoutedChatModel:
    defaults = {
        "cheap": fake("cheap"),
        "cheap-notools": fake("cheap-notools"),
        "strong": fake("strong"),
    }
    return RoutedChatModel(
        router=make_router(), models={**defaults, **models}, chain_options=NO_WAIT
    )


class TestRoutedChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[RoutedChatModel]:
        return RoutedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "router": make_router(),
            "models": {
                "cheap": fake("cheap"),
                "cheap-notools": fake("n"),
                "strong": fake("strong"),
            },
        }

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True


# --------------------------------------------------------------- behaviour


def test_invoke_routes_by_step_and_records_the_decision() -> None:
    model = routed()
    with faremeter.attributes(step="parse"):
        reply = model.invoke("hi")
    assert reply.content == "hello from cheap-notools"  # cheapest economy model
    route = reply.response_metadata["faremeter_route"]
    assert (
        route["model"] == "cheap-notools" and route["reason"] == "rule step=parse -> tier economy"
    )
    assert model.invoke("hi").content == "hello from strong"  # default tier


def test_langgraph_node_is_the_default_step() -> None:
    model = routed()
    reply = model.invoke("hi", config={"metadata": {"langgraph_node": "draft"}})
    assert reply.response_metadata["faremeter_route"]["model"] == "strong"


async def test_ainvoke_and_batch() -> None:
    model = routed()
    with faremeter.attributes(step="parse"):
        reply = await model.ainvoke("hi")
        replies = model.batch(["a", "b"])
    assert reply.content == "hello from cheap-notools"
    assert [r.content for r in replies] == ["hello from cheap-notools"] * 2


def test_falls_back_to_the_alternative_on_rate_limit() -> None:
    model = routed(strong=Failing(messages=iter([]), name="strong"))
    reply = model.invoke("hi")
    assert reply.content in {"hello from cheap", "hello from cheap-notools"}
    assert reply.response_metadata["faremeter_route"]["model"] == "strong"


def test_stream_falls_back_before_the_first_chunk() -> None:
    model = routed(strong=Failing(messages=iter([]), name="strong"))
    chunks = list(model.stream("hi"))
    text = "".join(str(c.content) for c in chunks)
    assert text.startswith("hello from cheap")
    assert chunks[0].response_metadata["faremeter_route"]["model"] == "strong"


async def test_astream_routes() -> None:
    model = routed()
    with faremeter.attributes(step="draft"):
        text = "".join([str(c.content) async for c in model.astream("hi")])
    assert text == "hello from strong"


def test_bind_tools_routes_only_to_tool_capable_models() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    model = routed()
    bound = model.bind_tools([add])
    assert isinstance(bound, RunnableBinding)
    with faremeter.attributes(step="parse"):
        reply = bound.invoke("add 1 and 2")
    # The economy tier's cheapest model cannot call tools: its tool-capable peer answers.
    assert reply.content == "hello from cheap"


class Answer(BaseModel):
    value: int


def test_with_structured_output_routes_to_json_capable_models() -> None:
    call = AIMessage(content="", tool_calls=[{"name": "Answer", "args": {"value": 42}, "id": "1"}])
    model = routed(cheap=fake("cheap", call), strong=fake("strong", call))
    structured = model.with_structured_output(Answer)
    with faremeter.attributes(step="parse"):
        assert structured.invoke("what is the answer?") == Answer(value=42)


async def test_with_structured_output_async() -> None:
    call = AIMessage(content="", tool_calls=[{"name": "Answer", "args": {"value": 7}, "id": "1"}])
    model = routed(cheap=fake("cheap", call), strong=fake("strong", call))
    assert await model.with_structured_output(Answer).ainvoke("q") == Answer(value=7)


def test_every_candidate_needs_a_model() -> None:
    with pytest.raises(ValueError, match="without a chat model in models=: strong"):
        RoutedChatModel(
            router=make_router(), models={"cheap": fake("c"), "cheap-notools": fake("n")}
        )


def test_route_is_inspectable() -> None:
    model = routed()
    decision = model.route([HumanMessage("x" * 400)], {"step": "parse"})
    assert decision.model == "cheap-notools" and decision.input_tokens == 100


def test_rules_match_run_tags() -> None:
    router = Router(
        {"economy": ["cheap", "cheap-notools"], "standard": ["strong"]},
        catalog=catalog(),
        complexity=False,
        rules=[RouteRule.of({"tags": ["bulk"]}, tier="economy")],
    )
    model = RoutedChatModel(
        router=router,
        models={"cheap": fake("cheap"), "cheap-notools": fake("n"), "strong": fake("strong")},
        chain_options=NO_WAIT,
    )
    assert model.invoke("x", config={"tags": ["bulk"]}).content == "hello from n"
    assert model.invoke("x").content == "hello from strong"
