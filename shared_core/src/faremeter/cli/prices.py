"""`faremeter prices <model>`: what a model costs, as faremeter will charge it."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any

__all__ = ["register", "run"]

_RATE_ROWS = (
    ("input", "Input"),
    ("cache_read", "Cache read"),
    ("cache_write", "Cache write (5 min)"),
    ("cache_write_1h", "Cache write (1 h)"),
    ("output", "Output"),
    ("reasoning", "Reasoning"),
)


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "prices",
        help="show what a model costs per 1M tokens",
        description="Show the resolved id, provider, every rate per 1M tokens, long-context"
        " tiers, batch rates, context window and the price table version of a model.",
    )
    p.add_argument("model", help="model name, e.g. gpt-4o, openai/gpt-4o, claude-sonnet-4-5")
    p.add_argument("--config", metavar="FILE", help="faremeter.toml with price overrides")
    p.set_defaults(func=run)


def _money(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return f"${text}"


def run(args: argparse.Namespace) -> int:
    """Print the price table of one model; exit 2 when it is unknown."""
    from rich.console import Console
    from rich.table import Table

    from faremeter.errors import UnknownModelError
    from faremeter.pricing import PriceCatalog

    console = Console()
    catalog = PriceCatalog.default()
    if args.config:
        from faremeter.config import load_config

        catalog = PriceCatalog.from_config(load_config(args.config))
    try:
        model_id = catalog.resolve(args.model)
        price = catalog.get(args.model)
    except UnknownModelError as exc:
        print(f"faremeter: unknown model {args.model!r}", file=sys.stderr)
        if exc.suggestions:
            print("did you mean:", file=sys.stderr)
            for suggestion in exc.suggestions:
                print(f"  {suggestion}", file=sys.stderr)
        return 2

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Model", model_id + ("" if model_id == args.model else f"  (from {args.model!r})"))
    head.add_row("Provider", price.provider or "-")
    head.add_row("Mode", price.mode or "-")
    window = f"{price.max_input_tokens:,}" if price.max_input_tokens else "unknown"
    head.add_row("Context window", f"{window} input tokens")
    if price.max_output_tokens:
        head.add_row("Max output", f"{price.max_output_tokens:,} tokens")
    if price.capabilities:
        head.add_row("Capabilities", ", ".join(sorted(price.capabilities)))
    if price.effective_from:
        head.add_row("Effective from", price.effective_from.isoformat())
    head.add_row("Price table", f"{price.version}  (catalog {catalog.price_version})")
    console.print(head)

    rates = Table(title="USD per 1M tokens", title_justify="left")
    rates.add_column("Rate")
    rates.add_column("Standard", justify="right")
    rates.add_column("Batch", justify="right")
    standard = price.rates_for(0)
    batch = price.rates_for(0, batch=True)
    for key, label in _RATE_ROWS:
        rates.add_row(label, _money(standard[key]), _money(batch[key]))
    console.print(rates)

    if price.tiers:
        tiers = Table(
            title="Long-context tiers (the whole request is repriced)", title_justify="left"
        )
        tiers.add_column("Prompt tokens")
        for _, label in _RATE_ROWS:
            tiers.add_column(label, justify="right")
        for tier in price.tiers:
            tier_rates = price.rates_for(tier.above_tokens + 1)
            op = ">=" if tier.inclusive else ">"
            tiers.add_row(
                f"{op} {tier.above_tokens:,}", *(_money(tier_rates[k]) for k, _ in _RATE_ROWS)
            )
        console.print(tiers)
    return 0
