"""The benchmark runner: markers rewritten, narrative kept, targets judged.

Most tests drive ``run_all.main`` with an injected runner (no subprocess, no
timing); one runs the real pricing benchmark in ``--quick`` mode against a temp
copy of BENCHMARKS.md, end to end. No test looks at how long anything took.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_ALL = ROOT / "integration_tests" / "benchmarks" / "run_all.py"
MARKED = re.compile(r"<!-- bench:([\w-]+) -->\n.*?<!-- /bench:\1 -->", re.S)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("faremeter_bench_run_all", RUN_ALL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run_all: Any = _load()


def outside(text: str) -> str:
    """The text with every marked block's content removed (markers kept)."""
    return MARKED.sub(lambda m: f"<!-- bench:{m.group(1)} --><!-- /bench:{m.group(1)} -->", text)


def blocks(text: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in MARKED.finditer(text)}


DOC = """# Benchmarks

Intro written by a person.

## Last generated run

<!-- bench:header -->
old header
<!-- /bench:header -->

## Summary

Narrative above the summary.

<!-- bench:summary -->
old summary table
<!-- bench-data {"router_us": {"metric": "router_us", "value": 12.5, "date": "2026-11-30"}} -->
<!-- /bench:summary -->

## Pricing one call

Why pricing matters, by hand.

<!-- bench:pricing -->
| old | table |
<!-- /bench:pricing -->

Reading the numbers: kept.

## Ledger

<!-- bench:ledger -->
| old ledger | table |
<!-- /bench:ledger -->

Ledger narrative.
"""


def fake_runner(outputs: dict[str, tuple[bool, str]]) -> Any:
    def run(bench: Any, *, quick: bool, timeout: float) -> Any:
        ok, stdout = outputs[bench.name]
        markdown, summaries = run_all.parse_summaries(stdout)
        return run_all.RunResult(
            name=bench.name,
            ok=ok,
            seconds=1.0,
            markdown=markdown,
            summaries=summaries if ok else {},
            error="" if ok else "exit 1: boom",
        )

    return run


def test_write_rewrites_blocks_and_keeps_narrative(tmp_path: Path) -> None:
    target = tmp_path / "BENCHMARKS.md"
    target.write_text(DOC, encoding="utf-8")
    stdout = (
        "## Pricing one call\n\n| model | faremeter µs |\n|---|---|\n| gpt-4o | 1.10 |\n"
        'SUMMARY {"metric": "pricing_us", "value": 1.1, "unit": "µs", '
        '"peer": "litellm", "peer_value": 88.0}\n'
    )
    runner = fake_runner({"pricing": (True, stdout)})
    assert run_all.main(["--only", "pricing", "--write", "--file", str(target)], runner=runner) == 0
    after = target.read_text(encoding="utf-8")

    assert outside(after) == outside(DOC)
    got = blocks(after)
    assert "| gpt-4o | 1.10 |" in got["pricing"]
    assert "## Pricing one call" not in got["pricing"]  # the file has the heading already
    assert "SUMMARY" not in after.replace("Summary", "")
    assert got["ledger"] == blocks(DOC)["ledger"]  # not run: untouched
    assert "Load average" in got["header"] and "| pricing | ok |" in got["header"]
    pricing_row = next(line for line in got["summary"].splitlines() if "price one call" in line)
    assert "1.10 µs" in pricing_row and "| met |" in pricing_row
    assert "litellm: 88 µs" in pricing_row
    router_row = next(line for line in got["summary"].splitlines() if "router decision" in line)
    assert "12.5 µs" in router_row and "2026-11-30" in router_row  # kept from the earlier run
    assert "not run" in got["summary"]  # targets nobody measured yet say so


def test_failed_benchmark_keeps_previous_numbers(tmp_path: Path) -> None:
    target = tmp_path / "BENCHMARKS.md"
    target.write_text(DOC, encoding="utf-8")
    runner = fake_runner({"pricing": (False, "| partial |\n"), "ledger": (True, "| new |\n")})
    code = run_all.main(
        ["--only", "pricing", "ledger", "--write", "--file", str(target)], runner=runner
    )
    assert code == 1
    got = blocks(target.read_text(encoding="utf-8"))
    assert got["pricing"] == blocks(DOC)["pricing"]
    assert "| new |" in got["ledger"]
    assert "**failed** (exit 1: boom)" in got["header"]


