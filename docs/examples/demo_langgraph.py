"""The demo's LangGraph research agent from Python: the same 20 tasks, optimised and not.

Offline: fake chat models report the agent's per-step token profile. Needs
``pip install 'faremeter[demo]'``.
"""

from faremeter import Meter
from faremeter_langchain.demo import demo_budgets, demo_catalog, make_tasks, run_workload
from faremeter_langchain.demo.report import run_totals


def new_meter() -> Meter:
    # The demo's tool prices and its $0.50 per-task cap; an in-memory ledger.
    return Meter(ledger="memory", catalog=demo_catalog(), budgets=demo_budgets())


tasks = make_tasks(20, seed=2026)
optimised, baseline = new_meter(), new_meter()
fast = run_workload(optimised, tasks, optimize=True, seed=2026)
slow = run_workload(baseline, tasks, optimize=False, seed=2026)

a, b = run_totals(optimised.ledger, fast), run_totals(baseline.ledger, slow)
print(f"all gpt-4o, no cache: {b.total}  (LLM {b.llm}, tools {b.tool})")
print(f"routed + cached:      {a.total}  (LLM {a.llm}, tools {a.tool})")
print(f"saved: {b.total - a.total}")
print(f"stopped by the task cap: {', '.join(fast.capped)}")
print(f"runaway-loop alerts: {len(fast.anomalies)}")
for row in optimised.ledger.cost_by("step")[:3]:
    print(f"  {row.key:<13} {row.spans:>4} spans  ${row.cost}")
