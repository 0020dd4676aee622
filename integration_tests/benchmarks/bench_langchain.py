"""Per-invoke overhead of LangChain cost/usage handlers, side by side.

    uv run python integration_tests/benchmarks/bench_langchain.py [--rounds 300] [--batch 40]

One chain (GenericFakeChatModel.invoke, a message carrying usage_metadata and a
model name) is invoked with no callbacks, a no-op handler, LangChain's
UsageMetadataCallbackHandler, faremeter's handler (in-memory ledger) and
Langfuse's LangChain CallbackHandler (dummy keys, host 127.0.0.1:9 and a
discarding span exporter: nothing leaves the machine). Contenders are
interleaved round by round so drift hits all of them alike; each number is the
median over rounds of (batch time / batch size). Overhead = that median minus
the no-callback median. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import langchain_core
from _summary import report_summary
from langchain_core.callbacks import BaseCallbackHandler, UsageMetadataCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from faremeter import Meter
from faremeter.usage import usage_totals
from faremeter_langchain import FaremeterCallbackHandler


def make_model() -> GenericFakeChatModel:
    message = AIMessage(
        content="The answer is 42.",
        usage_metadata={"input_tokens": 1200, "output_tokens": 150, "total_tokens": 1350},
        response_metadata={"model_name": "gpt-4o-mini"},
    )
    return GenericFakeChatModel(messages=itertools.repeat(message))


class NoOpHandler(BaseCallbackHandler):
    """Subscribes to nothing: the cost of having any handler at all."""


class CoreFloorHandler(BaseCallbackHandler):
    """The least a meter can do: one priced span per call, recorded at the end.

    Both hooks are implemented (so LangChain dispatches the chat start event as
    it does to faremeter's handler), the start does nothing, and the end reads
    the reported usage and calls ``meter.record_llm`` — no tree, no context, no
    budget, no usage check: the core's own floor beside which the adapter's
    overhead is read.
    """

    run_inline = True
    raise_error = True

    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        return None

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        raw = response.generations[0][0].message.usage_metadata
        usage = usage_totals(raw["input_tokens"], raw["output_tokens"])
        self.meter.record_llm("gpt-4o-mini", usage)


def langfuse_handler() -> tuple[BaseCallbackHandler | None, str]:
    try:
        from langfuse import Langfuse
        from langfuse.langchain import CallbackHandler
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    except ImportError as exc:  # pragma: no cover - optional peer
        return None, f"langfuse not installed ({exc})"

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

    Langfuse(
        public_key="pk-lf-bench",
        secret_key="sk-lf-bench",
        host="http://127.0.0.1:9",
        span_exporter=Discard(),
        flush_interval=3600,
    )
    from importlib.metadata import version

    return CallbackHandler(public_key="pk-lf-bench"), f"langfuse {version('langfuse')}"


def measure(contenders: dict[str, Callable[[], Any]], rounds: int, batch: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # warm up every path (imports, caches, price lookups)
        for _ in range(batch):
            fn()
    gc.collect()
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter_ns()
            for _ in range(batch):
                fn()
            samples[name].append((time.perf_counter_ns() - start) / batch / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()

    model = make_model()
    meter = Meter(ledger="memory")
    fm = FaremeterCallbackHandler(meter)
    floor_meter = Meter(ledger="memory")
    usage = UsageMetadataCallbackHandler()
    noop = NoOpHandler()
    lf, lf_label = langfuse_handler()

    def run(handler: BaseCallbackHandler | None) -> Callable[[], Any]:
        config: Any = {"callbacks": [handler]} if handler is not None else {}
        return lambda: model.invoke("What is the answer?", config=config)

    contenders: dict[str, Callable[[], Any]] = {
        "no callbacks": run(None),
        "no-op handler": run(noop),
        "UsageMetadataCallbackHandler": run(usage),
        "faremeter FaremeterCallbackHandler": run(fm),
        "core floor: `meter.record_llm` at `on_llm_end`": run(CoreFloorHandler(floor_meter)),
    }
    if lf is not None:
        contenders["Langfuse CallbackHandler"] = run(lf)

    medians = measure(contenders, args.rounds, args.batch)
    meter.flush()
    base = medians["no callbacks"]
    over = {name: value - base for name, value in medians.items()}
    ours = over["faremeter FaremeterCallbackHandler"]

    print(
        f"LangChain handler overhead per invoke — python {platform.python_version()},"
        f" langchain-core {langchain_core.__version__}, {lf_label if lf else 'langfuse: n/a'};"
        f" {args.rounds} rounds × {args.batch} invokes, medians\n"
    )
    print("| handler | µs / invoke | overhead µs | faremeter overhead ÷ this overhead |")
    print("|---|---:|---:|---:|")
    for name, value in medians.items():
        ratio = "" if name == "no callbacks" or over[name] <= 0 else f"{ours / over[name]:.2f}"
        print(f"| {name} | {value:.1f} | {over[name]:.1f} | {ratio} |")
    usage_ratio = ours / over["UsageMetadataCallbackHandler"]
    print(f"\nfaremeter ÷ UsageMetadataCallbackHandler overhead: {usage_ratio:.2f}× (≤ 1.5×)")
    floor = over["core floor: `meter.record_llm` at `on_llm_end`"]
    print(
        f"\ncore floor ÷ UsageMetadataCallbackHandler: "
        f"{floor / over['UsageMetadataCallbackHandler']:.2f}×; "
        f"faremeter's handler adds {ours - floor:.1f} µs over the floor"
    )
    # Read by run_all.py for the targets table (stripped from BENCHMARKS.md).
    report_summary(
        "langchain_vs_usage",
        usage_ratio,
        note=f"{ours:.1f} vs {over['UsageMetadataCallbackHandler']:.1f} µs",
    )
    if lf is not None:
        lf_ratio = ours / over["Langfuse CallbackHandler"]
        print(f"faremeter ÷ Langfuse overhead: {lf_ratio:.2f}× (target ≤ 0.25×)")
        report_summary(
            "langchain_vs_langfuse",
            lf_ratio,
            note=f"{ours:.1f} vs {over['Langfuse CallbackHandler']:.1f} µs",
        )
    spans = len(meter.ledger.spans())
    print(f"spans recorded by faremeter: {spans}", file=sys.stderr)


if __name__ == "__main__":
    main()
