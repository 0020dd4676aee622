"""Fit faremeter's complexity score on RouteLLM's public judgements; report held-out numbers.

    uv run python scripts/train_complexity.py [--data DIR] [--out PATH] [--check]

Data: ``gsm8k.csv`` and ``mmlu.csv`` from RouteLLM (Apache-2.0; weak model
Mixtral-8x7B-Instruct, strong model GPT-4-1106-preview), default
``../shared/data/routellm`` beside the repository.

Split (documented, deterministic): ``faremeter.routing.evaluate.split_of`` —
the first byte of SHA-256(prompt) decides, even = train, odd = held out. Only
the train half is used for fitting *and* for choosing hyperparameters (5-fold
cross-validation inside it, folds by the second hash byte). The held-out half
is scored once, at the end, and that is the table printed for BENCHMARKS.md.

Model: the label is ``strong_correct - weak_correct`` (1: the strong model is
needed, -1: it hurts, 0: no difference). Each word's weight is the smoothed
mean of that label, centred, over the training prompts that contain it
(``sum(label - mean) / (count + k)``: a naive additive model, robust on a few
thousand prompts where a fitted regression overfits); a prompt's raw score is
the sum of its words' weights plus ``a * log(1 + words)``. Multiple-choice
prompts and free-form ones get their own word tables, because the words that
make a question hard differ between the two: the free-form table is fit on
GSM8K's train half, the multiple-choice one on MMLU's; at run time the style
detector (lettered options near the end of the text) picks the table. ``k`` and
``a`` are picked per style by cross-validated APGR. numpy is used here only;
the runtime scorer is pure Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faremeter.routing.evaluate import (
    Judgement,
    evaluate_scores,
    length_baseline,
    load_judgements,
    random_baseline,
    split_of,
)
from faremeter.routing.scoring import FEATURE_NAMES, extract_features

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "routellm"
DEFAULT_OUT = ROOT / "shared_core" / "src" / "faremeter" / "data" / "complexity_model.json"
PUBLISHED_CPT50 = {"gsm8k": 33.6, "mmlu": 35.4}
K_GRID = (10, 30, 100)
A_GRID = (0.0, 0.05, 0.1, 0.2)
MIN_DF = 3
FOLDS = 5
LOG_WORDS = FEATURE_NAMES.index("log_words")


class Row:
    __slots__ = ("choice", "dataset", "judgement", "label", "log_words", "words")

    def __init__(self, dataset: str, j: Judgement) -> None:
        mc, numeric, words = extract_features(j.prompt)
        self.dataset = dataset
        self.judgement = j
        self.choice = mc
        self.words = words
        self.log_words = numeric[LOG_WORDS]
        self.label = int(j.strong_correct) - int(j.weak_correct)


def fold_of(prompt: str) -> int:
    return hashlib.sha256(prompt.encode("utf-8")).digest()[1] % FOLDS


def word_weights(rows: Sequence[Row], k: float) -> dict[bytes, float]:
    mean = sum(r.label for r in rows) / len(rows)
    total: dict[bytes, float] = defaultdict(float)
    count: dict[bytes, int] = defaultdict(int)
    for r in rows:
        for w in set(r.words):
            total[w] += r.label - mean
            count[w] += 1
    return {w: total[w] / (count[w] + k) for w in total if count[w] >= MIN_DF}


def raw_score(r: Row, weights: dict[bytes, float], a: float) -> float:
    return sum(weights.get(w, 0.0) for w in r.words) + a * r.log_words


def cv_apgr(rows: Sequence[Row], k: float, a: float) -> tuple[float, float]:
    """Mean APGR and CPT(50%) over the folds of the train half, per dataset then averaged."""
    apgrs: list[float] = []
    cpts: list[float] = []
    for f in range(FOLDS):
        fit = [r for r in rows if fold_of(r.judgement.prompt) != f]
        weights = word_weights(fit, k)
        for ds in sorted({r.dataset for r in rows}):
            val = [r for r in rows if fold_of(r.judgement.prompt) == f and r.dataset == ds]
            if len(val) < 50:  # too few to measure anything
                continue
            m = evaluate_scores("cv", [raw_score(r, weights, a) for r in val],
                                [r.judgement for r in val])  # fmt: skip
            apgrs.append(m.apgr)
            cpts.append(m.cpt_50)
    return float(np.mean(apgrs)), float(np.mean(cpts))


def bootstrap(
    held: Sequence[Judgement], scores: Sequence[float], n: int = 200
) -> tuple[float, float, float, float]:
    """95% percentile intervals of APGR and CPT(50%) under resampling of the prompts."""
    rng = np.random.default_rng(0)
    apgrs: list[float] = []
    cpts: list[float] = []
    for _ in range(n):
        idx: list[int] = [int(i) for i in rng.integers(0, len(held), len(held))]
        m = evaluate_scores("b", [scores[i] for i in idx], [held[i] for i in idx])
        apgrs.append(m.apgr)
        cpts.append(m.cpt_50)
    lo, hi = 2.5, 97.5
    return (float(np.percentile(apgrs, lo)), float(np.percentile(apgrs, hi)),
            float(np.percentile(cpts, lo)), float(np.percentile(cpts, hi)))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true",
                        help="do not write the model; fail if it differs from --out")  # fmt: skip
    args = parser.parse_args(argv)

    rows: list[Row] = []
    for ds in ("gsm8k", "mmlu"):
        rows.extend(Row(ds, j) for j in load_judgements(args.data / f"{ds}.csv"))
    train = [r for r in rows if split_of(r.judgement.prompt) == "train"]
    print(f"{len(rows):,} prompts; train half {len(train):,}, held-out half "
          f"{len(rows) - len(train):,}")  # fmt: skip

    styles: dict[str, dict[str, object]] = {}
    # Free-form weights are fit on GSM8K, multiple-choice weights on MMLU; at run
    # time the style detector (lettered options or not) picks the table.
    for style, source in (("free", "gsm8k"), ("choice", "mmlu")):
        part = [r for r in train if r.dataset == source]
        best: tuple[float, float, float, float] | None = None
        for k in K_GRID:
            for a in A_GRID:
                apgr, cpt = cv_apgr(part, k, a)
                print(f"  cv {style:6s} k={k:<4} a={a:<5} APGR {apgr:.4f}  CPT(50%) {cpt:.2f}%")
                if best is None or apgr > best[0]:
                    best = (apgr, cpt, k, a)
        assert best is not None
        _, _, k, a = best
        weights = word_weights(part, k)
        raws = [raw_score(r, weights, a) for r in part]
        styles[style] = {"k": k, "a": a, "weights": weights, "median": float(np.median(raws)),
                         "spread": float(np.std(raws)) or 1.0}  # fmt: skip
        print(f"  chosen for {style}: k={k}, a={a} ({len(part):,} train prompts, "
              f"{len(weights):,} words)")  # fmt: skip

    # Centre each style on its train median so that 0.5 is a comparable midpoint.
    free, choice = styles["free"], styles["choice"]
    spread = max(float(free["spread"]), float(choice["spread"]))  # type: ignore[arg-type]
    numeric_free = [0.0] * len(FEATURE_NAMES)
    numeric_free[LOG_WORDS] = float(free["a"])  # type: ignore[arg-type]
    numeric_choice = [0.0] * len(FEATURE_NAMES)
    numeric_choice[LOG_WORDS] = float(choice["a"])  # type: ignore[arg-type]

    def table(ws: dict[bytes, float]) -> dict[str, float]:
        return {w.decode("ascii"): round(v, 4) for w, v in sorted(ws.items()) if round(v, 4)}

    model = {
        "about": "faremeter complexity score; fit by scripts/train_complexity.py on the train "
        "half (SHA-256(prompt)[0] even) of RouteLLM's GSM8K and MMLU judgements (Apache-2.0).",
        "features": list(FEATURE_NAMES),
        "bias": round(-float(free["median"]), 6),  # type: ignore[arg-type]
        "bias_choice": round(float(free["median"]) - float(choice["median"]), 6),  # type: ignore[arg-type]
        "numeric_free": numeric_free,
        "numeric_choice": numeric_choice,
        "words_free": table(free["weights"]),  # type: ignore[arg-type]
        "words_choice": table(choice["weights"]),  # type: ignore[arg-type]
        "scale": round(2.0 / spread, 6),
        "shift": 0.0,
    }
    text = json.dumps(model, separators=(",", ":"), sort_keys=False) + "\n"
    if args.check:
        if args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} differs from what this script produces", file=sys.stderr)
            return 1
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} ({len(text.encode()) / 1024:.0f} KiB)")

    # Held-out report, with the shipped (rounded) model through the runtime scorer.
    from faremeter.routing.scoring import ComplexityModel

    shipped = ComplexityModel.from_json(json.loads(text))
    intervals: dict[str, tuple[float, float, float, float]] = {}
    print("\nHeld-out half (never used for fitting or for choosing k and a):\n")
    print("| set | prompts | router | APGR | CPT(50%) |")
    print("|---|---|---|---|---|")
    for ds in ("gsm8k", "mmlu"):
        held = [r.judgement for r in rows if r.dataset == ds
                and split_of(r.judgement.prompt) == "heldout"]  # fmt: skip
        results = [
            evaluate_scores("faremeter complexity", [shipped.score(j.prompt) for j in held], held),
            length_baseline(held),
            random_baseline(held),
        ]
        for m in results:
            print(f"| {ds} | {len(held):,} | {m.name} | {m.apgr:.3f} | {m.cpt_50:.1f}% |")
        print(f"| {ds} | | RouteLLM best published | | {PUBLISHED_CPT50[ds]:.1f}% |")
        intervals[ds] = bootstrap(held, [shipped.score(j.prompt) for j in held])
    print("\nBootstrap (200 resamples of the held-out prompts, seed 0), 95% intervals:")
    for ds, (apgr_lo, apgr_hi, cpt_lo, cpt_hi) in intervals.items():
        print(f"  {ds}: APGR {apgr_lo:.3f}-{apgr_hi:.3f}, CPT(50%) {cpt_lo:.1f}%-{cpt_hi:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
