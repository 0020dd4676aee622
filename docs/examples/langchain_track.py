"""Meter every LangChain run in a block with ``track()`` — runnable offline.

    uv run python docs/examples/langchain_track.py

No handler is passed anywhere: ``track()`` attaches one to every run started
inside the ``with`` block (sync or async) and detaches it when the block ends.
"""

from __future__ import annotations

import asyncio

from langchain_core.caches import InMemoryCache
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate

from faremeter import Meter
from faremeter_langchain import track


def answer(text: str) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata={"input_tokens": 900, "output_tokens": 60, "total_tokens": 960},
        response_metadata={"model_name": "gpt-4o-mini"},
    )


# cache=: LangChain's own LLM cache. A hit is recorded as a `cached` span that
# costs $0 and says what it saved, instead of charging the old usage again.
model = GenericFakeChatModel(
    messages=iter([answer("Paris."), answer("Rome."), answer("Paris, again.")]),
    cache=InMemoryCache(),
)
chain = ChatPromptTemplate.from_messages([("user", "Capital of {country}?")]) | model

meter = Meter(ledger="memory")  # a real app: Meter() or faremeter.get_meter()


async def main() -> None:
    async with track(meter, trace="capitals", user_id="u-7", team="geo") as t:
        await chain.ainvoke({"country": "France"})
        await chain.ainvoke({"country": "Italy"})
        await chain.ainvoke({"country": "France"})  # served by the LLM cache
    print(f"trace cost: ${t.cost:.6f}")


asyncio.run(main())
meter.flush()
for span in meter.ledger.spans(kind="llm"):
    saved = f" saved ${span.saved:.6f}" if span.saved else ""
    user = span.attributes["user_id"]
    print(f"{span.status.value:<7} {span.model} ${span.cost.total:.6f}{saved} user={user}")
