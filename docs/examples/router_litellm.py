"""LiteLLM routed by faremeter: a routed ``completion`` with fallback, and a Router strategy.

Run: uv run python docs/examples/router_litellm.py   (offline: ``mock_response`` stands in
for the providers; drop it and set your API keys for real calls)
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download

from typing import Any

import litellm

import faremeter
import faremeter_litellm
from faremeter.fallback import RetryPolicy
from faremeter.routing import Router
from faremeter.routing.savings import routed_report
from faremeter_litellm.routed import RoutedCompletion
from faremeter_litellm.routing_strategy import FaremeterRoutingStrategy

meter = faremeter.Meter(ledger="memory")
faremeter_litellm.instrument(meter)  # each LiteLLM request is the priced span

router = Router(
    {"economy": ["gpt-4o-mini"], "standard": ["gpt-4.1-mini"], "premium": ["gpt-4o"]},
    steps={"classify": "gpt-4o-mini", "answer": "gpt-4o"},
    complexity=False,
)


def reply(model: str, prompt_tokens: int, completion_tokens: int) -> Any:
    """What a provider would answer (a LiteLLM ModelResponse with usage)."""
    return litellm.ModelResponse(
        model=model,
        choices=[{"message": {"role": "assistant", "content": f"hi from {model}"}}],
        usage=litellm.Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )


# 1. Routed completion: faremeter picks the model string and falls back.
routed = RoutedCompletion(
    router,
    meter=meter,
    models={  # router model -> LiteLLM kwargs (here: offline mocks)
        "gpt-4o-mini": {"model": "gpt-4o-mini", "mock_response": "litellm.RateLimitError"},
        "gpt-4.1-mini": {"model": "gpt-4.1-mini", "mock_response": reply("gpt-4.1-mini", 800, 60)},
        "gpt-4o": {"model": "gpt-4o", "mock_response": reply("gpt-4o", 800, 300)},
    },
    retry=RetryPolicy(retries={}),  # gpt-4o-mini is rate limited: move on at once
)
messages = [{"role": "user", "content": "Is this ticket about billing?"}]
with meter.trace("support") as t:
    with faremeter.attributes(step="classify"):
        r1 = routed.completion(messages=messages)
    with faremeter.attributes(step="answer"):
        r2 = routed.completion(messages=messages, max_tokens=400)
print("classify:", r1.choices[0].message.content)
print("answer:  ", r2.choices[0].message.content)

# 2. faremeter's router as the routing strategy of a litellm.Router model group.
llm_router: Any = litellm.Router(  # pyright: ignore[reportPrivateImportUsage]
    model_list=[
        {"model_name": "auto", "litellm_params": {"model": m, "mock_response": f"hi from {m}"}}
        for m in ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini")
    ]
)
FaremeterRoutingStrategy(llm_router, router, meter=meter).install()
with meter.trace("support-router"):
    for step in ("classify", "answer"):
        r = llm_router.completion(model="auto", messages=messages, metadata={"step": step})
        print(f"router {step:8} -> {r.model}")

meter.flush()
print(f"routed completion trace cost: ${t.cost}")
report = routed_report(meter.ledger, meter.catalog)
for row in report.rows:
    tag = " (fallback)" if row.fallback else ""
    print(f"{row.step:8} chose {row.chosen:12} called {row.model}{tag}: ${row.cost} "
          f"vs {row.baseline_model} ${row.baseline_cost}")  # fmt: skip
print(f"saved against the most expensive candidate: ${report.saved}")
