"""The CLI through its real entry point: config and ledger resolved as ``Meter()`` does."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faremeter import Meter, Usage

CLI = [sys.executable, "-m", "faremeter.cli"]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FAREMETER_")}
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def fill(url: str) -> None:
    meter = Meter(ledger=url, _register=False)
    with meter.trace("research", user_id="u1", workflow="w"):
        meter.record_llm("gpt-4o", Usage(input_tokens=1000, output_tokens=100), step="plan")
        meter.record_llm("no-such-model-zz", Usage(input_tokens=5, output_tokens=5), step="x")
    meter.close()


def test_version(tmp_path: Path) -> None:
    out = run("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("faremeter ")


def test_export_reads_the_ledger_named_in_faremeter_toml(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    fill(f"sqlite:///{db}")
    (tmp_path / "faremeter.toml").write_text(f'[ledger]\nurl = "sqlite:///{db}"\n')
    out = run("export", "--format", "csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["name"] for r in rows} == {"research", "gpt-4o", "no-such-model-zz"}
    unpriced = next(r for r in rows if r["name"] == "no-such-model-zz")
    assert unpriced["cost_usd"] == "" and unpriced["unpriced_reason"]
    priced = next(r for r in rows if r["name"] == "gpt-4o")
    assert priced["cost_usd"] == "0.0035000" or float(priced["cost_usd"]) == 0.0035


def test_config_env_var_and_jsonl(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    fill(f"sqlite:///{db}")
    cfg = tmp_path / "conf" / "fm.toml"
    cfg.parent.mkdir()
    cfg.write_text(f'[ledger]\nurl = "sqlite:///{db}"\n')
    out = run("export", "--format", "jsonl", "--where", "step=plan", cwd=tmp_path,
              env={"FAREMETER_CONFIG": str(cfg)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    [row] = [json.loads(line) for line in out.stdout.splitlines()]
    assert row["attributes"]["user_id"] == "u1" and row["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("export",), "no ledger at"),
        (("export", "--since", "yesterday"), "bad window"),
        (
            ("export", "--ledger", "postgresql://127.0.0.1:1/x"),
            "cannot reach the PostgreSQL ledger",
        ),
        (("export", "--where", "novalue"), "--where takes KEY=VALUE"),
    ],
)
def test_errors_are_one_line_before_any_output(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    if args[-1] == "novalue":
        fill(f"sqlite:///{tmp_path}/.faremeter/ledger.db")
    out = run(*args, cwd=tmp_path)
    assert out.returncode != 0
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def test_a_broken_config_is_an_error_not_ignored(tmp_path: Path) -> None:
    (tmp_path / "faremeter.toml").write_text("[ledger\nurl=")
    out = run("export", cwd=tmp_path)
    assert out.returncode != 0 and "faremeter.toml" in out.stderr


def test_report_and_trace_as_a_newcomer_uses_them(tmp_path: Path) -> None:
    fill(f"sqlite:///{tmp_path}/.faremeter/ledger.db")
    out = run("report", "--by", "step", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {r["key"] for r in report["rows"]} == {"plan", "x"}  # no "(none) $0" structure row
    unpriced = next(r for r in report["rows"] if r["key"] == "x")
    assert unpriced["cost"] == "0" and unpriced["unpriced"] == 1
    trace_id = report["top_traces"][0]["trace_id"]
    assert len(trace_id) == 32

    table = run("report", "--by", "step", cwd=tmp_path)
    assert trace_id in table.stdout, "trace ids are printed whole"
    assert "+?" in table.stdout, "a row with unpriced spans is marked, not shown as plain $0"

    tree = run("trace", trace_id[:7], cwd=tmp_path)
    assert tree.returncode == 0, tree.stderr
    assert f"trace {trace_id}" in tree.stdout and "step=plan" in tree.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "--by", "nonexistent_attr"), "known: user_id"),
        (("report", "--top", "-1"), "must be at least 1"),
        (("report", "--since", "soon"), "bad window"),
        (("trace", "ffff"), "no trace id starts with"),
        (("trace", "not-hex"), "expected hexadecimal"),
    ],
)
def test_report_and_trace_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    fill(f"sqlite:///{tmp_path}/.faremeter/ledger.db")
    out = run(*args, cwd=tmp_path)
    assert out.returncode != 0 and out.stdout == ""
    assert message in out.stderr, out.stderr


def test_readme_meter_and_a_bare_handler_agree(tmp_path: Path) -> None:
    code = (
        "import itertools\n"
        "from faremeter import Meter\n"
        "from faremeter_langchain import FaremeterCallbackHandler\n"
        "from langchain_core.language_models.fake_chat_models import GenericFakeChatModel\n"
        "from langchain_core.messages import AIMessage\n"
        "meter = Meter(ledger='memory')\n"
        "msg = AIMessage(content='hi', response_metadata={'model_name': 'gpt-4o-mini'},\n"
        "    usage_metadata={'input_tokens': 10, 'output_tokens': 5, 'total_tokens': 15})\n"
        "GenericFakeChatModel(messages=itertools.repeat(msg)).invoke(\n"
        "    'x', config={'callbacks': [FaremeterCallbackHandler()]})\n"
        "meter.flush()\n"
        "print(len(meter.ledger.spans()))\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("FAREMETER_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=base,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1", "the handler recorded into another meter than Meter()"
