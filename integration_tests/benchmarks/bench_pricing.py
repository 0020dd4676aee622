"""Pricing one call: faremeter vs litellm.cost_per_token vs genai_prices.calc_price.

    uv run python integration_tests/benchmarks/bench_pricing.py

Same usage, same models, one process, warm caches (each library's lookup of a
model it has seen before). Prints each library's answer so a speed-up can't
hide a wrong number, then the median time per call and the ratios, plus the
wall-clock time of ``import faremeter`` in a fresh interpreter. Output is
markdown, ready for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

import genai_prices
import litellm
from _summary import report_summary
from genai_prices import types as gp_types
from litellm.types.utils import PromptTokensDetailsWrapper
from litellm.types.utils import Usage as LiteLLMUsage

from faremeter.pricing import PriceCatalog
from faremeter.usage import Usage

# (label, faremeter name, litellm name, genai-prices model, genai-prices provider)
MODELS = [
    ("gpt-4o", "gpt-4o", "gpt-4o", "gpt-4o", "openai"),
    (
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "anthropic",
    ),
    (
        "gemini-2.5-flash",
        "gemini/gemini-2.5-flash",
        "gemini/gemini-2.5-flash",
        "gemini-2.5-flash",
        "google",
    ),
]
INPUT, OUTPUT, CACHED = 38_800, 3_200, 10_000
REPEATS, NUMBER = 7, 2_000
SIZES = {"repeats": REPEATS, "number": NUMBER}  # --quick makes them smaller


def median_us(fn: Callable[[], object], number: int | None = None) -> float:
    number = number or SIZES["number"]
    fn()  # warm
    runs = timeit.repeat(fn, number=number, repeat=SIZES["repeats"])
    return statistics.median(runs) / number * 1e6


def import_time_ms(module: str, runs: int = 7) -> tuple[float, float]:
    """(median wall ms of `python -c 'import m'`, median self-reported -X importtime ms)."""
    walls: list[float] = []
    own: list[float] = []
    for _ in range(runs):
        start = timeit.default_timer()
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        )
        walls.append((timeit.default_timer() - start) * 1e3)
        for line in proc.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
            if match and match.group(2) == module:
                own.append(int(match.group(1)) / 1e3)
    return statistics.median(walls), statistics.median(own) if own else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a smoke run")
    quick = parser.parse_args().quick
    if quick:
        SIZES.update(repeats=3, number=500)
    catalog = PriceCatalog.default()
    usage = Usage(input_tokens=INPUT, output_tokens=OUTPUT, cache_read_tokens=CACHED)
    ll_usage = LiteLLMUsage(
        prompt_tokens=INPUT,
        completion_tokens=OUTPUT,
        total_tokens=INPUT + OUTPUT,
        prompt_tokens_details=PromptTokensDetailsWrapper(cached_tokens=CACHED),
    )
    gp_usage = gp_types.Usage(input_tokens=INPUT, output_tokens=OUTPUT, cache_read_tokens=CACHED)

    print("## Pricing one call\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()}, {platform.system()}."
        f" Date: {datetime.now(UTC).date().isoformat()}."
        f" litellm {litellm.__version__ if hasattr(litellm, '__version__') else _ver('litellm')},"
        f" genai-prices {_ver('genai-prices')}, faremeter snapshot {catalog.price_version}.\n"
    )
    print("Command: `uv run python integration_tests/benchmarks/bench_pricing.py`\n")
    print(
        f"Usage: {INPUT:,} input tokens ({CACHED:,} of them cache reads), {OUTPUT:,} output tokens."
        f" Median of {SIZES['repeats']} runs x {SIZES['number']:,} calls, warm"
        " (model seen before).\n"
    )
    print(
        "| model | faremeter $ | litellm $ | genai-prices $ | faremeter µs | litellm µs"
        " | genai-prices µs | litellm / faremeter | genai-prices / faremeter |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ratios_ll: list[float] = []
    ratios_gp: list[float] = []
    fm_all: list[float] = []
    ll_all: list[float] = []
    for label, fm_name, ll_name, gp_name, gp_provider in MODELS:
        fm_total = catalog.cost(fm_name, usage).total
        ll_total = sum(litellm.cost_per_token(model=ll_name, usage_object=ll_usage))
        gp_total = genai_prices.calc_price(gp_usage, gp_name, provider_id=gp_provider).total_price
        fm_us = median_us(lambda n=fm_name: catalog.cost(n, usage), number=SIZES["number"] * 20)
        ll_us = median_us(lambda n=ll_name: litellm.cost_per_token(model=n, usage_object=ll_usage))
        gp_us = median_us(
            lambda n=gp_name, p=gp_provider: genai_prices.calc_price(gp_usage, n, provider_id=p),
            number=SIZES["number"] // 4,
        )
        ratios_ll.append(ll_us / fm_us)
        fm_all.append(fm_us)
        ll_all.append(ll_us)
        ratios_gp.append(gp_us / fm_us)
        same = "" if abs(Decimal(repr(ll_total)) - (fm_total or 0)) < Decimal("1e-12") else " ≠"
        fm_shown = (fm_total or Decimal(0)).normalize()
        print(
            f"| {label} | {fm_shown:f} | {ll_total:.10g}{same} | {gp_total:f} | {fm_us:.2f}"
            f" | {ll_us:.1f} | {gp_us:.1f} | {ll_us / fm_us:.0f}× | {gp_us / fm_us:.0f}× |"
        )
    print()
    wall, own = import_time_ms("faremeter", runs=3 if quick else 7)
    ll_wall, _ = import_time_ms("litellm", runs=1 if quick else 3)
    base_wall, _ = import_time_ms("sys", runs=3 if quick else 7)
    print("| import (fresh interpreter) | wall ms (median) | `-X importtime` self+children ms |")
    print("|---|---|---|")
    print(f"| `python -c 'import sys'` (interpreter start) | {base_wall:.0f} | – |")
    print(f"| `import faremeter` | {wall:.0f} | {own:.1f} |")
    print(f"| `import litellm` | {ll_wall:.0f} | – |")
    first = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t=time.perf_counter();"
            "from faremeter.pricing import PriceCatalog; from faremeter.usage import Usage;"
            "PriceCatalog.default().cost('gpt-4o', Usage(input_tokens=1));"
            "print((time.perf_counter()-t)*1e3)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    print(
        f"\nFirst priced call in a fresh process (import + snapshot parse + model build):"
        f" {float(first.stdout):.0f} ms.\n"
    )
    print(
        f"faremeter is {min(ratios_ll):.0f}–{max(ratios_ll):.0f}× faster than"
        f" `litellm.cost_per_token` and {min(ratios_gp):.0f}–{max(ratios_gp):.0f}× faster than"
        " `genai_prices.calc_price` on the same inputs."
    )
    # One line per design target, read by run_all.py (stripped from BENCHMARKS.md).
    report_summary(
        "pricing_us",
        max(fm_all),
        unit="µs",
        peer="litellm `cost_per_token`",
        peer_value=statistics.median(ll_all),
    )
    report_summary("import_ms", wall, unit="ms", peer="`import litellm`", peer_value=ll_wall)


def _ver(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
