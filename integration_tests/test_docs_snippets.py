"""Every ``python`` block in the READMEs and docs/*.md runs, unless it says why not.

The convention (also described in docs/testing.md):

* A fenced block whose info string is ``python`` (or ``py``) is **run**.
* A block is **not run** when the last non-blank line before its opening fence
  is an HTML comment ``<!-- not-run: reason -->`` — the reason is required
  (a sketch that needs your own graph, a real provider key, a server...).
  The comment is invisible on the rendered site.
* The blocks of one file run **in order, in one namespace** (a later block may
  use names an earlier one defined), in a fresh subprocess whose working
  directory is an empty temporary directory, with ``FAREMETER_LEDGER_URL=memory``,
  no ``FAREMETER_CONFIG``, LiteLLM's bundled price map, and the HTTP(S) proxy
  variables pointed at a closed port, so a client that honours them (httpx,
  requests, the OpenAI SDK) fails instead of reaching a provider.
  Code that needs a model uses the frameworks' fake models.
* Top-level ``await`` is allowed (as in a notebook or ``python -m asyncio``):
  such a block runs in its own ``asyncio.run``.
* Tracebacks name the Markdown file and the line inside it; a failing block
  does not stop the next ones, so one run lists every failing block.

Other languages (``bash``, ``console``, ``toml``, ``text``) are not run here;
the ``toml`` blocks of docs/configuration.md are validated by
``test_docs_configuration.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _docs_blocks import ROOT, doc_files, extract_blocks

# Blocks in pages this test does not own that failed when it was written.
# Each entry is (file, first line of the failing block) -> what failed. The
# test for that file is an expected failure; once the page is fixed (or the
# block is marked not-run), the strict xfail turns into a failure saying so:
# then delete the entry.
KNOWN_FAILING: dict[str, str] = {}


# Runs in the subprocess: exec each block in one namespace, padded with blank
# lines so tracebacks point at the Markdown line.
_HARNESS = r"""
import ast, asyncio, inspect, json, sys, traceback
spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
namespace = {"__name__": "__main__"}
failed = []
for block in spec["blocks"]:
    source = "\n" * (block["line"] - 1) + block["code"]
    try:
        code = compile(source, spec["path"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except BaseException:
        traceback.print_exc()
        print(f"FAILED BLOCK: {spec['path']}:{block['line']}", file=sys.stderr)
        failed.append(block["line"])
try:
    import faremeter
    faremeter.get_meter().flush()
except Exception:
    traceback.print_exc()
    print(f"FAILED: flushing the default meter after {spec['path']}", file=sys.stderr)
    failed.append(0)
sys.exit(1 if failed else 0)
"""


def _run_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAREMETER_")}
    closed = "http://127.0.0.1:9"
    env.update(
        FAREMETER_LEDGER_URL="memory",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        HTTP_PROXY=closed,
        HTTPS_PROXY=closed,
        http_proxy=closed,
        https_proxy=closed,
        NO_PROXY="",
        no_proxy="",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _params() -> list[object]:
    params: list[object] = []
    for path in doc_files():
        rel = path.relative_to(ROOT).as_posix()
        marks = (
            [pytest.mark.xfail(strict=True, reason=KNOWN_FAILING[rel])]
            if rel in KNOWN_FAILING
            else []
        )
        params.append(pytest.param(rel, id=rel, marks=marks))
    return params


@pytest.mark.parametrize("rel", _params())
def test_python_blocks_run(rel: str, tmp_path: Path) -> None:
    blocks = [b for b in extract_blocks((ROOT / rel).read_text(encoding="utf-8")) if b.runnable]
    if not blocks:
        pytest.skip(f"{rel} has no runnable python block")
    spec = tmp_path / "blocks.json"
    spec.write_text(
        json.dumps(
            {
                "path": str(ROOT / rel),
                "blocks": [{"line": b.line, "code": b.code} for b in blocks],
            }
        ),
        encoding="utf-8",
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", _HARNESS, str(spec)],
        cwd=cwd,
        env=_run_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"a python block of {rel} failed (mark it <!-- not-run: reason --> if it is not meant "
        f"to run):\n{result.stderr[-12000:]}"
    )


# -- the extractor itself -------------------------------------------------------------


def test_extract_runs_python_and_honours_not_run_marker() -> None:
    markdown = "\n".join(
        [
            "# Title",  # 1
            "```python",  # 2
            "x = 1",  # 3
            "```",  # 4
            "<!-- not-run: needs a provider key -->",  # 5
            "",  # 6
            "```python",  # 7
            "call_the_provider()",  # 8
            "```",  # 9
            "```bash",  # 10
            "echo hi",  # 11
            "```",  # 12
            "1. a list item:",  # 13
            "",  # 14
            "   ```py",  # 15
            "   if x:",  # 16
            "       y = 2",  # 17
            "   ```",  # 18
        ]
    )
    blocks = extract_blocks(markdown)
    assert [(b.line, b.language, b.runnable) for b in blocks] == [
        (3, "python", True),
        (8, "python", False),
        (11, "bash", False),
        (16, "py", True),
    ]
    assert blocks[1].not_run == "needs a provider key"
    assert blocks[3].code == "if x:\n    y = 2\n"


def test_marker_applies_only_to_the_next_block() -> None:
    markdown = "<!-- not-run: sketch -->\n```python\na\n```\ntext\n```python\nb\n```\n"
    first, second = extract_blocks(markdown)
    assert first.not_run == "sketch"
    assert second.not_run is None


def test_longer_fence_may_contain_a_shorter_one() -> None:
    markdown = "````markdown\n```python\nnot code\n```\n````\n```python\nz = 3\n```\n"
    blocks = extract_blocks(markdown)
    assert [(b.language, b.code) for b in blocks] == [
        ("markdown", "```python\nnot code\n```\n"),
        ("python", "z = 3\n"),
    ]


@pytest.mark.parametrize(
    "markdown",
    ["```python\nx = 1\n", "<!-- not-run: -->\n```python\nx\n```\n"],
    ids=["unclosed", "marker-without-reason"],
)
def test_extract_rejects_ambiguous_markdown(markdown: str) -> None:
    with pytest.raises(ValueError):
        extract_blocks(markdown)


def test_every_doc_parses() -> None:
    for path in doc_files():
        extract_blocks(path.read_text(encoding="utf-8"))  # raises on an unclosed fence


def test_a_failing_block_is_reported_at_its_markdown_line(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text("intro\n\n```python\nok = 1\n\nraise RuntimeError('boom')\n```\n")
    blocks = [b for b in extract_blocks(doc.read_text()) if b.runnable]
    spec = tmp_path / "blocks.json"
    spec.write_text(
        json.dumps({"path": str(doc), "blocks": [{"line": b.line, "code": b.code} for b in blocks]})
    )
    result = subprocess.run(
        [sys.executable, "-c", _HARNESS, str(spec)],
        cwd=tmp_path,
        env=_run_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f'File "{doc}", line 6' in result.stderr
    assert f"FAILED BLOCK: {doc}:4" in result.stderr
