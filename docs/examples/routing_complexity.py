"""The local complexity score, and how to measure it on your own judgements — offline.

    uv run python docs/examples/routing_complexity.py

Scores a few requests (a string, OpenAI-style messages, content parts), routes
each to a cheap or a strong model at a threshold, then measures the score as a
router the way RouteLLM does (APGR, CPT(50%)) on a small judgements table
built here. With your own table — one row per prompt, did the cheap model get
it right, did the strong one — run ``faremeter eval-router FILE.csv --split all``.
"""

from __future__ import annotations

from faremeter.routing import complexity
from faremeter.routing.evaluate import Judgement, evaluate_scores, length_baseline

CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
THRESHOLD = 0.5

REQUESTS: list[tuple[str, object]] = [
    ("greeting", "hi there!"),
    ("lookup", [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the capital of France?"}]),
    ("word problem", [{"role": "user", "content": [{"type": "text", "text": (
        "A train leaves at 9:40 and travels 238 km at 85 km/h, then waits 25 minutes and "
        "covers the remaining 40% of the trip at 60 km/h. What percent of the total time "
        "was spent waiting, rounded to one decimal?")}]}]),
    ("abstract algebra", (
        "Statement 1 | Every group of order p^2 is abelian. Statement 2 | Every quotient of "
        "a cyclic group is cyclic.\nA. True, True\nB. False, False\nC. True, False\n"
        "D. False, True\nAnswer:")),
]  # fmt: skip


def main() -> None:
    print(f"{'request':18} {'score':>6}  model")
    for name, messages in REQUESTS:
        score = complexity(messages)
        model = STRONG if score > THRESHOLD else CHEAP
        print(f"{name:18} {score:6.3f}  {model}")

    # Judgements: was the cheap model right? the strong one? (normally read from a CSV
    # with faremeter.routing.evaluate.load_judgements). Here the long prompts are the
    # easy ones, so prompt length routes badly and the score should not.
    easy = (
        "Hello! I hope you are having a lovely day. My daughter and I were chatting over "
        "breakfast and we could not remember: what is the capital city of France?"
    )
    hard = (
        "A train leaves at 9:40 and travels 238 km at 85 km/h, then waits 25 minutes. "
        "What percent of the trip was waiting?"
    )
    table = [Judgement(prompt=f"{easy} ({i})", weak_correct=True, strong_correct=True)
             for i in range(30)]  # fmt: skip
    table += [Judgement(prompt=f"{hard} ({i})", weak_correct=i % 3 == 0, strong_correct=True)
              for i in range(20)]  # fmt: skip
    ours = evaluate_scores("complexity", [complexity(j.prompt) for j in table], table)
    length = length_baseline(table)
    print(f"\nAPGR: complexity {ours.apgr:.2f}, prompt length {length.apgr:.2f}")
    print(f"CPT(50%): complexity {ours.cpt_50:.0f}% strong calls, "
          f"prompt length {length.cpt_50:.0f}%")  # fmt: skip


if __name__ == "__main__":
    main()
