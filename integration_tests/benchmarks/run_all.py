"""Run every benchmark and (optionally) rewrite the measured parts of BENCHMARKS.md.

    uv run python integration_tests/benchmarks/run_all.py [--quick] [--only NAME ...] [--write]

Each benchmark runs as its own subprocess with the command you would type to run
it alone, so every ``bench_*.py`` stays a standalone script and one benchmark's
imports, caches or threads cannot change another's numbers. A script prints
markdown (its tables) and may print ``SUMMARY {json}`` lines: one measured value
per design target, which this runner collects into the summary table.

``--write`` replaces only what lies between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->`` markers; the narrative around them is kept byte for
byte, because that is where people explain the numbers. Blocks:

- ``header``: machine (CPU model, cores, load average at start and end), Python
  and library versions, date, mode, and how long each benchmark took.
- ``summary``: every design target with its measured value, the peer's value,
  the ratio and met / not met. The raw values are kept in a comment inside the
  block, so a partial run (``--only``) updates its rows and keeps the others,
  each labelled with the date it was measured.
- one block per benchmark (``pricing``, ``ledger``, ...): the script's stdout.

A benchmark that fails or times out leaves its block as it was (the failure is
reported on stderr and in the header), so a broken run never erases good numbers.
A benchmark without markers in the file gets a new section appended at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

__all__ = [
    "BENCHMARKS",
    "TARGETS",
    "Benchmark",
    "RunResult",
    "Target",
    "main",
    "parse_summaries",
    "render_summary",
    "replace_block",
    "section_markdown",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_FILE = ROOT / "BENCHMARKS.md"
SUMMARY_PREFIX = "SUMMARY "
DATA_COMMENT = "<!-- bench-data "
VERSIONED = (
    "faremeter",
    "langchain-core",
    "llama-index-core",
    "litellm",
    "opentelemetry-sdk",
    "prometheus-client",
    "redis",
    "psycopg",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Benchmark:
    """One benchmark script and the arguments of its full and quick runs.

    The quick arguments are the script's own options for smaller sizes: quick
    runs check that everything still works end to end, their absolute numbers
    are not comparable with a full run's (fewer rounds, smaller ledgers).
    """

    name: str
    title: str
    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()

    def command(self, *, quick: bool) -> list[str]:
        """The argv that runs this benchmark alone (with the runner's interpreter)."""
        return [sys.executable, str(HERE / self.script), *(self.quick if quick else self.full)]

    def shown_command(self, *, quick: bool) -> str:
        """The command as a person would type it, for the section's first line."""
        args = " ".join(self.quick if quick else self.full)
        return f"uv run python integration_tests/benchmarks/{self.script} {args}".rstrip()


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        name="pricing", title="Pricing one call", script="bench_pricing.py", quick=("--quick",)
    ),
    Benchmark(
        name="ledger",
        title="Ledger",
        script="bench_ledger.py",
        full=("--spans", "1000000"),
        quick=("--spans", "20000"),
    ),
    Benchmark(
        name="langchain",
        title="LangChain adapter overhead",
        script="bench_langchain.py",
        full=("--rounds", "300", "--batch", "40"),
        quick=("--rounds", "20", "--batch", "20"),
    ),
    Benchmark(
        name="llamaindex",
        title="LlamaIndex adapter overhead",
        script="bench_llamaindex.py",
        full=("20000",),
        quick=("1000",),
    ),
    Benchmark(name="litellm", title="LiteLLM adapter overhead", script="bench_litellm.py"),
    Benchmark(
        name="export",
        title="Exports (OpenTelemetry, Prometheus)",
        script="bench_export.py",
    ),
    Benchmark(name="cache", title="Caches: the hit path", script="bench_cache.py"),
    Benchmark(name="budgets", title="Budgets: reserve + settle", script="bench_budgets.py"),
    Benchmark(
        name="dashboard",
        title="Dashboard API",
        script="bench_dashboard.py",
        full=("--spans", "1000000", "--window", "24h"),
        quick=("--spans", "20000", "--window", "24h"),
    ),
    Benchmark(
        name="complexity",
        title="Router complexity score (RouteLLM data)",
        script="bench_complexity.py",
        # Timing only: the routing-quality table (APGR, bootstrap intervals,
        # published baselines) comes from scripts/train_complexity.py and is
        # kept by hand outside the markers.
        full=("--no-quality",),
        quick=("--no-quality",),
    ),
    Benchmark(
        name="analytics",
        title="Analytics",
        script="bench_analytics.py",
        full=("--spans", "1000000"),
        quick=("--spans", "20000"),
    ),
    Benchmark(name="router", title="Router decision", script="bench_router.py", quick=("--quick",)),
    Benchmark(name="routed", title="Routed models (LlamaIndex, LiteLLM)", script="bench_routed.py"),
    Benchmark(
        name="demo",
        title="Demo workload (`faremeter demo`)",
        script="bench_demo.py",
        full=("200",),
        quick=("20",),
    ),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """A design target: which SUMMARY metric measures it and the bound it must meet."""

    metric: str
    what: str
    bound: float
    at_most: bool = True  # False: the value must be at least the bound
    unit: str = ""

    def met(self, value: float) -> bool:
        """Whether a measured value meets the bound."""
        return value <= self.bound if self.at_most else value >= self.bound

    def bound_text(self) -> str:
        """The bound as the summary table shows it, e.g. ``≤ 2 µs``."""
        return f"{'≤' if self.at_most else '≥'} {_num(self.bound)}{_unit(self.unit)}"


