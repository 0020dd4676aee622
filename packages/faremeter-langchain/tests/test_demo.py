"""``faremeter demo``: the LangGraph research agent's numbers reconcile with the ledger."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from faremeter import Meter, SpanKind, SpanStatus
from faremeter.testing import make_test_meter
from faremeter_langchain.demo import DemoOptions, DemoReport, make_tasks, run_demo
from faremeter_langchain.demo.hints import README_PREFIX, command_prefix, next_commands
from faremeter_langchain.demo.profile import TASK_CAP
from faremeter_langchain.demo.render import usd
from faremeter_langchain.demo.run import demo_budgets, demo_catalog

TASKS = 20
ZERO = Decimal(0)


@dataclass
class Ran:
    report: DemoReport
    meter: Meter
    other: Meter
    out: str


def _meter() -> Meter:
    return make_test_meter(catalog=demo_catalog(), budgets=demo_budgets())


def _run(optimize: bool) -> Ran:
    meter, other = _meter(), _meter()
    buf = io.StringIO()
    report = run_demo(
        DemoOptions(tasks=TASKS, optimize=optimize),
        meter=meter,
        other=other,
        console=Console(file=buf, width=100, color_system=None),
        hints=[("faremeter report --by step", "x")],
    )
    return Ran(report, meter, other, buf.getvalue())


@pytest.fixture(scope="module")
def optimized() -> Ran:
    return _run(True)


@pytest.fixture(scope="module")
def unoptimized() -> Ran:
    return _run(False)


def _ledger_total(meter: Meter) -> Decimal:
    return sum((s.cost.total or ZERO for s in meter.ledger.spans()), ZERO)


def test_the_report_total_is_the_sum_of_the_ledger_spans(optimized: Ran) -> None:
    total = _ledger_total(optimized.meter)
    assert total > 0
    assert optimized.report.totals.total == total
    assert optimized.report.totals.llm + optimized.report.totals.tool == total
    assert f"Total {usd(total)} =" in optimized.out
    by_user = sum((r.cost for r in optimized.report.by_user), ZERO)
    by_step = sum((r.cost for r in optimized.report.by_step), ZERO)
    assert by_user == total and by_step == total


def test_no_optimize_costs_more_and_the_printed_saving_is_the_difference(
    optimized: Ran, unoptimized: Ran
) -> None:
    opt_total = _ledger_total(optimized.meter)
    base_total = _ledger_total(optimized.other)
    assert base_total > opt_total
    saved = base_total - opt_total
    assert optimized.report.comparison.saved == saved
    assert f"saved {usd(saved)} " in optimized.out
    # --no-optimize records the baseline and compares with the optimised run:
    # the same tasks, so the very same two totals.
    assert _ledger_total(unoptimized.meter) == base_total
    assert _ledger_total(unoptimized.other) == opt_total
    assert unoptimized.report.comparison.saved == saved
    assert f"saved {usd(saved)} " in unoptimized.out

    def llm(meter: Meter) -> Decimal:
        return sum((s.cost.total or ZERO for s in meter.ledger.spans(kind="llm")), ZERO)

    routing = optimized.report.comparison.saved_routing
    assert routing == llm(optimized.other) - llm(optimized.meter) > 0


def test_the_router_sends_cheap_steps_to_the_cheap_model(optimized: Ran, unoptimized: Ran) -> None:
    def answered(meter: Meter, step: str) -> list[tuple[str | None, object]]:
        spans = meter.ledger.spans(where={"step": step}, kind="llm")
        return [
            (s.model, s.attributes.get("route.model")) for s in spans if s.status is SpanStatus.OK
        ]

    summarize = answered(optimized.meter, "summarize")
    assert summarize and {routed for _, routed in summarize} == {"gpt-4o-mini"}
    assert ("gpt-4o-mini", "gpt-4o-mini") in summarize  # fallbacks aside, the routed model answers
    assert {routed for _, routed in answered(optimized.meter, "write_report")} == {"gpt-4o"}
    baseline = {s.model for s in unoptimized.meter.ledger.spans(kind="llm")}
    assert baseline <= {"gpt-4o", "claude-sonnet-4-5"}
    assert not any("route.model" in s.attributes for s in unoptimized.meter.ledger.spans())


def test_repeated_searches_hit_the_tool_cache(optimized: Ran, unoptimized: Ran) -> None:
    tools = optimized.meter.ledger.spans(kind="tool")
    hits = [s for s in tools if s.status is SpanStatus.CACHED]
    assert hits and all(s.cost.total == 0 for s in hits)
    assert optimized.report.cache_hits == len(hits)
    assert optimized.report.cache_saved == sum((s.saved or ZERO for s in hits), ZERO)
    assert optimized.report.cache_saved > 0
    assert not [
        s for s in unoptimized.meter.ledger.spans(kind="tool") if s.status is SpanStatus.CACHED
    ]


def test_runaways_are_stopped_by_the_trace_cap_and_caught_as_anomalies(optimized: Ran) -> None:
    runaway = {t.task_id for t in make_tasks(TASKS, seed=2026) if t.runaway}
    assert runaway and set(optimized.report.capped) == runaway
    denied = [s for s in optimized.meter.ledger.spans() if s.status is SpanStatus.DENIED]
    assert {s.error_class for s in denied} == {"budget"}
    for row in optimized.meter.ledger.top_traces(50):
        assert row.cost <= TASK_CAP
    capped_traces = {s.trace_id for s in denied}
    assert {a.subject for a in optimized.report.anomalies} == capped_traces
    assert optimized.report.denials == len(
        [s for s in denied if s.kind in (SpanKind.LLM, SpanKind.TOOL)]
    )


def test_rate_limited_calls_fall_back_to_the_next_model(optimized: Ran) -> None:
    errors = [s for s in optimized.meter.ledger.spans(kind="llm") if s.status is SpanStatus.ERROR]
    assert errors and {s.error_class for s in errors} == {"rate_limit"}
    assert optimized.report.rate_limited == len(errors)
    assert sum(optimized.report.fallback_models.values()) == len(errors)
    for e in errors:  # the same node answered with another model right after
        siblings = [
            s for s in optimized.meter.ledger.spans(e.trace_id, kind="llm")
            if s.parent_span_id == e.parent_span_id and s.status is SpanStatus.OK
        ]  # fmt: skip
        assert siblings and all(s.model != e.model for s in siblings)


def test_per_task_percentiles_are_real_task_totals(optimized: Ran) -> None:
    totals = sorted(r.cost for r in optimized.meter.ledger.top_traces(1000))
    assert len(totals) == TASKS
    p50 = optimized.report.per_task[0.5]
    assert p50 in totals and p50 == totals[(TASKS + 1) // 2 - 1]


# -- the commands printed after the report ----------------------------------------------


def test_prefix_repeats_the_uv_command_that_started_the_demo() -> None:
    parent = ["/home/u/.local/bin/uv", "run", "--package", "faremeter", "--no-dev", "--extra",
              "demo", "faremeter", "demo", "--tasks", "50"]  # fmt: skip
    prefix = command_prefix(env={"UV_RUN_RECURSION_DEPTH": "1"}, argv0="/x/.venv/bin/faremeter",
                            parent=parent)  # fmt: skip
    assert prefix == list(README_PREFIX)
    assert command_prefix(
        env={"UV": "/bin/uv"}, argv0="/x/bin/faremeter",
        parent=["uv", "run", "faremeter", "demo"],
    ) == ["uv", "run", "faremeter"]  # fmt: skip


def test_prefix_outside_uv_is_the_script_or_python_m() -> None:
    python_m = command_prefix(env={}, argv0="/src/faremeter/cli/__main__.py", parent=[])
    assert python_m[1:] == ["-m", "faremeter.cli"]
    assert command_prefix(env={}, argv0="/nowhere/bin/faremeter", parent=[]) == [
        "/nowhere/bin/faremeter"
    ]
    # A parent that is not uv (pytest run by `uv run`) does not count as uv.
    not_uv = command_prefix(
        env={"UV": "uv"}, argv0="/nowhere/bin/faremeter", parent=["python", "-m", "pytest"]
    )
    assert not_uv == ["/nowhere/bin/faremeter"]


def test_next_commands_carry_the_ledger_and_the_trace() -> None:
    lines = [
        c for c, _ in next_commands(["faremeter"], trace_id="ab" * 16, ledger="sqlite:///x y.db")
    ]
    assert lines[0] == "faremeter report --by step --ledger 'sqlite:///x y.db'"
    assert lines[1] == f"faremeter trace {'ab' * 16} --ledger 'sqlite:///x y.db'"
    assert lines[2] == "faremeter suggest --ledger 'sqlite:///x y.db'"
    assert lines[3].startswith("faremeter dashboard")


def test_the_faremeter_command_runs_the_demo_and_its_hints_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAREMETER_")}
    url = f"sqlite:///{tmp_path}/l.db"
    result = subprocess.run(
        [sys.executable, "-m", "faremeter.cli", "demo", "--tasks", "10", "--ledger", url],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Research agent on LangGraph" in out and "Next:" in out
    ledger = Meter(ledger=url, _register=False)
    total = _ledger_total(ledger)
    ledger.close()
    assert f"Total {usd(total)} =" in out
    hints = [
        line.strip() for line in out.split("Next:")[1].splitlines() if "-m faremeter.cli" in line
    ]
    assert [shlex.split(h)[3] for h in hints] == ["report", "trace", "suggest", "dashboard"]
    for hint in hints[:3]:  # the dashboard would serve forever
        argv = shlex.split(hint)
        assert argv[-2:] == ["--ledger", url]
        ran = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, (hint, ran.stderr)
    trace_id = shlex.split(hints[1])[4]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)


def test_without_the_langgraph_demo_it_falls_back_to_the_single_task(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from faremeter.cli import main

    monkeypatch.setitem(sys.modules, "faremeter_langchain.demo", None)
    assert main(["demo", "--ledger", f"sqlite:///{tmp_path}/one.db"]) == 0
    out = capsys.readouterr().out
    assert "pip install 'faremeter[demo]'" in out.splitlines()[0]
    assert "$0.142" in out


def test_the_docs_example_runs_offline(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "demo_langgraph.py"
    done = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:5] == [
        "all gpt-4o, no cache: 3.3142505  (LLM 3.0182505, tools 0.296)",
        "routed + cached:      1.71250235  (LLM 1.45250235, tools 0.26)",
        "saved: 1.60174815",
        "stopped by the task cap: task-012",
        "runaway-loop alerts: 2",
    ]
    assert not done.stderr  # expected denials are reported, not logged
