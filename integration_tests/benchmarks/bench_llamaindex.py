"""Per-call overhead of faremeter's LlamaIndex instrumentation vs TokenCountingHandler.

    uv run python integration_tests/benchmarks/bench_llamaindex.py [iterations]

Three configurations run side by side, interleaved in rounds so drift hits all
of them alike: no handler (baseline), ``faremeter_llamaindex.instrument()``
into ``Meter(ledger="memory")``, and LlamaIndex's legacy
``TokenCountingHandler`` on ``Settings.callback_manager``. Each call is timed
alone; overhead is the median call minus the baseline median. MockLLM reports
no usage, so both tools tokenize (TokenCountingHandler with tiktoken
cl100k; faremeter with the model family's tokenizer or its heuristic). A
second LLM reporting usage shows the common production path (no tokenizing);
a third streams through ``CustomLLM.astream_chat`` (one request that crosses
two LlamaIndex spans, charged once by faremeter).
Prints a markdown table.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from _summary import report_summary
from llama_index.core import Settings
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from llama_index.core.llms import ChatMessage, CustomLLM, MockLLM
from llama_index.core.llms import callbacks as llm_callbacks
from llama_index_instrumentation import get_dispatcher

from faremeter import Meter, Usage
from faremeter_llamaindex import instrument
from faremeter_llamaindex.testing import Reply, ScriptedLLM

PROMPT = (
    "You are a research assistant. Summarise the following notes in three bullet points, "
    "citing the source of each claim. Notes: faremeter prices, attributes and caps what LLM "
    "agents cost; it records every model call, tool call, embedding and retrieval as a span "
    "with exact Decimal costs and hierarchical attribution by user, team and workflow."
)
MESSAGES = [
    ChatMessage(role="system", content="Be brief."),
    ChatMessage(role="user", content=PROMPT),
]


class UsageLLM(ScriptedLLM):
    """Reports usage on every call, like a real provider integration."""

    def _next(self) -> Reply:
        return Reply(text="A short answer.", usage=Usage(input_tokens=120, output_tokens=8))


_F = TypeVar("_F", bound=Callable[..., Any])


def completion_callback() -> Callable[[_F], _F]:
    """LlamaIndex's (untyped) ``llm_completion_callback``, typed for pyright."""
    return llm_callbacks.llm_completion_callback()  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType]


class UsageStreamLLM(CustomLLM):
    """A ``CustomLLM`` whose stream reports usage on its last chunk (OpenAI ``include_usage``).

    Its ``astream_chat`` iterates its own ``stream_chat``: two LlamaIndex
    spans and two end events for one request.
    """

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="gpt-4o-mini")

    @completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="A short answer.", raw={"usage": USAGE})

    @completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text="A short", delta="A short")
            yield CompletionResponse(text="A short answer.", delta=" answer.", raw={"usage": USAGE})

        return gen()


class FloorHandler(BaseEventHandler):
    """The least any meter can do: one priced span per call, straight into the ledger.

    Reads the usage the provider put in ``raw`` and calls ``meter.record_llm``
    (no adapter, no tree, no stream or fold accounting): the core's own floor
    in situ, beside which the adapter's overhead and TokenCountingHandler's are read.
    """

    meter: Any = None

    @classmethod
    def class_name(cls) -> str:
        return "FloorHandler"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if event.__class__ is LLMChatEndEvent:
            raw = event.response.raw["usage"]
            usage = Usage(input_tokens=raw["prompt_tokens"], output_tokens=raw["completion_tokens"])
            self.meter.record_llm("gpt-4o-mini", usage)


USAGE: dict[str, int] = {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128}
LOOP = asyncio.new_event_loop()


def astream(llm: Any) -> None:
    async def consume() -> None:
        async for _ in await llm.astream_chat(MESSAGES):
            pass

    LOOP.run_until_complete(consume())


