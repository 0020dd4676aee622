"""Router quality on RouteLLM's public judgements: APGR and CPT, computed as RouteLLM does.

A router that sends a prompt to the strong model only when it is needed buys
most of the strong model's quality for a fraction of its calls. RouteLLM
measures that with per-prompt judgements (did the weak model answer correctly?
the strong one?) and a threshold sweep; publishing numbers that are comparable
with theirs requires the *same* sweep, so this module mirrors
``routellm/evals/benchmarks.py`` and ``routellm/evals/evaluate.py``:

- thresholds are the score's 11 decile edges (``pd.qcut(scores, 10,
  retbins=True)``, linear interpolation, duplicates kept); a prompt goes to the
  strong model when its score is ``>=`` the threshold, except for the last
  edge where it must be ``>`` (so the sweep runs from 100% to 0% strong calls);
- accuracy at each threshold is the share of prompts answered correctly by the
  model they were routed to (in percent);
- ``AUC`` is the trapezoid area under accuracy against the strong-call share;
  ``APGR = (AUC - weak_AUC) / (strong_AUC - weak_AUC)``;
- ``CPT(x%)`` interpolates (``np.interp``, reproduced bit for bit including its
  behaviour on a non-monotone curve) the strong-call share at which accuracy
  reaches ``weak + x * (strong - weak)``;
- the random router draws ``random.uniform(0, 1)`` per prompt, 10 times from
  ``random.seed(0)``, and averages accuracy per strong-call share.

Pure Python (no numpy/pandas) so that ``faremeter eval-router`` runs anywhere
faremeter is installed. Scores and accuracies are floats: these are statistics,
not money.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "CurvePoint",
    "Judgement",
    "RouterMetrics",
    "apgr",
    "cpt",
    "evaluate_routers",
    "evaluate_scores",
    "interp",
    "length_baseline",
    "load_judgements",
    "qcut_edges",
    "random_baseline",
    "routing_curve",
    "split_of",
    "trapezoid",
]

Split = Literal["train", "heldout"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Judgement:
    """One prompt and whether each model of the pair answered it correctly."""

    prompt: str
    weak_correct: bool
    strong_correct: bool
    subject: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CurvePoint:
    """One threshold of the sweep: the share of strong calls and the accuracy it gives."""

    threshold: float
    strong_percentage: float
    accuracy: float


@dataclass(frozen=True, kw_only=True, slots=True)
class RouterMetrics:
    """What RouteLLM's ``evaluate.py`` prints for one router on one benchmark.

    Percentages (``cpt_*``, accuracies) are in percent, like RouteLLM's tables.
    """

    name: str
    prompts: int
    weak_accuracy: float
    strong_accuracy: float
    auc: float
    apgr: float
    cpt_20: float
    cpt_50: float
    cpt_80: float
    curve: tuple[CurvePoint, ...]


def split_of(prompt: str) -> Split:
    """The documented, deterministic train/held-out split: a hash of the prompt text.

    The first byte of the SHA-256 of the UTF-8 prompt decides: even bytes train,
    odd bytes are held out. It does not depend on row order or on the file, so
    the same prompt is always on the same side and anyone can reproduce it.
    """
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return "heldout" if digest[0] & 1 else "train"


def _parse_bool(value: str, *, column: str, line: int) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes", "1.0"):
        return True
    if v in ("false", "0", "no", "0.0"):
        return False
    raise ValueError(f"line {line}: column {column!r} must be True or False, got {value!r}")


def load_judgements(path: str | Path) -> list[Judgement]:
    """Read a judgements CSV with columns ``prompt, weak_correct, strong_correct``.

    An optional ``subject`` column (MMLU) is kept. This is the layout of the
    RouteLLM files shipped beside the project (``gsm8k.csv``, ``mmlu.csv``).

    Raises:
        ValueError: a required column is missing or a correctness cell is not a boolean.
        OSError: the file cannot be read.
    """
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or ())
        missing = {"prompt", "weak_correct", "strong_correct"} - fields
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; expected "
                "prompt,weak_correct,strong_correct"
            )
        out: list[Judgement] = []
        for line, row in enumerate(reader, start=2):
            out.append(
                Judgement(
                    prompt=row["prompt"],
                    weak_correct=_parse_bool(row["weak_correct"], column="weak_correct", line=line),
                    strong_correct=_parse_bool(
                        row["strong_correct"], column="strong_correct", line=line
                    ),
                    subject=row.get("subject") or None,
                )
            )
    if not out:
        raise ValueError(f"{path}: no judgements")
    return out


def qcut_edges(scores: Sequence[float], bins: int = 10) -> list[float]:
    """The ``bins + 1`` quantile edges ``pd.qcut(scores, bins, retbins=True)`` returns.

    Linear interpolation between order statistics, with numpy's arithmetic (so a
    threshold that lands on a data point does so exactly); duplicate edges are
    kept, as RouteLLM's comment "including duplicates" intends.
    """
    if not scores:
        raise ValueError("no scores to cut")
    ordered = sorted(float(s) for s in scores)
    n = len(ordered)
    step = 1.0 / bins
    edges: list[float] = []
    for i in range(bins + 1):
        q = 1.0 if i == bins else i * step  # np.linspace(0, 1, bins + 1)
        q = (q * 100.0) / 100.0  # pandas passes percentages to np.percentile
        virtual = (n - 1) * q  # numpy's "linear" virtual index
        virtual = min(max(virtual, 0.0), float(n - 1))
        lo = math.floor(virtual)
        gamma = virtual - lo
        hi = min(lo + 1, n - 1)
        a, b = ordered[lo], ordered[hi]
        diff = b - a
        edges.append(b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma)
    return edges


def routing_curve(
    scores: Sequence[float], judgements: Sequence[Judgement], bins: int = 10
) -> list[CurvePoint]:
    """Accuracy and strong-call share at each quantile threshold (RouteLLM's ``evaluate``)."""
    if len(scores) != len(judgements):
        raise ValueError(f"{len(scores)} scores for {len(judgements)} judgements")
    edges = qcut_edges(scores, bins)
    total = len(judgements)
    points: list[CurvePoint] = []
    last = len(edges) - 1
    for i, threshold in enumerate(edges):
        correct = 0
        strong = 0
        for s, j in zip(scores, judgements, strict=True):
            to_strong = s >= threshold if i != last else s > threshold
            if to_strong:
                strong += 1
                correct += j.strong_correct
            else:
                correct += j.weak_correct
        points.append(
            CurvePoint(
                threshold=threshold,
                strong_percentage=strong / total * 100,
                accuracy=correct / total * 100,
            )
        )
    return points


def trapezoid(y: Sequence[float], x: Sequence[float]) -> float:
    """``np.trapz(y, x)``."""
    return sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2.0 for i in range(len(x) - 1))


