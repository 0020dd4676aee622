"""Where the money goes, what went wrong, what to change — offline, in one script.

Run: ``uv run python docs/examples/analytics_report.py``

It records a small synthetic workload (two agents, tools, a resolved-ticket
outcome) into an in-memory ledger, then asks every analysis for its answer.
Swap ``Meter(ledger="memory")`` for your own meter to run it on real data.
"""

from __future__ import annotations

from decimal import Decimal

from faremeter import Meter, Usage, analytics
from faremeter.alerts import AlertDispatcher, CallbackSink
from faremeter.analytics.sample import sample_workload


def main() -> dict[str, object]:
    meter = Meter(ledger="memory")
    # Any recorded spans will do; the sample mimics a research and a support agent.
    for span in sample_workload(meter.catalog, traces=300):
        meter.ledger.record(span)
    # Outcomes are one call in your own code (here: a live support run).
    with meter.trace("support-agent", workflow="support", team="ops") as run:
        meter.record_llm("gpt-4o-mini", Usage(input_tokens=800, output_tokens=120))
        analytics.record_outcome(meter, "ticket_resolved", trace=run)
    meter.flush()
    ledger = meter.ledger

    # 1. Distribution per workflow with p50/p90/p99 and outliers (> 2x the median).
    for row in analytics.distribution(ledger, by="workflow"):
        print(f"{row.key}: {row.traces} runs, p50 ${row.p50} p99 ${row.p99}, "
              f"{len(row.outliers)} outliers above ${row.outlier_threshold}")  # fmt: skip

    # 2. Paths: the most frequent sequences of steps and tools.
    paths = analytics.path_analysis(ledger, top=3)
    for p in paths.most_frequent:
        print(f"{p.traces:4d} x {p.label}  (${p.mean:.4f} per run)")

    # 3. What-if: the summarize step on gpt-4o-mini.
    w = analytics.what_if(ledger, meter.catalog, model="gpt-4o-mini", step="summarize")
    print(f"summarize on gpt-4o-mini: ${w.what_if} instead of ${w.recorded}")

    # 4. Suggestions with evidence and dollar impact.
    for s in analytics.suggest(ledger, meter.catalog)[:3]:
        print(f"[{s.kind}] save ${s.impact:.4f}: {s.title}")

    # 5. Unit economics.
    for o in analytics.cost_per_outcome(ledger, "ticket_resolved", by="workflow"):
        assert o.cost_per_outcome is not None
        print(f"{o.key}: ${o.cost_per_outcome:.4f} per resolved ticket ({o.outcomes} tickets)")

    # 6. Live anomaly detection: a tool called with the same arguments 5 times.
    alerts: list[str] = []
    monitor = analytics.AnomalyMonitor(
        alerts=AlertDispatcher([CallbackSink(lambda a: alerts.append(a.message))])
    )
    monitor.attach(meter)
    with meter.trace("looping-agent"):
        for _ in range(5):
            meter.record_tool("web_search", cost=Decimal("0.005"), tool_args_hash="same-query")
        monitor.process_pending()  # a background thread does this with monitor.start()
    print("alert:", alerts[0])
    monitor.stop()
    meter.close()
    return {
        "what_if": w,
        "alerts": alerts,
        "suggestions": len(analytics.suggest(ledger, meter.catalog)),
    }


if __name__ == "__main__":
    main()