def test_missing_markers_append_a_section() -> None:
    text = run_all.replace_block("# B\n\nText.\n", "routed", "| t |\n", title="Routed models")
    assert text.startswith("# B\n\nText.\n")
    assert "## Routed models\n\n<!-- bench:routed -->\n\n| t |\n\n<!-- /bench:routed -->\n" in text


def test_script_output_cannot_forge_markers() -> None:
    bench = run_all.BENCHMARKS[0]
    result = run_all.RunResult(
        name=bench.name, ok=True, seconds=2.0, markdown="<!-- /bench:pricing -->\n| a |"
    )
    section = run_all.section_markdown(bench, result, quick=False, date="2026-12-01")
    assert "<!-- /bench" not in section and "| a |" in section


def test_plain_result_lines_stay_separate_paragraphs() -> None:
    bench = run_all.BENCHMARKS[0]
    out = "ratio a: 1.2×\nratio b: 0.2×\n\n| t |\n|---|\n| 1 |\n- item\n- item"
    result = run_all.RunResult(name=bench.name, ok=True, seconds=2.0, markdown=out)
    section = run_all.section_markdown(bench, result, quick=True, date="2026-12-01")
    assert "ratio a: 1.2×\n\nratio b: 0.2×\n\n| t |\n|---|\n| 1 |\n- item\n- item" in section


def test_summary_judges_bounds_in_both_directions() -> None:
    table = run_all.render_summary(
        {
            "sqlite_spans_per_s": {"value": 41_000.0},
            "record_us": {"value": 6.0, "unit": "µs"},
            "langchain_vs_usage": {"value": 1.4},
        }
    )
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "**not met**" in rows["| sustained into SQLite (incl. building spans)"]
    assert "**not met**" in rows["| hot-path `Ledger.record()` (SQLite ledger)"]
    assert "| met |" in rows["| LangChain overhead ÷ `UsageMetadataCallbackHandler`"]
    assert "1.40×" in rows["| LangChain overhead ÷ `UsageMetadataCallbackHandler`"]


def test_bad_summary_lines_are_dropped_not_fatal() -> None:
    markdown, found = run_all.parse_summaries("| t |\nSUMMARY {not json\nSUMMARY [1]\n")
    assert markdown == "| t |" and found == {}


def test_unknown_benchmark_name_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match=r"unknown benchmark.*nope.*pricing"):
        run_all.main(["--only", "nope"])


def test_every_registered_script_exists_and_targets_are_measured() -> None:
    scripts = {b.script for b in run_all.BENCHMARKS}
    assert all((RUN_ALL.parent / s).is_file() for s in scripts)
    emitted = "".join((RUN_ALL.parent / s).read_text(encoding="utf-8") for s in scripts)
    for target in run_all.TARGETS:  # some script reports every design target
        assert re.search(rf'"{target.metric}"|"{target.metric.rsplit("_", 2)[0]}_', emitted), (
            target.metric
        )


def test_quick_pricing_run_rewrites_a_copy_of_benchmarks_md(tmp_path: Path) -> None:
    original = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "<!-- bench:pricing -->" in original
    copy = tmp_path / "BENCHMARKS.md"
    copy.write_text(original, encoding="utf-8")
    argv = ["--quick", "--only", "pricing", "--write", "--file", str(copy)]
    proc = subprocess.run(
        [sys.executable, str(RUN_ALL), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = copy.read_text(encoding="utf-8")
    assert outside(after) == outside(original)  # every word outside the markers kept
    before_blocks, after_blocks = blocks(original), blocks(after)
    assert set(before_blocks) == set(after_blocks)
    for name in set(before_blocks) - {"pricing", "header", "summary"}:
        assert after_blocks[name] == before_blocks[name], name
    pricing = after_blocks["pricing"]
    assert "--quick" in pricing and "| gpt-4o |" in pricing and "SUMMARY" not in pricing
    summary = after_blocks["summary"]
    row = next(line for line in summary.splitlines() if line.startswith("| price one call"))
    assert "(quick)" in row and "litellm `cost_per_token`" in row
    assert "(quick)" in next(line for line in summary.splitlines() if "import faremeter" in line)
    assert "| pricing | ok |" in after_blocks["header"]
    assert (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8") != after  # main file untouched
