"""One provider request seen by two instrumented layers is charged once.

A LangChain chat model that calls LiteLLM underneath is the everyday case:
both adapters see the request. The tree shows both spans; the LiteLLM one
(closest to the provider) carries the cost, the LangChain one is a $0 wrapper.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

import faremeter
import faremeter_litellm
from faremeter import Meter, SpanKind, Usage
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_langchain import FaremeterCallbackHandler

sys.path.insert(0, str(Path(__file__).parents[1] / "packages/faremeter-litellm/tests"))
from helpers import mock

MODEL = "gpt-4o-mini"
USAGE = Usage(input_tokens=1200, output_tokens=150)


class LiteLLMChat(BaseChatModel):
    """A minimal LangChain chat model over ``litellm.completion`` (like ChatLiteLLM)."""

    @property
    def _llm_type(self) -> str:
        return "litellm-chat"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        response: Any = litellm.completion(
            model=MODEL,
            messages=[{"role": "user", "content": str(m.content)} for m in messages],
            mock_response=mock(USAGE, model=MODEL, text="hello there"),
        )
        usage = response.usage
        message = AIMessage(
            content=response.choices[0].message.content,
            usage_metadata={
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            response_metadata={"model_name": MODEL},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


@pytest.fixture
def meter() -> Iterator[Meter]:
    m = make_test_meter()
    previous = faremeter.set_meter(m)
    handle = faremeter_litellm.instrument(m)
    yield m
    handle.uninstrument()
    faremeter.set_meter(previous)
    m.close()


def test_langchain_model_over_litellm_is_charged_once(meter: Meter) -> None:
    with meter.trace("agent", user_id="u1") as t:
        LiteLLMChat().invoke("hi", config={"callbacks": [FaremeterCallbackHandler(meter)]})
    assert meter.flush()
    llm = [s for s in recorded_spans(meter) if s.kind is SpanKind.LLM]
    assert len(llm) == 2, "both layers stay visible in the tree"
    wrapper = next(s for s in llm if s.attributes.get("wrapper") is True)
    inner = next(s for s in llm if s is not wrapper)
    assert inner.parent_span_id == wrapper.span_id
    expected = meter.price(MODEL, USAGE).total
    assert wrapper.cost.total == 0
    assert inner.cost.total == expected
    assert t.cost == expected
    assert inner.attributes.get("user_id") == "u1"


async def test_async_langchain_model_over_litellm_is_charged_once(meter: Meter) -> None:
    async with meter.trace("agent") as t:
        await LiteLLMChat().ainvoke("hi", config={"callbacks": [FaremeterCallbackHandler(meter)]})
        # The model span ended in a shielded copy of the context; nothing new may
        # nest under it afterwards.
        meter.record_tool("after", cost="0.001")
    assert meter.flush()
    spans = recorded_spans(meter)
    after = next(s for s in spans if s.name == "after")
    assert after.parent_span_id == t.span_id
    assert t.cost == meter.price(MODEL, USAGE).total + 1 * __import__("decimal").Decimal("0.001")


def test_sync_litellm_call_in_a_trace_is_exact_after_meter_flush_alone(meter: Meter) -> None:
    with meter.trace("agent") as t:
        litellm.completion(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            mock_response=mock(USAGE, model=MODEL),
        )
    # LiteLLM logs sync calls on its own thread, after the call returned.
    assert meter.flush()
    assert t.pending == 0
    assert t.cost == meter.price(MODEL, USAGE).total
