# pyright: basic
"""Long LangChain prompts are stamped with their prefix: the prompt_cache suggestion has data."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

from langchain_core.messages import HumanMessage, SystemMessage

from faremeter import Usage
from faremeter.analytics import suggest
from faremeter.testing import make_test_meter, recorded_spans
from faremeter_langchain import FaremeterCallbackHandler

sys.path.insert(0, str(Path(__file__).parent))
from lc_fakes import ToolFake, ai

MODEL = "gpt-4o"
SYSTEM = "You are a meticulous analyst. Cite every figure you use. " * 100  # ~5,700 characters
U = Usage(input_tokens=1800, output_tokens=120)


def test_two_calls_sharing_a_long_system_prompt_yield_a_prompt_cache_suggestion() -> None:
    meter = make_test_meter()
    model = ToolFake(messages=iter([ai(U, MODEL, content="a"), ai(U, MODEL, content="b")]))
    handler = FaremeterCallbackHandler(meter)
    for question in ("How did Q3 go?", "And Q4?"):
        model.invoke(
            [SystemMessage(SYSTEM), HumanMessage(question)], config={"callbacks": [handler]}
        )
    meter.flush()
    first, second = recorded_spans(meter)
    assert first.attributes["prompt_prefix_hash"] == second.attributes["prompt_prefix_hash"]
    assert first.attributes["prompt_prefix_tokens"] == 1024

    (s,) = [s for s in suggest(meter.ledger, meter.catalog) if s.kind == "prompt_cache"]
    rates = meter.catalog.get(MODEL).rates_for(1024)
    expected = 1024 * (rates["input"] - rates["cache_read"]) / Decimal(1_000_000)
    assert s.subject == MODEL and s.impact == expected > 0  # one repeat of a 1,024-token prefix
    assert s.evidence["repeated_calls"] == "1"
    assert s.evidence["repeated_prefix_tokens"] == "1024"
    meter.close()