TARGETS: tuple[Target, ...] = (
    Target(metric="pricing_us", what="price one call (slowest model's median)", bound=2, unit="µs"),
    Target(
        metric="record_us", what="hot-path `Ledger.record()` (SQLite ledger)", bound=5, unit="µs"
    ),
    Target(
        metric="sqlite_spans_per_s",
        what="sustained into SQLite (incl. building spans)",
        bound=50_000,
        at_most=False,
        unit="spans/s",
    ),
    Target(
        metric="router_us", what="router decision (slower of rule / no rule)", bound=20, unit="µs"
    ),
    Target(
        metric="budget_inproc_us",
        what="budget reserve + settle, in-process (3 budgets)",
        bound=10,
        unit="µs",
    ),
    Target(
        metric="budget_redis_reserve_trips", what="budget reserve on Redis: round trips", bound=1
    ),
    Target(metric="budget_redis_settle_trips", what="budget settle on Redis: round trips", bound=1),
    Target(
        metric="import_ms",
        what="`import faremeter` (fresh interpreter, wall)",
        bound=150,
        unit="ms",
    ),
    Target(
        metric="cost_by_user_s", what='`cost_by("user_id")` on the ledger file', bound=1, unit="s"
    ),
    Target(
        metric="percentiles_s",
        what="per-workflow p50/p90/p99 on the ledger file",
        bound=1,
        unit="s",
    ),
    Target(
        metric="langchain_vs_usage",
        what="LangChain overhead ÷ `UsageMetadataCallbackHandler`",
        bound=1.5,
        unit="×",
    ),
    Target(
        metric="langchain_vs_langfuse",
        what="LangChain overhead ÷ Langfuse `CallbackHandler`",
        bound=0.25,
        unit="×",
    ),
    Target(
        metric="llamaindex_vs_tch",
        what="LlamaIndex usage-reporting call ÷ `TokenCountingHandler`",
        bound=1,
        unit="×",
    ),
    Target(
        metric="dashboard_ms",
        what="dashboard API, slowest endpoint (24 h window)",
        bound=1000,
        unit="ms",
    ),
    Target(
        metric="anomaly_us", what="anomaly listener, added per recorded span", bound=5, unit="µs"
    ),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResult:
    """What one benchmark subprocess produced."""

    name: str
    ok: bool
    seconds: float
    markdown: str
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    error: str = ""


def _num(value: float) -> str:
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _ratio(ratio: float) -> str:
    """``0.42×``; far below 1 also as a fraction (``0.016× = 1/63``), easier to read."""
    if ratio < 0.1:
        return f"{ratio:.2g}× = 1/{1 / ratio:,.0f}"
    return f"{ratio:.2f}×"


def _unit(unit: str) -> str:
    if not unit:
        return ""
    return unit if unit == "×" else f" {unit}"


def parse_summaries(stdout: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """Split a script's stdout into its markdown and its ``SUMMARY {json}`` records.

    Why strip rather than keep: the summary lines are for this runner, the
    markdown is for readers. Malformed summary lines are dropped with the rest
    of the output kept, so one bad print cannot lose a benchmark's tables.
    """
    kept: list[str] = []
    found: dict[str, dict[str, Any]] = {}
    for line in stdout.splitlines():
        if line.startswith(SUMMARY_PREFIX):
            try:
                record: object = json.loads(line[len(SUMMARY_PREFIX) :])
            except json.JSONDecodeError:
                print(f"run_all: bad summary line ignored: {line!r}", file=sys.stderr)
                continue
            data = cast("dict[str, Any]", record) if isinstance(record, dict) else {}
            if isinstance(data.get("metric"), str):
                found[data["metric"]] = data
            continue
        kept.append(line)
    return "\n".join(kept), found


def section_markdown(bench: Benchmark, result: RunResult, *, quick: bool, date: str) -> str:
    """The text that goes between a benchmark's markers.

    Top-level headings printed by a script are dropped (the file already has
    the section's heading) and marker-like comments are removed so a script's
    output can never open or close a block. Scripts print one result per
    line; markdown would join adjacent plain lines into one paragraph, so
    each becomes its own.
    """
    lines: list[str] = []
    for raw in result.markdown.splitlines():
        line = raw.rstrip()
        if re.match(r"#{1,2} ", line) or "<!-- bench" in line or "<!-- /bench" in line:
            continue
        if lines and _plain(line) and _plain(lines[-1]):
            lines.append("")
        lines.append(line)
    body = "\n".join(lines).strip("\n")
    mode = "quick run (smaller sizes; not comparable with full runs)" if quick else "full run"
    head = (
        f"_Measured {date} by `run_all.py`, {mode}, {result.seconds:.0f} s:_ "
        f"`{bench.shown_command(quick=quick)}`"
    )
    return f"{head}\n\n{body}\n"


def _plain(line: str) -> bool:
    """A line of prose (not blank, table, list, quote, heading or comment)."""
    return bool(line.strip()) and not re.match(r"\s*([|#>*-]|<!--|\d+\. )", line)


def _block_re(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- bench:{re.escape(name)} -->\n)(.*?)(<!-- /bench:{re.escape(name)} -->)", re.S
    )


def replace_block(text: str, name: str, content: str, *, title: str | None = None) -> str:
    """Replace the content between ``name``'s markers; append a section when absent.

    Everything outside the markers is returned unchanged.
    """
    # Blank lines inside the markers keep tables and comments separate blocks.
    content = "\n" + content.strip("\n") + "\n\n"
    pattern = _block_re(name)
    if pattern.search(text):
        return pattern.sub(lambda m: m.group(1) + content + m.group(3), text, count=1)
    heading = f"## {title or name}\n\n"
    return (
        text.rstrip("\n") + f"\n\n{heading}<!-- bench:{name} -->\n{content}<!-- /bench:{name} -->\n"
    )


def block_content(text: str, name: str) -> str | None:
    """The current content between ``name``'s markers, or None."""
    match = _block_re(name).search(text)
    return match.group(2) if match else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def render_header(
    *,
    date: str,
    quick: bool,
    load_start: str,
    load_end: str,
    results: Sequence[RunResult],
    total_s: float,
    only: Sequence[str] = (),
) -> str:
    """Machine, versions, date and per-benchmark durations of this run."""
    versions = ", ".join(f"{dist} {_version(dist)}" for dist in VERSIONED)
    flag = (" --quick" if quick else "") + (f" --only {' '.join(only)}" if only else "")
    caveat = " (**quick** run: smaller sizes, not comparable with a full run)" if quick else ""
    lines = [
        f"Generated by `uv run python integration_tests/benchmarks/run_all.py{flag} --write`"
        f" on {date}{caveat}.",
        "",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} logical cores, "
        f"{platform.system()} {platform.release()} {platform.machine()}.",
        f"- Load average (1 / 5 / 15 min): {load_start} at start, {load_end} at end.",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}.",
        f"- Total time {total_s:.0f} s.",
        "",
        "| benchmark | result | time s |",
        "|---|---|---:|",
    ]
    for r in results:
        state = "ok" if r.ok else f"**failed** ({r.error}); previous numbers kept"
        lines.append(f"| {r.name} | {state} | {r.seconds:.0f} |")
    return "\n".join(lines) + "\n"


