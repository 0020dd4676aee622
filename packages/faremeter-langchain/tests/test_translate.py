"""Reading texts out of LangChain messages: the fast path agrees with the general one."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration

from faremeter_langchain._translate import chat_texts, text_of

BATCHES: list[list[Any]] = [
    [
        SystemMessage("You are terse."),
        HumanMessage("What is 2 + 3?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}]),
        ToolMessage("5", tool_call_id="c1"),
        AIMessage("It is 5."),
        HumanMessage(content=[{"type": "text", "text": "and 4 + 4?"}]),
        HumanMessage(""),
    ],
    [ChatGeneration(message=AIMessage("from a generation")), "a plain prompt string"],
]


def test_chat_texts_is_text_of_for_every_message() -> None:
    expected = [text_of(m) for batch in BATCHES for m in batch]
    assert chat_texts(BATCHES) == expected
    assert expected[2] == "add{'a': 2, 'b': 3}"  # tool-call arguments are prompt text too
    assert expected[5] == "and 4 + 4?" and expected[7] == "from a generation"