def _search(key: float, arr: Sequence[float], guess: int) -> int:
    # numpy's binary_search_with_guess (compiled_base.c), kept literal so that a
    # non-monotone accuracy curve gives the same CPT as RouteLLM's np.interp.
    length = len(arr)
    imin, imax = 0, length
    if key > arr[length - 1]:
        return length
    if key < arr[0]:
        return -1
    if length <= 4:
        i = 1
        while i < length and key >= arr[i]:
            i += 1
        return i - 1
    guess = max(min(guess, length - 3), 1)
    cache = 8
    if key < arr[guess]:
        if key < arr[guess - 1]:
            imax = guess - 1
            if guess > cache and key >= arr[guess - cache]:
                imin = guess - cache
        else:
            return guess - 1
    else:
        if key < arr[guess + 1]:
            return guess
        if key < arr[guess + 2]:
            return guess + 1
        imin = guess + 2
        if guess < length - cache - 1 and key < arr[guess + cache]:
            imax = guess + cache
    while imin < imax:
        imid = imin + ((imax - imin) >> 1)
        if key >= arr[imid]:
            imin = imid + 1
        else:
            imax = imid
    return imin - 1


def interp(x: float, xp: Sequence[float], fp: Sequence[float]) -> float:
    """``np.interp(x, xp, fp)`` for one ``x``, identical also when ``xp`` is not increasing."""
    if len(xp) != len(fp) or not xp:
        raise ValueError("xp and fp must be non-empty and of equal length")
    if len(xp) == 1:
        return fp[0]
    j = _search(x, xp, 0)
    if j == -1:
        return fp[0]
    if j == len(xp):
        return fp[-1]
    if j == len(xp) - 1 or xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    value = slope * (x - xp[j]) + fp[j]
    if math.isnan(value):
        value = slope * (x - xp[j + 1]) + fp[j + 1]
        if math.isnan(value) and fp[j] == fp[j + 1]:
            value = fp[j]
    return value


