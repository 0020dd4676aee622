"""``faremeter eval-router FILE.csv``: how well the complexity score routes, RouteLLM-style.

Prints APGR and CPT(50%) of faremeter's complexity score beside a random router
and prompt length on a file of per-prompt judgements (RouteLLM's layout:
``prompt, weak_correct, strong_correct``), so the score's published numbers can
be reproduced, and checked on one's own judgements.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run"]

# CPT(50%) of RouteLLM's best published routers, for the files it ships.
_PUBLISHED_CPT50 = {"gsm8k": 33.6, "mmlu": 35.4}


def register(sub: Any) -> None:
    """Add the subcommand to the CLI."""
    p: argparse.ArgumentParser = sub.add_parser(
        "eval-router",
        help="APGR and CPT(50%%) of the complexity score on judgements (RouteLLM layout)",
        description="Route each prompt to the strong model when its score is above a "
        "threshold swept over the score's deciles (as RouteLLM's evaluate.py does) and "
        "print APGR and CPT(50%%) for faremeter's complexity score, a random router and "
        "prompt length.",
    )
    p.add_argument("file", metavar="FILE.csv",
                   help="CSV with columns prompt, weak_correct, strong_correct")  # fmt: skip
    p.add_argument(
        "--split",
        choices=("heldout", "all", "train"),
        default="heldout",
        help="which prompts to score: the half the model never saw (default), all, or the "
        "half it was fit on",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _row(m: Any) -> dict[str, Any]:
    return {
        "router": m.name,
        "prompts": m.prompts,
        "apgr": round(m.apgr, 4),
        "cpt20": round(m.cpt_20, 2),
        "cpt50": round(m.cpt_50, 2),
        "cpt80": round(m.cpt_80, 2),
    }


def run(args: argparse.Namespace) -> int:
    """Evaluate and print; exit 2 when the file is unusable."""
    from pathlib import Path

    from faremeter.routing.evaluate import evaluate_routers, load_judgements, split_of

    judgements = load_judgements(args.file)
    if args.split != "all":
        judgements = [j for j in judgements if split_of(j.prompt) == args.split]
    if not judgements:
        raise ValueError(f"{args.file}: no prompts in the {args.split!r} split")
    results = evaluate_routers(judgements)
    published = _PUBLISHED_CPT50.get(Path(args.file).stem.lower())
    weak, strong = results[0].weak_accuracy, results[0].strong_accuracy

    if args.json:
        print(json.dumps({
            "file": str(args.file), "split": args.split, "prompts": len(judgements),
            "weak_accuracy": round(weak, 2), "strong_accuracy": round(strong, 2),
            "routers": [_row(m) for m in results],
            "routellm_published_cpt50": published,
        }, indent=2))  # fmt: skip
        return 0

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{Path(args.file).name}: {len(judgements):,} prompts ({args.split}); "
        f"weak {weak:.1f}% / strong {strong:.1f}% correct"
    )
    for col in ("router", "APGR", "CPT(20%)", "CPT(50%)", "CPT(80%)"):
        table.add_column(col, justify="left" if col == "router" else "right")
    for m in results:
        table.add_row(m.name, f"{m.apgr:.3f}", f"{m.cpt_20:.1f}%", f"{m.cpt_50:.1f}%",
                      f"{m.cpt_80:.1f}%")  # fmt: skip
    if published is not None:
        table.add_row("RouteLLM best published", "", "", f"{published:.1f}%", "",
                      style="dim")  # fmt: skip
    Console().print(table)
    return 0
