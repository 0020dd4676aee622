"""faremeter's caches in LangChain's own slots — runnable offline.

    uv run python docs/examples/caching_langchain.py

``set_llm_cache(FaremeterLLMCache(...))`` works like ``InMemoryCache`` but keeps
JSON in memory, SQLite or Redis and, with the callback handler attached, turns
the second identical call into one ``cached`` span that says what it saved.
``cached_tool`` caches a ``@tool`` without touching its code.
"""

from __future__ import annotations

from typing import Any

from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from faremeter import Meter, PriceCatalog, ToolPrice
from faremeter.caching import ToolCache
from faremeter_langchain import FaremeterCallbackHandler, FaremeterLLMCache, cached_tool


@tool
def web_search(query: str) -> str:
    """Search the web."""
    return f"3 results for {query}"


def main() -> dict[str, Any]:
    catalog = PriceCatalog.default().with_overrides(
        tools={"web_search": ToolPrice.per_call("0.005")}
    )
    meter = Meter(ledger="memory", catalog=catalog)
    handler = FaremeterCallbackHandler(meter)
    previous = get_llm_cache()
    set_llm_cache(FaremeterLLMCache("memory", meter=meter))  # or "sqlite:///llm.db", "redis://..."

    model = GenericFakeChatModel(  # stands in for ChatOpenAI(model="gpt-4o")
        messages=iter(
            [
                AIMessage(
                    content="faremeter prices agent runs.",
                    usage_metadata={"input_tokens": 900, "output_tokens": 60, "total_tokens": 960},
                    response_metadata={"model_name": "gpt-4o"},
                )
            ]
        )
    )
    search = cached_tool(web_search, ToolCache(ttl=600, meter=meter))

    with meter.trace("qa", user_id="u-42") as t:
        for _ in range(2):  # the second call is answered by the cache
            model.invoke("What is faremeter?", config={"callbacks": [handler]})
            search.invoke({"query": "faremeter"}, config={"callbacks": [handler]})
    set_llm_cache(previous)

    meter.flush()
    for span in meter.ledger.spans(t.trace_id):
        if span.kind.value in ("llm", "tool"):
            saved = f"  saved ${span.saved:f}" if span.saved is not None else ""
            cost = f"${span.cost.total:f}"
            print(f"{span.kind.value:4} {span.name:22} {span.status.value:6} {cost}{saved}")
    print(f"charged: ${t.cost:f}")
    meter.close()
    return {"cost": t.cost}


if __name__ == "__main__":
    main()
