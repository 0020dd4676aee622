"""LiteLLM adapter overhead: recording one call vs LiteLLM's own cost calculation.

Run: uv run python integration_tests/benchmarks/bench_litellm.py
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import faremeter_litellm
from faremeter.meter import Meter
from faremeter_litellm._recorder import Recorder

N = 20_000


def _response() -> Any:
    return litellm.ModelResponse(
        model="gpt-4o",
        choices=[{"message": {"role": "assistant", "content": "ok"}}],
        usage=litellm.Usage(
            prompt_tokens=3000,
            completion_tokens=500,
            total_tokens=3500,
            prompt_tokens_details={"cached_tokens": 1024},
        ),
    )


def _median_us(fn: Any, n: int = N) -> float:
    samples: list[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    response = _response()
    meter = Meter(ledger="memory")
    rec = Recorder(meter)
    base = {
        "model": "gpt-4o",
        "custom_llm_provider": "openai",
        "call_type": "completion",
        "response_cost": 0.01,
        "litellm_params": {"metadata": {"user_id": "u1", "team": "t"}},
    }

    ids = itertools.count()

    def record() -> None:
        kwargs = dict(base, litellm_call_id=f"call-{next(ids)}")
        rec.start(kwargs)
        rec.success(kwargs, response, None, None)

    def litellm_cost() -> None:
        litellm.completion_cost(completion_response=response, model="gpt-4o")

    ours = _median_us(record)
    theirs = _median_us(litellm_cost, n=N // 10)

    def call() -> None:
        litellm.completion(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], mock_response=response
        )

    bare = _median_us(call, n=300)
    litellm.callbacks.append(faremeter_litellm.FaremeterLogger(meter))
    with_logger = _median_us(call, n=300)
    litellm.callbacks.clear()
    meter.close()
    print("| measure | value |")  # markdown, ready for BENCHMARKS.md
    print("|---|---:|")
    print(f"| `litellm.completion(mock)` without logger | {bare:.1f} µs |")
    print(f"| `litellm.completion(mock)` with `FaremeterLogger` | {with_logger:.1f} µs |")
    print(f"| faremeter `Recorder.start` + `success` per call | {ours:.1f} µs |")
    print(f"| peer: `litellm.completion_cost` per call | {theirs:.1f} µs |")
    print(f"| ratio faremeter / LiteLLM's cost step | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
