"""faremeter's web dashboard over six hours of sample agent work, offline.

Run: uv run python docs/examples/dashboard_local.py           # prints what the panels say, exits
     uv run python docs/examples/dashboard_local.py --serve   # keeps serving; open the URL
"""

from __future__ import annotations

import sys
from decimal import Decimal

import httpx

import faremeter
from faremeter.budgets import Budget
from faremeter.dashboard import DashboardServer
from faremeter.dashboard.sample import record_sample_workload

meter = faremeter.Meter(
    ledger="memory",
    budgets=[Budget("per-user-daily", limit="0.40", window="day", per="user_id", action="warn")],
)
work = record_sample_workload(meter)  # 18 research tasks, one of them runaway

# What the call lifecycle does for every call: reserve first, settle to the actual cost.
for task in meter.ledger.top_traces(100):
    (root,) = meter.ledger.spans(task.trace_id, where={"kind": "agent"})
    who = {"user_id": root.attributes["user_id"]}
    meter.budgets.reserve(attributes=who, amount=task.cost).settle(task.cost)

serve = "--serve" in sys.argv
server = DashboardServer(meter, port=8765 if serve else 0)
if serve:
    print(f"dashboard on {server.url} (Ctrl-C to stop)")
    server.serve_forever()
    raise SystemExit(0)

with server:
    api = httpx.Client(base_url=server.url)
    ticker = api.get("/api/ticker").json()
    tasks = api.get("/api/tasks").json()
    dist = api.get("/api/distribution").json()
    opportunities = api.get("/api/opportunities").json()["items"]
    budgets = api.get("/api/budgets").json()
    tree = api.get(f"/api/trace/{work.outlier_trace_id}").json()

print(f"spent ${ticker['total']} in {ticker['spans']} spans")
outliers = [r for r in tasks["rows"] if r["outlier"]]
print(f"{len(outliers)} outlier task(s) above ${tasks['outlier_threshold']}:"
      f" {outliers[0]['trace_id']} cost ${outliers[0]['cost']}")  # fmt: skip
print(f"per-task cost: P50 ${dist['p50']}  P90 ${dist['p90']}  P99 ${dist['p99']}")
print(f"top opportunity: {opportunities[0]['title']}")
over = [b for b in budgets["budgets"] if b["over_forecast"]]
print(f"{len(budgets['budgets'])} budget counters, {len(over)} on course to exceed the limit")
children = ", ".join(c["name"] for c in tree["roots"][0]["children"])
print(f"runaway task tree: {children} (total ${tree['total']})")
assert Decimal(ticker["total"]) == meter.ledger.cost_split().total
