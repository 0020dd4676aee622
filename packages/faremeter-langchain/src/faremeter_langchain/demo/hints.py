"""The "Next:" commands, typed the way this demo was started.

A hint is only useful if it runs when pasted. Started by ``uv run [flags]
faremeter demo``, the next command must reuse those flags (``uv run`` without
``--no-dev --extra demo`` would re-sync a different environment); started by
an installed ``faremeter`` script, it is that script; started as ``python -m
faremeter.cli``, that form.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path

__all__ = ["README_PREFIX", "command_prefix", "next_commands"]

README_PREFIX: tuple[str, ...] = (
    "uv", "run", "--package", "faremeter", "--no-dev", "--extra", "demo", "faremeter",
)  # fmt: skip
"""The README's way to run faremeter in its light demo environment."""


def _parent_cmdline() -> list[str] | None:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:  # not Linux, or not allowed
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _uv_prefix(parent: Sequence[str]) -> list[str] | None:
    """``uv run <flags> faremeter`` from the parent ``uv`` process's command line."""
    if not parent or Path(parent[0]).name not in ("uv", "uv.exe") or "run" not in parent:
        return None
    start = parent.index("run")
    for i in range(start + 1, len(parent) - 1):
        if Path(parent[i]).name == "faremeter" and parent[i + 1] == "demo":
            return ["uv", *parent[1 : i + 1]]
    return None


def _same_program(name: str, path: str) -> bool:
    # Absolute, not resolved: a venv's python is a symlink to the base interpreter,
    # which does not have the venv's packages.
    found = shutil.which(name)
    return found is not None and Path(found).absolute() == Path(path).absolute()


def command_prefix(
    *,
    env: Mapping[str, str] | None = None,
    argv0: str | None = None,
    parent: Sequence[str] | None = None,
) -> list[str]:
    """How to call ``faremeter`` again, as this process was called.

    Args:
        env: Environment (default ``os.environ``); ``uv run`` marks its children.
        argv0: This program's ``sys.argv[0]``.
        parent: The parent process's command line (default: read from ``/proc``).
    """
    env = os.environ if env is None else env
    argv0 = sys.argv[0] if argv0 is None else argv0
    if "UV_RUN_RECURSION_DEPTH" in env or "UV" in env:
        cmdline = parent if parent is not None else _parent_cmdline()
        if cmdline is None:  # no /proc to read (macOS, Windows): assume the README's line
            if Path(argv0).stem == "faremeter":
                return list(README_PREFIX)
        else:
            found = _uv_prefix(cmdline)
            if found is not None:
                return found
    if Path(argv0).name in ("faremeter", "faremeter.exe"):
        return ["faremeter"] if _same_program("faremeter", argv0) else [argv0]
    python = Path(sys.executable).name
    exe = python if _same_program(python, sys.executable) else sys.executable
    return [exe, "-m", "faremeter.cli"]


def _dashboard_ready() -> bool:
    return find_spec("starlette") is not None and find_spec("uvicorn") is not None


def next_commands(
    prefix: Sequence[str], *, trace_id: str | None, ledger: str | None
) -> list[tuple[str, str]]:
    """``(command line, what it shows)`` for report, trace, suggest and dashboard.

    Args:
        prefix: From :func:`command_prefix`.
        trace_id: The trace to open (the most expensive one).
        ledger: ``--ledger`` to pass (when the demo was not on the default ledger).
    """
    tail = ["--ledger", ledger] if ledger else []
    out = [(shlex.join([*prefix, "report", "--by", "step", *tail]), "cost per step, p50/p90/p99")]
    if trace_id is not None:
        out.append(
            (shlex.join([*prefix, "trace", trace_id, *tail]), "the priciest task, as a tree")
        )
    out.append((shlex.join([*prefix, "suggest", *tail]), "what to change, largest saving first"))
    dash = list(prefix)
    note = "live web dashboard"
    if not _dashboard_ready():
        if dash[:2] == ["uv", "run"] and "--extra" in dash:
            dash[dash.index("--extra") : dash.index("--extra")] = ["--extra", "dashboard"]
        else:
            note += " (first: pip install 'faremeter[dashboard]')"
    out.append((shlex.join([*dash, "dashboard", *tail]), note))
    return out
