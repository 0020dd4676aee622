"""Spending limits enforced before money is spent — runnable offline.

    uv run python docs/examples/budgets_basic.py

Three budgets guard a fake gpt-4o call (no network: the "provider" returns
made-up token counts): a $0.10 cap per task that *denies*, a $0.15 monthly
budget for the research team that *degrades* (fits the call's ``max_tokens``
to the money left, then stops with ``partial=True``), and a $1 daily budget
per user. Each call reserves its worst case before it runs and settles to its
real cost afterwards; alerts go to a callback.
"""

from __future__ import annotations

from typing import Any

from faremeter import BudgetExceeded, PriceCatalog, Usage
from faremeter.alerts import Alert, CallbackSink
from faremeter.budgets import Budget, BudgetManager, estimate_call_cost
from faremeter.budgets.estimate import count_input_tokens

MODEL = "gpt-4o"
START_NS = 1_796_126_400_000_000_000  # 2026-12-01 12:00 UTC, fixed so the output is stable


def fake_provider(messages: list[dict[str, str]], max_tokens: int) -> Usage:
    """Stands in for the real request: the prompt's tokens, 60% of the allowed output."""
    prompt_tokens, _ = count_input_tokens(MODEL, messages)
    return Usage(input_tokens=prompt_tokens, output_tokens=int(max_tokens * 0.6))


def main() -> dict[str, Any]:
    catalog = PriceCatalog.default()
    alerts: list[Alert] = []
    budgets = BudgetManager(
        [
            Budget("research-monthly", limit="0.15", scope={"team": "research"}, action="degrade"),
            Budget("per-task", limit="0.10", window="trace"),
            Budget("per-user-daily", limit="1.00", window="day", per="user_id"),
        ],
        sinks=[CallbackSink(alerts.append)],
        clock=lambda: START_NS,
    )
    messages = [
        {"role": "system", "content": "You are a research assistant."},
        {"role": "user", "content": "Summarise these notes: " + "lorem ipsum " * 400},
    ]

    def call(user: str, team: str, task: str, max_tokens: int = 4_000) -> str:
        try:
            res = budgets.reserve_call(
                catalog=catalog,
                model=MODEL,
                messages=messages,
                max_tokens=max_tokens,
                attributes={"user_id": user, "team": team},
                trace_id=task,
            )
        except BudgetExceeded as exc:
            stop = " -> stop, return the partial answer" if exc.partial else ""
            return f"refused by {exc.budget} (${exc.available} left){stop}"
        try:
            usage = fake_provider(messages, res.max_tokens or max_tokens)
        except BaseException:
            res.release()  # failed or cancelled: nothing billed
            raise
        actual = catalog.cost(MODEL, usage).total
        res.settle(actual)
        fitted = f", fitted to max_tokens={res.max_tokens}" if res.degraded else ""
        return f"ran: reserved ${res.amount}, cost ${actual}{fitted}"

    outcomes: list[tuple[str, str]] = []
    for _ in range(4):  # one task: the per-task cap stops the 4th call
        outcomes.append(("ada/task-1", call("ada", "research", "task-1")))
    for _ in range(5):  # a new task: the team budget runs low and degrades
        outcomes.append(("ada/task-2", call("ada", "research", "task-2")))
    outcomes.append(("grace/ops", call("grace", "ops", "task-3")))  # other team: unaffected
    for who, line in outcomes:
        print(f"{who:<11} {line}")
    print()
    for alert in alerts:
        print(f"alert  {alert.kind}: {alert.message}")
    print()
    print(f"{'budget':<18}{'subject':<8}{'limit':>7}{'spent':>11}{'in flight':>11}{'left':>11}")
    for row in budgets.status():
        print(
            f"{row.budget:<18}{row.subject or '-':<8}{row.limit:>7}"
            f"{row.spent:>11.6f}{row.reserved:>11.6f}{row.remaining:>11.6f}"
        )
    worst = estimate_call_cost(catalog, MODEL, messages, 4_000)
    print(f"\nworst case of one call with max_tokens=4000: ${worst}")
    return {"outcomes": outcomes, "alerts": alerts, "status": budgets.status()}


if __name__ == "__main__":
    main()
