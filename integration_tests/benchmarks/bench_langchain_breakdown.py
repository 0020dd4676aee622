"""Where the LangChain handler's per-invoke overhead goes, in thread CPU time.

    uv run python integration_tests/benchmarks/bench_langchain_breakdown.py [--rounds N]

``bench_langchain.py`` times wall clock, which on a shared machine moves with
other processes' load by ±30% from run to run. This companion times the
invoking thread's CPU (``time.thread_time_ns``), which other processes barely
move, so the ratio to ``UsageMetadataCallbackHandler`` is comparable across
runs. (The ledger's writer thread is not counted here: the in-memory ledger's
cost to the invoking thread is its ``record()`` call plus the garbage
collector's extra work on the spans it keeps, both included.)

Contenders, interleaved round by round (the same ``GenericFakeChatModel.invoke``
as ``bench_langchain.py``): no callbacks; a handler with empty
``on_chat_model_start``/``on_llm_end`` (LangChain's dispatch alone);
``UsageMetadataCallbackHandler``; then faremeter's handler cut at each stage —
span start only (the end discards it), start + reading the response, start +
end with the usage given (no reading), everything with the ledger stubbed, and
everything into ``Meter(ledger="memory")`` (what ships). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from bench_langchain import make_model
from langchain_core.callbacks import BaseCallbackHandler, UsageMetadataCallbackHandler

from faremeter import Meter, Usage
from faremeter_langchain import FaremeterCallbackHandler

USAGE = Usage(input_tokens=1200, output_tokens=150)


class EmptyHooks(BaseCallbackHandler):
    """Implements the two hooks a bare invoke sends, doing nothing: the dispatch floor."""

    run_inline = True

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        return None


class StartOnly(FaremeterCallbackHandler):
    """Opens the span as shipped; the end forgets it (no reading, pricing or recording)."""

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.calls.discard(run_id)


class StartRead(FaremeterCallbackHandler):
    """Opens the span and reads the response (usage, model); records nothing."""

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._read(response)  # pyright: ignore[reportPrivateUsage]
        self.calls.discard(run_id)


class StartEnd(FaremeterCallbackHandler):
    """Opens and records the span with the usage given: everything but reading the response."""

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.calls.end(run_id, usage=USAGE, model="gpt-4o-mini")


def stub_meter() -> Meter:
    meter = Meter(ledger="memory")
    meter.ledger.record = lambda span: None  # type: ignore[method-assign]
    return meter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()

    model = make_model()

    def run(handler: BaseCallbackHandler | None) -> Callable[[], Any]:
        config: Any = {"callbacks": [handler]} if handler is not None else {}
        return lambda: model.invoke("What is the answer?", config=config)

    contenders: dict[str, Callable[[], Any]] = {
        "no callbacks": run(None),
        "empty on_chat_model_start/on_llm_end (dispatch floor)": run(EmptyHooks()),
        "UsageMetadataCallbackHandler": run(UsageMetadataCallbackHandler()),
        "faremeter: span start only": run(StartOnly(stub_meter())),
        "faremeter: start + read the response": run(StartRead(stub_meter())),
        "faremeter: start + price + record (usage given)": run(StartEnd(stub_meter())),
        "faremeter: all, ledger stubbed": run(FaremeterCallbackHandler(stub_meter())),
        "faremeter: all, memory ledger (as shipped)": run(
            FaremeterCallbackHandler(Meter(ledger="memory"))
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        for _ in range(args.batch):
            fn()
    gc.collect()
    clock = time.thread_time_ns
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            start = clock()
            for _ in range(args.batch):
                fn()
            samples[name].append((clock() - start) / args.batch / 1000)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["no callbacks"]
    umch = medians["UsageMetadataCallbackHandler"] - base
    print(
        f"LangChain handler overhead, thread CPU µs per invoke; {args.rounds} rounds ×"
        f" {args.batch} invokes, medians\n"
    )
    print("| contender | CPU µs / invoke | overhead µs | ÷ UsageMetadataCallbackHandler |")
    print("|---|---:|---:|---:|")
    for name, value in medians.items():
        over = value - base
        ratio = "" if name == "no callbacks" else f"{over / umch:.2f}"
        print(f"| {name} | {value:.1f} | {over:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
