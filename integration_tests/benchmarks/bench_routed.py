"""Routed models: what faremeter's routing glue costs per call, beside the peers.

    uv run python integration_tests/benchmarks/bench_routed.py

Offline, warm, one process; median of repeated runs. Measured:

* ``litellm.Router`` deployment choice for a 3-deployment model group:
  LiteLLM's default ``simple-shuffle`` vs :class:`FaremeterRoutingStrategy`
  (route decision + LiteLLM's own health/cooldown filtering + decision stamping);
* one routed LiteLLM call (``mock_response``) through ``RoutedCompletion``
  (route, admit, fallback chain, spans) vs the same ``litellm.completion``
  called directly, both instrumented by faremeter's LiteLLM logger;
* one LlamaIndex ``chat`` through ``RoutedLLM`` vs the same scripted LLM's
  ``chat`` directly, both instrumented by ``faremeter_llamaindex.instrument``.

Output is markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

import litellm
from llama_index.core.base.llms.types import ChatMessage

import faremeter
import faremeter_litellm
import faremeter_llamaindex
from faremeter.routing import Router
from faremeter.usage import Usage
from faremeter_litellm.routed import RoutedCompletion
from faremeter_litellm.routing_strategy import FaremeterRoutingStrategy
from faremeter_llamaindex._routed import RoutedLLM
from faremeter_llamaindex.testing import Reply, ScriptedLLM

TIERS = {"economy": ["gpt-4o-mini"], "standard": ["gpt-4.1-mini"], "premium": ["gpt-4o"]}
MESSAGES = [{"role": "user", "content": "Is this ticket about billing? " * 20}]


def per_call_us(fn: Callable[[], Any], number: int, repeats: int = 5) -> float:
    fn()  # warm
    runs = timeit.repeat(fn, number=number, repeat=repeats)
    return statistics.median(runs) / number * 1e6


def reply(model: str) -> Any:
    return litellm.ModelResponse(
        model=model,
        choices=[{"message": {"role": "assistant", "content": "ok"}}],
        usage=litellm.Usage(prompt_tokens=120, completion_tokens=10, total_tokens=130),
    )


def bench_strategy(router: Router) -> tuple[float, float]:
    router_cls: Any = litellm.Router  # pyright: ignore[reportPrivateImportUsage]
    llm_router = router_cls(
        model_list=[
            {"model_name": "auto", "litellm_params": {"model": m, "mock_response": "ok"}}
            for m in ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini")
        ]
    )
    meter = faremeter.Meter(ledger="memory")
    strategy = FaremeterRoutingStrategy(llm_router, router, meter=meter)
    router_type: Any = llm_router.__class__
    default: Any = router_type.get_available_deployment

    def theirs() -> Any:
        return default(llm_router, model="auto", messages=MESSAGES, request_kwargs={})

    def ours() -> Any:
        return strategy.get_available_deployment(
            model="auto", messages=MESSAGES, request_kwargs={"metadata": {"step": "parse"}}
        )

    return per_call_us(theirs, 2_000), per_call_us(ours, 2_000)


def bench_litellm_call(router: Router) -> tuple[float, float]:
    meter = faremeter.Meter(ledger="memory")
    handle = faremeter_litellm.instrument(meter)
    models = {m: {"model": m, "mock_response": reply(m)} for tier in TIERS.values() for m in tier}
    routed = RoutedCompletion(router, models=models, meter=meter)
    direct_response = reply("gpt-4o-mini")

    def direct() -> Any:
        return litellm.completion(
            model="gpt-4o-mini", messages=MESSAGES, mock_response=direct_response
        )

    def through() -> Any:
        with faremeter.attributes(step="parse"):
            return routed.completion(messages=MESSAGES)

    with meter.trace("bench"):
        # Interleaved, best of two rounds each: LiteLLM's own per-call cost drifts.
        theirs = min(per_call_us(direct, 200), per_call_us(direct, 200))
        ours = per_call_us(through, 200)
        theirs = min(theirs, per_call_us(direct, 200))
        ours = min(ours, per_call_us(through, 200))
    handle.uninstrument()
    meter.close()
    return theirs, ours


def bench_llamaindex_call(router: Router) -> tuple[float, float]:
    meter = faremeter.Meter(ledger="memory")
    usage = Usage(input_tokens=120, output_tokens=10)

    class Endless(ScriptedLLM):
        def _next(self) -> Reply:
            return Reply(text="ok", usage=usage)

    llms = {m: Endless(model=m) for tier in TIERS.values() for m in tier}
    routed = RoutedLLM(router, llms, meter=meter, instrument=False)
    messages = [ChatMessage(role="user", content=MESSAGES[0]["content"])]
    plain = llms["gpt-4o-mini"]
    with faremeter_llamaindex.instrument(meter), meter.trace("bench"):
        theirs = per_call_us(lambda: plain.chat(messages), 1_000)
        with faremeter.attributes(step="parse"):
            ours = per_call_us(lambda: routed.chat(messages), 1_000)
    meter.close()
    return theirs, ours


def main() -> None:
    router = Router(TIERS, steps={"parse": "gpt-4o-mini"}, complexity=False)
    rows = [
        ("litellm.Router deployment choice", "simple-shuffle", *bench_strategy(router)),
        ("LiteLLM call (mock), instrumented", "litellm.completion", *bench_litellm_call(router)),
        ("LlamaIndex chat, instrumented", "the LLM's own chat", *bench_llamaindex_call(router)),
    ]
    print(
        f"<!-- {datetime.now(UTC):%Y-%m-%d} {platform.python_implementation()} "
        f"{platform.python_version()} {platform.machine()} -->"
    )
    print("| per call | peer | peer µs | faremeter routed µs | ratio |")
    print("|---|---|---:|---:|---:|")
    for name, peer, theirs, ours in rows:
        print(f"| {name} | {peer} | {theirs:.1f} | {ours:.1f} | {ours / theirs:.2f}x |")


if __name__ == "__main__":
    main()
