"""Route decision: faremeter's Router vs LiteLLM's complexity_router classification.

    uv run python integration_tests/benchmarks/bench_router.py

20 real candidates from the bundled catalog in 4 tiers, 30 rules, 2,000-
character prompts (the design target: route decision median <= 20 us). Measured:

* ``route`` with a rule that matches late (rule 28 of 30);
* ``route`` with no rule matching (all 30 scanned, capabilities + window
  filtered, cheapest picked, Decimal estimate) — complexity given precomputed;
* ``route`` with faremeter's local complexity scorer, when it is installed;
* LiteLLM's ``ComplexityRouter.classify`` (rule-based, local) on the same
  prompts: only a tier, no candidate filtering, pricing or decision record.

Median of repeated runs, one process, warm. Output is markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from unittest.mock import MagicMock

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

from _summary import report_summary

from faremeter.pricing import PriceCatalog
from faremeter.routing import Router, RouteRequest, RouteRule

REPEATS, NUMBER = 7, 2_000
SIZES = {"repeats": REPEATS, "number": NUMBER}  # --quick makes them smaller

TIERS: dict[str, list[str]] = {
    "economy": [
        "gpt-4o-mini",
        "gpt-4.1-nano",
        "gpt-4.1-mini",
        "claude-3-5-haiku-20241022",
        "gemini/gemini-2.5-flash-lite",
    ],
    "standard": [
        "gpt-4o",
        "gpt-4.1",
        "claude-sonnet-4-5",
        "gemini/gemini-2.5-flash",
        "mistral/mistral-large-latest",
    ],
    "premium": [
        "o3",
        "o1",
        "claude-opus-4-5",
        "gemini/gemini-2.5-pro",
        "gpt-5",
    ],
    "frontier": [
        "o3-pro",
        "gpt-4-turbo",
        "gpt-4.5-preview",
        "o1-pro",
        "gpt-5-pro",
    ],
}

PROMPTS = [
    ("Summarize the following meeting notes into three bullet points for the team. " * 30)[:2_000],
    (
        "Write a Python function that parses a CSV file, validates each row against a "
        "schema, and explain step by step why the algorithm is O(n log n). " * 20
    )[:2_000],
    ("What is the capital of France? Answer in one word please. " * 40)[:2_000],
    (
        "Analyze the trade-offs between eventual consistency and linearizability in a "
        "distributed database, first the theory, then a concrete design. " * 20
    )[:2_000],
]


def available(catalog: PriceCatalog) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tier, models in TIERS.items():
        out[tier] = [m for m in models if m in catalog]
    return out


def rules(tiers: dict[str, list[str]]) -> list[RouteRule]:
    names = list(tiers)
    out: list[RouteRule] = []
    for i in range(30):
        tier = names[i % len(names)]
        if i % 3 == 0:
            out.append(RouteRule.of({"step": f"step-{i}"}, model=tiers[tier][0]))
        elif i % 3 == 1:
            out.append(RouteRule.of({"workflow": f"wf-{i}", "tags": [f"t{i}"]}, tier=tier))
        else:
            out.append(RouteRule.of({"team": f"team-{i}"}, tier=tier))
    return out


def median_us(fn: Callable[[], object]) -> float:
    fn()
    runs = timeit.repeat(fn, number=SIZES["number"], repeat=SIZES["repeats"])
    return statistics.median(runs) / SIZES["number"] * 1e6


def litellm_classifier() -> Callable[[str], Any] | None:
    try:
        from litellm.router_strategy.complexity_router.complexity_router import (
            ComplexityRouter,
        )
    except ImportError:
        return None
    router = ComplexityRouter(model_name="bench", litellm_router_instance=MagicMock())
    return router.classify


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a smoke run")
    if parser.parse_args().quick:
        SIZES.update(repeats=3, number=100)
    catalog = PriceCatalog.default()
    tiers = available(catalog)
    n_candidates = sum(len(v) for v in tiers.values())
    rule_list = rules(tiers)
    plain = Router(tiers, catalog=catalog, rules=rule_list, complexity=False)
    scored = Router(tiers, catalog=catalog, rules=rule_list, complexity=True)
    attrs_hit = {"step": "step-27", "workflow": "wf-x", "team": "t"}
    attrs_miss = {"step": "none", "workflow": "wf-x", "team": "t"}
    requests_hit = [
        RouteRequest(messages=p, attributes=attrs_hit, capabilities=frozenset({"tools"}))
        for p in PROMPTS
    ]
    requests_miss = [
        RouteRequest(
            messages=p, attributes=attrs_miss, capabilities=frozenset({"tools"}), complexity=0.5
        )
        for p in PROMPTS
    ]
    requests_scored = [
        RouteRequest(messages=p, attributes=attrs_miss, capabilities=frozenset({"tools"}))
        for p in PROMPTS
    ]
    for r in requests_hit[:1] + requests_miss[:1]:
        d = plain.route(r)
        print(f"<!-- sample: {d.model} / {d.tier} / ${d.estimated_cost} / {d.reason} -->")

    def per_prompt(fn: Callable[[Any], object], items: list[Any]) -> float:
        return statistics.median(median_us(lambda item=item: fn(item)) for item in items)

    hit = per_prompt(plain.route, requests_hit)
    miss = per_prompt(plain.route, requests_miss)
    scorer_note = ""
    try:
        scored.route(requests_scored[0])
        with_score = per_prompt(scored.route, requests_scored)
        if scored._scorer is None or scored._scorer_failed:  # pyright: ignore[reportPrivateUsage]
            with_score = None
            scorer_note = "scorer not available in this checkout"
    except Exception as exc:  # the scorer is built separately; report, don't fail
        with_score = None
        scorer_note = f"scorer failed: {type(exc).__name__}"
    classify = litellm_classifier()
    lite = per_prompt(classify, PROMPTS) if classify is not None else None

    print(f"## Router decision ({datetime.now(UTC):%Y-%m-%d}, {platform.python_version()})\n")
    print(
        f"{n_candidates} candidates in {len(tiers)} tiers, {len(rule_list)} rules, "
        f"{len(PROMPTS[0])}-character prompts, `tools` required; median µs per decision "
        f"(median over {len(PROMPTS)} prompts).\n"
    )
    print("| what | median µs | LiteLLM classify / this |")
    print("|---|---:|---:|")
    rows: list[tuple[str, float | None]] = [
        ("faremeter `route` (rule 28 of 30 matches)", hit),
        ("faremeter `route` (no rule, complexity given)", miss),
        ("faremeter `route` + local complexity scorer", with_score),
    ]
    for label, value in rows:
        if value is None:
            print(f"| {label} | n/a ({scorer_note}) | |")
            continue
        ratio = f"{lite / value:.1f}x" if lite is not None else "n/a"
        print(f"| {label} | {value:.1f} | {ratio} |")
    if lite is not None:
        print(f"| LiteLLM `ComplexityRouter.classify` (tier only) | {lite:.1f} | 1.0x |")
    else:
        print("| LiteLLM `ComplexityRouter.classify` | n/a (not installed) | |")
    # Read by run_all.py for the targets table (stripped from BENCHMARKS.md).
    report_summary(
        "router_us", max(hit, miss), unit="µs", peer="LiteLLM `classify`", peer_value=lite
    )


if __name__ == "__main__":
    main()