def _sorted_curve(curve: Iterable[CurvePoint]) -> list[CurvePoint]:
    return sorted(curve, key=lambda p: p.strong_percentage)


def cpt(curve: Iterable[CurvePoint], weak: float, strong: float, quality: float) -> float:
    """Strong-call share (percent) needed to recover ``quality`` of the weak-to-strong gap."""
    pts = _sorted_curve(curve)
    return interp(
        quality * (strong - weak) + weak,
        [p.accuracy for p in pts],
        [p.strong_percentage for p in pts],
    )


def apgr(curve: Iterable[CurvePoint], weak: float, strong: float) -> float:
    """Average performance gap recovered: area under the curve between weak and strong."""
    pts = _sorted_curve(curve)
    xs = [p.strong_percentage / 100 for p in pts]
    auc = trapezoid([p.accuracy for p in pts], xs)
    weak_auc = trapezoid([weak] * len(xs), xs)
    strong_auc = trapezoid([strong] * len(xs), xs)
    return (auc - weak_auc) / (strong_auc - weak_auc)


def _accuracies(judgements: Sequence[Judgement]) -> tuple[float, float]:
    n = len(judgements)
    weak = sum(j.weak_correct for j in judgements) / n * 100
    strong = sum(j.strong_correct for j in judgements) / n * 100
    return weak, strong


def _metrics(name: str, curve: list[CurvePoint], judgements: Sequence[Judgement]) -> RouterMetrics:
    weak, strong = _accuracies(judgements)
    if strong == weak:
        raise ValueError("the strong and weak models are equally accurate here: APGR is undefined")
    pts = _sorted_curve(curve)
    return RouterMetrics(
        name=name,
        prompts=len(judgements),
        weak_accuracy=weak,
        strong_accuracy=strong,
        auc=trapezoid([p.accuracy for p in pts], [p.strong_percentage / 100 for p in pts]),
        apgr=apgr(pts, weak, strong),
        cpt_20=cpt(pts, weak, strong, 0.2),
        cpt_50=cpt(pts, weak, strong, 0.5),
        cpt_80=cpt(pts, weak, strong, 0.8),
        curve=tuple(pts),
    )


def evaluate_scores(
    name: str, scores: Sequence[float], judgements: Sequence[Judgement], bins: int = 10
) -> RouterMetrics:
    """APGR and CPT of a deterministic router whose per-prompt scores are given."""
    return _metrics(name, routing_curve(scores, judgements, bins), judgements)


def random_baseline(
    judgements: Sequence[Judgement], *, seed: int = 0, iters: int = 10, bins: int = 10
) -> RouterMetrics:
    """RouteLLM's random router: uniform scores, ``iters`` runs averaged per strong share."""
    rng = random.Random(seed)
    by_share: dict[float, list[CurvePoint]] = {}
    for _ in range(iters):
        scores = [rng.uniform(0, 1) for _ in judgements]
        for p in routing_curve(scores, judgements, bins):
            by_share.setdefault(p.strong_percentage, []).append(p)
    curve = [
        CurvePoint(
            threshold=sum(p.threshold for p in ps) / len(ps),
            strong_percentage=share,
            accuracy=sum(p.accuracy for p in ps) / len(ps),
        )
        for share, ps in sorted(by_share.items())
    ]
    return _metrics("random", curve, judgements)


def length_baseline(judgements: Sequence[Judgement], bins: int = 10) -> RouterMetrics:
    """Prompt length in characters as the score: the simplest signal a router could use."""
    return evaluate_scores(
        "prompt length", [float(len(j.prompt)) for j in judgements], judgements, bins
    )


def evaluate_routers(
    judgements: Sequence[Judgement],
    scorer: Callable[[str], float] | None = None,
    *,
    bins: int = 10,
) -> list[RouterMetrics]:
    """Faremeter's complexity score beside the random and prompt-length baselines."""
    if scorer is None:
        from faremeter.routing.scoring import complexity

        scorer = complexity
    ours = evaluate_scores("faremeter complexity", [scorer(j.prompt) for j in judgements],
                           judgements, bins)  # fmt: skip
    return [ours, random_baseline(judgements, bins=bins), length_baseline(judgements, bins)]
