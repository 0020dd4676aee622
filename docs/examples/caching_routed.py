"""A routed model served from faremeter's response cache — runnable offline.

    uv run python docs/examples/caching_routed.py

``RoutedChatModel(..., cache=ResponseCache(...))`` looks a deterministic call
up before routing it: the second identical question calls no model and
reserves no budget, and it is one ``cached`` span that says what it saved.
``RoutedLLM`` (LlamaIndex) and ``RoutedCompletion`` (LiteLLM) take the same
``cache=``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from faremeter import Meter
from faremeter.caching import ResponseCache
from faremeter.routing import Router
from faremeter_langchain import FaremeterCallbackHandler, RoutedChatModel


def replies(model: str) -> Iterator[AIMessage]:
    """Stands in for ChatOpenAI(model=model): numbered answers reporting their usage."""
    for n in count(1):
        yield AIMessage(
            content=f"answer #{n} from {model}",
            usage_metadata={"input_tokens": 900, "output_tokens": 60, "total_tokens": 960},
            response_metadata={"model_name": model},
        )


def main() -> dict[str, Any]:
    meter = Meter(ledger="memory")
    handler = FaremeterCallbackHandler(meter)
    router = Router(
        {"economy": ["gpt-4o-mini"], "standard": ["gpt-4o"]},
        steps={"lookup": "gpt-4o-mini"},
    )
    model = RoutedChatModel(
        router=router,
        models={m: GenericFakeChatModel(messages=replies(m)) for m in ("gpt-4o-mini", "gpt-4o")},
        cache=ResponseCache(ttl=86_400, meter=meter),  # or backend="sqlite:///..", "redis://.."
    )
    config: Any = {"callbacks": [handler], "metadata": {"step": "lookup"}}

    with meter.trace("support", user_id="u-42") as t:
        answers = [
            model.invoke("Where is order 42?", config=config, temperature=0).content
            for _ in range(2)  # the second one is answered by the cache
        ]

    meter.flush()
    for span in meter.ledger.spans(t.trace_id):
        if span.kind.value == "llm":
            saved = f"  saved ${span.saved:f}" if span.saved is not None else ""
            cost = f"${span.cost.total:f}"
            print(f"{span.name:16} {span.model:12} {span.status.value:6} {cost}{saved}")
    print(f"answers: {answers}")
    print(f"charged: ${t.cost:f}")
    meter.close()
    return {"cost": t.cost, "answers": answers}


if __name__ == "__main__":
    main()
