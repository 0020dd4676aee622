"""Generate faremeter's bundled price snapshot from LiteLLM's price map.

Run where litellm is installed (the faremeter runtime never imports it):

    uv run python scripts/generate_price_snapshot.py [--date YYYY-MM-DD] [--out PATH]

Reads ``litellm/model_prices_and_context_window_backup.json`` from the installed
litellm package (located with ``importlib.util.find_spec`` so litellm's slow
``__init__`` never runs) and writes ``shared_core/src/faremeter/data/prices.json``
in faremeter's compact schema:

    {"source": {"name": "litellm", "version": "1.106.2", "file": "..."},
     "generated": "2026-11-23", "count": N,
     "models": {"gpt-4o": {"provider": "openai", "mode": "chat",
                           "input": "0.0000025", "output": "0.00001", ...}}}

Rates are USD per token as decimal strings made with ``Decimal(repr(float))``
so the snapshot holds exactly the number the price-map author wrote. Absent
rates mean "inherit" and are resolved by faremeter at load time exactly as
LiteLLM resolves them (cache read/write -> input, 1 h write -> 5 min write,
reasoning -> output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "shared_core" / "src" / "faremeter" / "data" / "prices.json"
SOURCE_FILE = "model_prices_and_context_window_backup.json"

# LiteLLM key -> faremeter key for the flat per-token rates.
RATE_KEYS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "output_cost_per_reasoning_token": "reasoning",
    "input_cost_per_audio_token": "input_audio",
    "output_cost_per_audio_token": "output_audio",
}
BATCH_KEYS = {
    "input_cost_per_token_batches": "input",
    "output_cost_per_token_batches": "output",
    "cache_read_input_token_cost_batches": "cache_read",
    "cache_creation_input_token_cost_batches": "cache_write",
}
# `<prefix>_above_<N>[k]_tokens[_batches]`; service-tier suffixed keys
# (_priority, _flex, ...) are not standard pricing and are skipped.
TIER_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)"
    r"_above_(\d+)(k?)_tokens(_batches)?$"
)
TIER_RATE = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
}
CAPABILITIES = {
    "supports_function_calling": "function_calling",
    "supports_parallel_function_calling": "parallel_function_calling",
    "supports_tool_choice": "tool_choice",
    "supports_vision": "vision",
    "supports_response_schema": "response_schema",
    "supports_reasoning": "reasoning",
    "supports_prompt_caching": "prompt_caching",
    "supports_pdf_input": "pdf_input",
    "supports_audio_input": "audio_input",
    "supports_audio_output": "audio_output",
    "supports_web_search": "web_search",
    "supports_system_messages": "system_messages",
}
# LiteLLM bills xAI's higher tier once the prompt *reaches* the threshold (>=).
INCLUSIVE_THRESHOLD_PROVIDERS = frozenset({"xai"})
# LiteLLM applies this when a Fireworks model publishes no cache-read rate
# (litellm.constants.FIREWORKS_AI_DEFAULT_CACHE_READ_RATE_RATIO).
FIREWORKS_CACHE_READ_RATIO = 0.5


def rate(value: Any) -> str | None:
    """A per-token rate as an exact decimal string, or None when not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        text = str(Decimal(repr(float(value))))
    elif isinstance(value, str):
        try:
            text = str(Decimal(repr(float(value))))
        except ValueError:
            return None
    else:
        return None
    d = Decimal(text)
    if not d.is_finite() or d < 0:
        return None
    return format(d.normalize(), "f") if d else "0"


def litellm_price_file() -> tuple[Path, str]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        raise SystemExit("litellm is not installed here; run with `uv run` in the workspace")
    path = Path(spec.origin).parent / SOURCE_FILE
    if not path.is_file():
        raise SystemExit(f"{path} not found in the installed litellm")
    return path, importlib.metadata.version("litellm")


def convert_tiered_table(entry: dict[str, Any], out: dict[str, Any]) -> bool:
    """Map a Dashscope-style ``tiered_pricing`` table onto base rates + thresholds.

    LiteLLM picks the tier with ``start < input <= end`` (the last tier above
    the highest range) and bills the whole request at it; that is the same as
    "base = first tier, reprice above each later tier's start (strict >)".
    Rates a tier omits fall back to the tier's input rate (cache read/write)
    or the model's output rate.
    """
    table = entry.get("tiered_pricing")
    if not isinstance(table, list) or not table:
        return False
    tiers = sorted(
        (t for t in table if isinstance(t, dict) and len(t.get("range") or []) == 2),
        key=lambda t: float(t["range"][0]),
    )
    tiers = [t for t in tiers if "input_cost_per_token" in t]
    if not tiers:
        return False
    model_output = rate(entry.get("output_cost_per_token")) or "0"
    has_reasoning = any("output_cost_per_reasoning_token" in t for t in tiers)

    def tier_rates(t: dict[str, Any]) -> dict[str, str]:
        r: dict[str, str] = {}
        r["input"] = rate(t["input_cost_per_token"]) or "0"
        r["output"] = rate(t.get("output_cost_per_token")) or model_output
        r["cache_read"] = rate(t.get("cache_read_input_token_cost")) or r["input"]
        r["cache_write"] = rate(t.get("cache_creation_input_token_cost")) or r["input"]
        # LiteLLM bills a tier's reasoning at the tier's reasoning rate, else
        # the tier's output rate: spell it out so no tier inherits another's.
        if has_reasoning:
            r["reasoning"] = rate(t.get("output_cost_per_reasoning_token")) or r["output"]
        return r

    out.update(tier_rates(tiers[0]))
    above: list[dict[str, Any]] = []
    for t in tiers[1:]:
        threshold = int(float(t["range"][0]))
        above.append({"above": threshold, **tier_rates(t)})
    if above:
        out["tiers"] = above
    return True