def load_data(block: str | None) -> dict[str, dict[str, Any]]:
    """The raw summary values stored in a previous summary block."""
    if not block:
        return {}
    for line in block.splitlines():
        if line.startswith(DATA_COMMENT) and line.endswith(" -->"):
            try:
                data = json.loads(line[len(DATA_COMMENT) : -4])
            except json.JSONDecodeError:
                return {}
            return cast("dict[str, dict[str, Any]]", data) if isinstance(data, dict) else {}
    return {}


def render_summary(data: dict[str, dict[str, Any]]) -> str:
    """The design-target table from summary records (metric -> record).

    Records carry ``value`` and optionally ``peer``, ``peer_value``, ``unit``,
    ``note``, ``date`` and ``quick``. The ratio is ours ÷ the peer's value in
    the same run, the figure that moves least with the machine's load.
    """
    lines = [
        "| target | bound | measured | peer | ours ÷ peer | met | measured on |",
        "|---|---|---:|---|---:|:-:|---|",
    ]
    for t in TARGETS:
        rec = data.get(t.metric)
        if rec is None or not isinstance(rec.get("value"), int | float):
            lines.append(f"| {t.what} | {t.bound_text()} | not run | | | | |")
            continue
        value = float(rec["value"])
        peer_value = rec.get("peer_value")
        peer = ""
        ratio = ""
        if isinstance(peer_value, int | float) and peer_value:
            peer = f"{rec.get('peer', 'peer')}: {_num(float(peer_value))}{_unit(t.unit)}"
            ratio = _ratio(value / float(peer_value))
        note = f" ({rec['note']})" if rec.get("note") else ""
        shown = f"{value:.2f}" if t.unit == "×" else _num(value)
        met = "met" if t.met(value) else "**not met**"
        when = str(rec.get("date", ""))
        when += " (quick)" if rec.get("quick") else " (by hand)" if rec.get("by_hand") else ""
        lines.append(
            f"| {t.what} | {t.bound_text()} | {shown}{_unit(t.unit)}{note} | {peer} | "
            f"{ratio} | {met} | {when} |"
        )
    stored = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return "\n".join(lines) + f"\n\n{DATA_COMMENT}{stored} -->\n"