def timed(fn: Callable[[], Any], n: int) -> list[int]:
    out: list[int] = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return out


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = 10
    per_round = max(iterations // rounds, 1)
    # LLMs without handlers are built first: a CallbackManager([]) built while
    # Settings.callback_manager is set silently inherits its handlers.
    Settings.callback_manager = CallbackManager([])
    plain = {
        "MockLLM.complete": MockLLM(),
        "MockLLM.chat (via complete)": MockLLM(),
        "usage-reporting LLM .chat": UsageLLM(),
        "usage-reporting CustomLLM .astream_chat": UsageStreamLLM(),
    }
    counter = TokenCountingHandler()
    Settings.callback_manager = CallbackManager([counter])  # the legacy way to attach it
    counted = {
        "MockLLM.complete": MockLLM(callback_manager=Settings.callback_manager),
        "MockLLM.chat (via complete)": MockLLM(callback_manager=Settings.callback_manager),
        "usage-reporting LLM .chat": UsageLLM(callback_manager=Settings.callback_manager),
        "usage-reporting CustomLLM .astream_chat": UsageStreamLLM(
            callback_manager=Settings.callback_manager
        ),
    }
    calls: dict[str, Callable[[Any], Any]] = {
        "MockLLM.complete": lambda llm: llm.complete(PROMPT),
        "MockLLM.chat (via complete)": lambda llm: llm.chat(MESSAGES),
        "usage-reporting LLM .chat": lambda llm: llm.chat(MESSAGES),
        "usage-reporting CustomLLM .astream_chat": astream,
    }
    assert not plain["MockLLM.complete"].callback_manager.handlers
    llms = {k: (plain[k], counted[k], calls[k]) for k in calls}
    meter = Meter(ledger="memory")
    # The same meter with ledger.record stubbed out: separates the adapter's own
    # cost from the core's (span bookkeeping, pricing, the ledger queue).
    bare = Meter(ledger="memory")
    bare.ledger.record = lambda span: None  # type: ignore[method-assign]
    floor = FloorHandler()
    floor.meter = Meter(ledger="memory")
    dispatcher = get_dispatcher()
    floor_row: tuple[float, float] | None = None
    rows: list[tuple[str, float, float, float, float, float]] = []
    for label, (plain, counted, call) in llms.items():
        samples: dict[str, list[int]] = {
            "none": [],
            "faremeter": [],
            "bare": [],
            "tch": [],
            "floor": [],
        }
        with_floor = label == "usage-reporting LLM .chat"

        def run_plain(call: Callable[[Any], Any] = call, llm: Any = plain) -> None:
            call(llm)

        def run_counted(call: Callable[[Any], Any] = call, llm: Any = counted) -> None:
            call(llm)

        for fn in (run_plain, run_counted):  # warm up
            for _ in range(200):
                fn()
        for m in (meter, bare):
            with instrument(m):
                for _ in range(200):
                    run_plain()
        counter.reset_counts()
        for _ in range(rounds):
            gc.collect()
            samples["none"] += timed(run_plain, per_round)
            with instrument(meter):
                samples["faremeter"] += timed(run_plain, per_round)
            with instrument(bare):
                samples["bare"] += timed(run_plain, per_round)
            samples["tch"] += timed(run_counted, per_round)
            if with_floor:
                dispatcher.add_event_handler(floor)
                samples["floor"] += timed(run_plain, per_round)
                dispatcher.event_handlers.remove(floor)
            assert len(counter.llm_token_counts) >= per_round
            counter.reset_counts()
        med = {k: statistics.median(v) / 1000 for k, v in samples.items() if v}
        fm, tch = med["faremeter"] - med["none"], med["tch"] - med["none"]
        if with_floor:
            floor_row = (med["floor"] - med["none"], tch)
        rows.append((label, med["none"], fm, med["bare"] - med["none"], tch, fm / tch))

    print(f"llama-index-core, {iterations:,} calls per configuration, median µs per call\n")
    print(
        "| call | no handler | faremeter overhead | (of which adapter, ledger stubbed) "
        "| TokenCountingHandler overhead | faremeter / TCH |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, base, fm, bare, tch, ratio in rows:
        print(f"| {label} | {base:.1f} | {fm:.1f} | {bare:.1f} | {tch:.1f} | {ratio:.2f}× |")
        if label == "usage-reporting LLM .chat":  # read by run_all.py (targets table)
            report_summary("llamaindex_vs_tch", ratio, note=f"{fm:.1f} vs {tch:.1f} µs")
    if floor_row is not None:
        cost, tch = floor_row
        print(
            f"\nCore floor in situ, usage-reporting .chat: one `meter.record_llm` per call "
            f"from a bare event handler (no adapter) costs {cost:.1f} µs = {cost / tch:.2f}× "
            f"TokenCountingHandler's {tch:.1f} µs."
        )


if __name__ == "__main__":
    main()
