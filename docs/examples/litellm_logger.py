"""faremeter + LiteLLM, offline: one logger prices every call, retry and fallback.

Run: uv run python docs/examples/litellm_logger.py
"""

from __future__ import annotations

import os
import warnings

warnings.filterwarnings("ignore", module="pydantic")  # LiteLLM's mock objects trip its serializer
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network needed

import litellm  # noqa: E402

import faremeter  # noqa: E402
import faremeter_litellm  # noqa: E402

meter = faremeter.Meter(ledger="memory")
handle = faremeter_litellm.instrument(meter, environment="demo")


def reply(prompt_tokens: int, completion_tokens: int, cached: int = 0) -> litellm.ModelResponse:
    """A mocked provider answer reporting exact usage (mock_response=str always says 10/20)."""
    return litellm.ModelResponse(
        choices=[{"message": {"role": "assistant", "content": "..."}}],
        usage=litellm.Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details={"cached_tokens": cached},
        ),
    )


router = litellm.Router(
    model_list=[
        # The primary deployment is rate limited; the Router falls back to the backup.
        {
            "model_name": "smart",
            "litellm_params": {"model": "gpt-4o", "mock_response": "litellm.RateLimitError"},
        },
        {
            "model_name": "cheap",
            "litellm_params": {"model": "gpt-4o-mini", "mock_response": reply(900, 120)},
        },
    ],
    fallbacks=[{"smart": ["cheap"]}],
    num_retries=0,
)

with meter.trace("research", user_id="u1", workflow="demo") as run:
    litellm.completion(
        model="gpt-4o",
        messages=[{"role": "user", "content": "plan the research"}],
        mock_response=reply(3000, 400, cached=2048),
        metadata={"team": "search", "step": "plan"},
    )
    router.completion(model="smart", messages=[{"role": "user", "content": "summarise"}])
    handle.flush()  # LiteLLM logs on a background thread; wait for it

for depth, node in run.tree().roots[0].walk():
    span = node.span
    print(
        f"{'  ' * depth}{span.name:<24} {span.status.value:<8} "
        f"direct ${node.direct_cost:.6f}  total ${node.total_cost:.6f}"
        + (
            f"  (LiteLLM said ${span.attributes['litellm_response_cost']:.6f})"
            if "litellm_response_cost" in span.attributes
            else ""
        )
    )
print(f"run total ${run.cost:.6f}")
handle.uninstrument()
meter.close()
