"""~200 research tasks for a dozen users in three teams — seeded, so every run is the same.

What varies between tasks is what varies in production: who asks (and so
which team and workflow pays), what they ask about (popular topics repeat,
which is what a tool cache feeds on), how long the pages and answers are
(each step's tokens move around the profile), which calls hit a provider's
rate limit, and — rarely — a task whose fact-check never converges and loops
until its budget stops it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faremeter_langchain.demo.profile import LOOP_CONTEXT_TOKENS, STEP_NAMES, STEPS, DemoStep

__all__ = ["USERS", "DemoTask", "StepPlan", "make_tasks", "step_plan"]

USERS: dict[str, tuple[str, str]] = {
    "ana": ("research", "market-research"),
    "ben": ("research", "market-research"),
    "chen": ("research", "literature-review"),
    "dana": ("research", "literature-review"),
    "eli": ("growth", "competitor-scan"),
    "fay": ("growth", "competitor-scan"),
    "gus": ("growth", "market-research"),
    "hana": ("growth", "competitor-scan"),
    "ivan": ("support", "fact-brief"),
    "jo": ("support", "fact-brief"),
    "kai": ("support", "fact-brief"),
    "lea": ("support", "literature-review"),
}
"""user → (team, usual workflow)."""

_USER_WEIGHTS = (9, 7, 6, 5, 8, 4, 3, 5, 10, 6, 3, 2)
_SUBJECTS = (
    "battery recycling", "GLP-1 drugs", "EU AI Act", "solid-state batteries",
    "RISC-V servers", "heat pumps", "vertical farming", "carbon capture",
    "LLM inference pricing", "quantum error correction", "small modular reactors",
    "lab-grown meat", "e-bike tariffs", "satellite internet", "green hydrogen",
    "open-source licensing", "data center water use", "microplastics",
    "agentic coding tools", "rare earths",
)  # fmt: skip
_ANGLES = (
    "market size", "key players", "regulation", "latest research", "cost trends", "risks",
    "forecasts", "open problems", "investment", "history", "criticism", "supply chain",
    "case studies", "standards", "benchmarks",
)  # fmt: skip

RUNAWAY_RATE = 0.04
RATE_LIMIT_RATE = 0.03


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoTask:
    """One research request: who asks, about what, and what will go wrong."""

    index: int
    user_id: str
    team: str
    workflow: str
    topic: str
    runaway: bool
    rate_limited: frozenset[str]
    """Steps whose first model call answers 429."""

    @property
    def task_id(self) -> str:
        """Stable id of the task (``task-007``)."""
        return f"task-{self.index:03d}"

    @property
    def pages(self) -> tuple[str, str]:
        """The two pages the search turns up: the same topic reads the same pages."""
        slug = self.topic.replace(" ", "-").lower()
        return (f"https://example.org/{slug}/overview", f"https://example.org/{slug}/data")

    @property
    def source(self) -> str:
        """The page the fact-check reads."""
        return f"https://example.org/{self.topic.replace(' ', '-').lower()}/primary-source"


def make_tasks(n: int, *, seed: int = 2026) -> list[DemoTask]:
    """``n`` tasks, the same ones for the same seed (optimised and baseline runs share them).

    Topics (300 of them) follow a Zipf-like popularity: a few are asked about
    by many users, most rarely — the repetition a shared tool cache turns into
    savings (about a third of the tool calls of normal tasks repeat one).
    """
    if n < 1:
        raise ValueError(f"the demo needs at least 1 task, got {n}")
    rng = random.Random(seed)
    topics = [f"{s} {a}" for s in _SUBJECTS for a in _ANGLES]
    rng.shuffle(topics)
    topic_weights = [1 / (rank + 1) ** 0.5 for rank in range(len(topics))]
    users = list(USERS)
    tasks: list[DemoTask] = []
    for i in range(n):
        user = rng.choices(users, weights=_USER_WEIGHTS)[0]
        team, workflow = USERS[user]
        if rng.random() < 0.2:  # people do other work too
            workflow = rng.choice(("market-research", "competitor-scan", "literature-review"))
        topic = rng.choices(topics, weights=topic_weights)[0]
        limited = frozenset(s for s in STEP_NAMES if rng.random() < RATE_LIMIT_RATE)
        tasks.append(
            DemoTask(
                index=i,
                user_id=user,
                team=team,
                workflow=workflow,
                topic=topic,
                runaway=rng.random() < RUNAWAY_RATE,
                rate_limited=limited,
            )
        )
    if n >= 10 and not any(t.runaway for t in tasks):
        # Small runs still show what a trace cap is for.
        t = tasks[n // 2]
        tasks[n // 2] = DemoTask(
            index=t.index, user_id=t.user_id, team=t.team, workflow=t.workflow,
            topic=t.topic, runaway=True, rate_limited=t.rate_limited,
        )  # fmt: skip
    return tasks


@dataclass(frozen=True, kw_only=True, slots=True)
class StepPlan:
    """The tokens one model call of a task's step uses (what the fake model reports)."""

    step: DemoStep
    input_tokens: int
    output_tokens: int


def step_plan(task: DemoTask, step: DemoStep, round_: int, *, seed: int = 2026) -> StepPlan:
    """Tokens of ``step`` in ``task`` on its ``round_``-th pass (0 = first).

    Derived from (seed, task, step, round) only, so the optimised and the
    baseline runs see the very same usage whatever model answers: the
    difference between their bills is the models and the cache, nothing else.
    Input varies -15%..+20% (a long page now and then doubles a read), output
    -40%..+50% up to the step's cap; each extra round of a loop carries the
    conversation so far.
    """
    rng = random.Random(f"{seed}:{task.index}:{step.name}:{round_}")
    factor = rng.uniform(0.85, 1.20)
    if step.tool == "read_page" and rng.random() < 0.08:
        factor *= 2
    input_tokens = int(step.input_tokens * factor) + round_ * LOOP_CONTEXT_TOKENS
    output_tokens = min(step.max_tokens, max(1, int(step.output_tokens * rng.uniform(0.6, 1.5))))
    return StepPlan(step=step, input_tokens=input_tokens, output_tokens=output_tokens)


STEP_BY_NAME: dict[str, DemoStep] = {s.name: s for s in STEPS}
