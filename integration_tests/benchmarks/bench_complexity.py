"""The router's complexity score: time per 2,000-character request, and routing quality.

    uv run python integration_tests/benchmarks/bench_complexity.py [--no-quality]

Speed: ``faremeter.routing.scoring.complexity`` against LiteLLM's
``complexity_router`` local rule-based classifier (``ComplexityRouter.classify``,
no network), on the same 2,000-character prompts (built from RouteLLM's GSM8K
and MMLU prompts when ``../shared/data/routellm`` is present, else synthetic),
warm, median of 7 runs of the process's CPU time. Quality: both scores used as routers on RouteLLM's
held-out half (APGR and CPT(50%), computed as RouteLLM's ``evaluate.py``).
Output is markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

from faremeter.routing.evaluate import (
    evaluate_scores,
    length_baseline,
    load_judgements,
    random_baseline,
    split_of,
)
from faremeter.routing.scoring import complexity

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "routellm"
REPEATS = 7
CHARS = 2_000


def prompts_2000() -> list[tuple[str, str]]:
    """(label, text) pairs of exactly 2,000 characters."""
    out: list[tuple[str, str]] = []
    for name in ("gsm8k", "mmlu"):
        path = DATA / f"{name}.csv"
        if path.exists():
            js = load_judgements(path)
            for start in (0, 100, 200):
                text = "\n\n".join(j.prompt for j in js[start : start + 40])
                out.append((f"{name} #{start}", text[-CHARS:]))
    if not out:
        base = "Janet's ducks lay 16 eggs per day. She eats three for breakfast. "
        out = [("synthetic", (base * 40)[:CHARS])]
    return out


def median_us(fn: Callable[[], object], number: int) -> float:
    fn()
    # CPU time of this process: the machine these run on is shared, and wall time
    # moves with other processes' load far more than the CPU time of the loop does.
    runs = timeit.repeat(fn, number=number, repeat=REPEATS, timer=time.process_time)
    return statistics.median(runs) / number * 1e6


def litellm_classifier() -> Callable[[str], float] | None:
    try:
        from litellm.router import Router
        from litellm.router_strategy.complexity_router.complexity_router import (
            ComplexityRouter,
        )
    except ImportError as exc:  # pragma: no cover - litellm is a dev dependency
        print(f"(LiteLLM complexity_router unavailable: {exc})")
        return None
    router = Router(
        model_list=[
            {"model_name": "small", "litellm_params": {"model": "openai/gpt-4o-mini",
                                                       "api_key": "unused"}},
            {"model_name": "big", "litellm_params": {"model": "openai/gpt-4o",
                                                     "api_key": "unused"}},
        ]
    )  # fmt: skip
    cr = ComplexityRouter(
        model_name="smart",
        litellm_router_instance=router,
        complexity_router_config={
            "tiers": {"SIMPLE": "small", "MEDIUM": "small", "COMPLEX": "big", "REASONING": "big"}
        },
    )

    def score(text: str) -> float:
        _tier, value, _signals = cr.classify(text)
        return float(value)

    return score


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-quality", action="store_true", help="skip the APGR part")
    args = parser.parse_args()

    print(f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}; "
          f"load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    theirs = litellm_classifier()
    prompts = prompts_2000()

    print("| prompt (2,000 chars) | faremeter µs | as OpenAI messages µs | LiteLLM "
          "complexity_router µs | LiteLLM / faremeter |")  # fmt: skip
    print("|---|---|---|---|---|")
    ours_all: list[float] = []
    ratios: list[float] = []
    for label, text in prompts:
        msgs = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": text}]  # fmt: skip
        ours = median_us(lambda t=text: complexity(t), 5_000)
        ours_msgs = median_us(lambda m=msgs: complexity(m), 5_000)
        ours_all.append(ours)
        if theirs is not None:
            lit = median_us(lambda t=text: theirs(t), 20)
            ratios.append(lit / ours)
            print(f"| {label} | {ours:.2f} | {ours_msgs:.2f} | {lit:,.0f} | {lit / ours:,.0f}× |")
        else:
            print(f"| {label} | {ours:.2f} | {ours_msgs:.2f} | - | - |")
    print(f"\nfaremeter median over prompts: {statistics.median(ours_all):.2f} µs"
          + (f"; LiteLLM / faremeter median ratio {statistics.median(ratios):,.0f}×"
             if ratios else ""))  # fmt: skip

    if args.no_quality or not (DATA / "gsm8k.csv").exists():
        return 0
    print("\nRouting quality on the held-out half (RouteLLM evaluate.py metrics):\n")
    print("| set | router | APGR | CPT(50%) |")
    print("|---|---|---|---|")
    for name in ("gsm8k", "mmlu"):
        held = [j for j in load_judgements(DATA / f"{name}.csv")
                if split_of(j.prompt) == "heldout"]  # fmt: skip
        rows = [evaluate_scores("faremeter complexity", [complexity(j.prompt) for j in held],
                                held)]  # fmt: skip
        if theirs is not None:
            t0 = time.perf_counter()
            rows.append(evaluate_scores("LiteLLM complexity_router score",
                                        [theirs(j.prompt) for j in held], held))  # fmt: skip
            print(f"(LiteLLM scored {len(held):,} prompts in {time.perf_counter() - t0:.1f} s)",
                  file=sys.stderr)  # fmt: skip
        rows += [length_baseline(held), random_baseline(held)]
        for m in rows:
            print(f"| {name} | {m.name} | {m.apgr:.3f} | {m.cpt_50:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