def convert(entry: dict[str, Any]) -> dict[str, Any] | None:
    """One LiteLLM entry in faremeter's schema, or None when it has no token price."""
    out: dict[str, Any] = {}
    provider = entry.get("litellm_provider")
    if isinstance(provider, str):
        out["provider"] = provider
    mode = entry.get("mode")
    if isinstance(mode, str):
        out["mode"] = mode
    tiered = convert_tiered_table(entry, out)
    if not tiered:
        for src, dst in RATE_KEYS.items():
            value = rate(entry.get(src))
            if value is not None:
                out[dst] = value
        if "input" not in out and "output" not in out:
            return None
        # LiteLLM's generic path bills image-generation output at the image-token
        # rate when the model has no (or a zero) text output rate.
        if out.get("output", "0") == "0":
            image_rate = rate(entry.get("output_cost_per_image_token"))
            if image_rate is not None:
                out["output"] = image_rate
        out.setdefault("input", "0")
        out.setdefault("output", "0")
        if (
            provider == "fireworks_ai"
            and "cache_read" not in out
            and isinstance(entry.get("input_cost_per_token"), int | float)
        ):
            out["cache_read"] = rate(
                float(entry["input_cost_per_token"]) * FIREWORKS_CACHE_READ_RATIO
            )
        tiers: dict[tuple[int, bool], dict[str, Any]] = {}
        for key, value in entry.items():
            m = TIER_KEY.match(key)
            if m is None or rate(value) is None:
                continue
            threshold = int(m.group(2)) * (1000 if m.group(3) else 1)
            is_batch = m.group(4) is not None
            tier = tiers.setdefault((threshold, False), {"above": threshold})
            if is_batch:
                tier.setdefault("batch", {})[TIER_RATE[m.group(1)]] = rate(value)
            else:
                tier[TIER_RATE[m.group(1)]] = rate(value)
        if tiers:
            tier_list = [tiers[k] for k in sorted(tiers)]
            if provider in INCLUSIVE_THRESHOLD_PROVIDERS:
                for t in tier_list:
                    t["inclusive"] = True
            out["tiers"] = tier_list
    batch = {dst: v for src, dst in BATCH_KEYS.items() if (v := rate(entry.get(src))) is not None}
    if batch:
        out["batch"] = batch
    for key in ("max_input_tokens", "max_output_tokens"):
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            out[key] = int(value)
    caps = [name for src, name in CAPABILITIES.items() if entry.get(src) is True]
    if caps:
        out["capabilities"] = caps
    return out


def build(date: str) -> dict[str, Any]:
    path, version = litellm_price_file()
    raw = json.loads(path.read_text(encoding="utf-8"))
    models: dict[str, dict[str, Any]] = {}
    for key in sorted(raw):
        entry = raw[key]
        if key == "sample_spec" or not isinstance(entry, dict):
            continue
        converted = convert(entry)
        if converted is not None:
            models[key] = converted
    return {
        "source": {"name": "litellm", "version": version, "file": SOURCE_FILE},
        "generated": date,
        "count": len(models),
        "source_entries": sum(
            1 for k, v in raw.items() if k != "sample_spec" and isinstance(v, dict)
        ),
        "models": models,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", default=dt.datetime.now(dt.UTC).date().isoformat())
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    snapshot = build(args.date)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    models = snapshot.pop("models")
    header = json.dumps(snapshot, separators=(",", ":"), ensure_ascii=False)[:-1]
    # One model per line: compact, yet a diff of a price change stays readable.
    lines = [
        json.dumps(k, ensure_ascii=False) + ":" + json.dumps(v, separators=(",", ":"))
        for k, v in models.items()
    ]
    text = header + ',"models":{\n' + ",\n".join(lines) + "\n}}\n"
    json.loads(text)  # never ship a file that does not parse
    args.out.write_text(text, encoding="utf-8")
    snapshot["models"] = models
    print(
        f"wrote {snapshot['count']} priced models (of {snapshot['source_entries']} LiteLLM entries)"
        f" from litellm {snapshot['source']['version']} to {args.out}"
        f" ({args.out.stat().st_size / 1024:.0f} KiB)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