def run_one(bench: Benchmark, *, quick: bool, timeout: float) -> RunResult:
    """Run one benchmark alone in a subprocess and collect its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            bench.command(quick=quick),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return RunResult(
            name=bench.name,
            ok=False,
            seconds=time.perf_counter() - start,
            markdown="",
            error=f"timed out after {timeout:.0f} s",
        )
    seconds = time.perf_counter() - start
    markdown, summaries = parse_summaries(proc.stdout)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return RunResult(
            name=bench.name,
            ok=False,
            seconds=seconds,
            markdown=markdown,
            error=f"exit {proc.returncode}: {tail[-300:]}",
        )
    return RunResult(
        name=bench.name, ok=True, seconds=seconds, markdown=markdown, summaries=summaries
    )


def _select(only: Sequence[str]) -> list[Benchmark]:
    known = {b.name: b for b in BENCHMARKS}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise SystemExit(
            f"run_all: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return [known[n] for n in only] if only else list(BENCHMARKS)


def apply(
    text: str,
    results: Sequence[RunResult],
    *,
    quick: bool,
    date: str,
    header: str,
) -> str:
    """New file text: header, merged summary and every successful benchmark's block."""
    by_name = {b.name: b for b in BENCHMARKS}
    text = replace_block(text, "header", header, title="Run")
    data = load_data(block_content(text, "summary"))
    for r in results:
        if not r.ok:
            continue
        for metric, rec in r.summaries.items():
            data[metric] = {**rec, "date": date, "quick": quick, "bench": r.name}
    text = replace_block(text, "summary", render_summary(data), title="Summary against the targets")
    for r in results:
        if r.ok:
            bench = by_name[r.name]
            text = replace_block(
                text, r.name, section_markdown(bench, r, quick=quick, date=date), title=bench.title
            )
    return text


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None, *, runner: Callable[..., RunResult] = run_one) -> int:
    """Command-line entry point; ``runner`` is injectable for tests."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes where supported")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only these")
    parser.add_argument("--write", action="store_true", help="rewrite the measured parts of FILE")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="default: BENCHMARKS.md")
    parser.add_argument("--timeout", type=float, default=3600, help="per benchmark, seconds")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:12} {b.shown_command(quick=False)}")
        return 0
    selected = _select(args.only)
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = _load()
    start = time.perf_counter()
    results: list[RunResult] = []
    for bench in selected:
        print(f"run_all: {bench.name} ...", file=sys.stderr, flush=True)
        result = runner(bench, quick=args.quick, timeout=args.timeout)
        results.append(result)
        state = "ok" if result.ok else f"FAILED {result.error}"
        print(f"run_all: {bench.name} {state} in {result.seconds:.1f} s", file=sys.stderr)
    header = render_header(
        date=date,
        quick=args.quick,
        load_start=load_start,
        load_end=_load(),
        results=results,
        total_s=time.perf_counter() - start,
        only=args.only,
    )
    if args.write:
        # Read just before writing: other people edit the narrative meanwhile.
        text = args.file.read_text(encoding="utf-8")
        _write_atomic(args.file, apply(text, results, quick=args.quick, date=date, header=header))
        print(f"run_all: wrote {args.file}", file=sys.stderr)
    else:
        by_name = {b.name: b for b in BENCHMARKS}
        data: dict[str, dict[str, Any]] = {}
        for r in results:
            data.update(
                {k: {**v, "date": date, "quick": args.quick} for k, v in r.summaries.items()}
            )
        print(header)
        print(render_summary(data))
        for r in results:
            if r.ok:
                print(f"## {by_name[r.name].title}\n")
                print(section_markdown(by_name[r.name], r, quick=args.quick, date=date))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
