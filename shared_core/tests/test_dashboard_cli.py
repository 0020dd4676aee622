"""``faremeter dashboard``: options, the ledger it opens, and the missing-extra message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("starlette", reason="the dashboard extra (starlette) is not installed")

from faremeter.cli import build_parser, main
from faremeter.dashboard.server import DashboardServer
from faremeter.meter import Meter
from faremeter.usage import Usage


def test_options_and_defaults() -> None:
    args = build_parser().parse_args(["dashboard"])
    assert (args.host, args.port, args.no_open, args.ledger, args.config) == (
        "127.0.0.1", 8765, False, None, None,
    )  # fmt: skip
    args = build_parser().parse_args(
        ["dashboard", "--ledger", "memory", "--port", "0", "--host", "0.0.0.0", "--no-open"]
    )
    assert (args.ledger, args.port, args.host, args.no_open) == ("memory", 0, "0.0.0.0", True)


def test_serves_the_given_ledger_until_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    meter = Meter(ledger=url)
    with meter.trace("job", workflow="w"):
        meter.record_llm("gpt-4o", Usage(input_tokens=1_000, output_tokens=100))
    meter.close()
    seen: dict[str, Any] = {}

    def serve_once(self: DashboardServer) -> None:
        # Instead of blocking: answer one real request on the bound socket, then stop.
        self.start()
        seen["ticker"] = httpx.get(f"{self.url}/api/ticker", timeout=10).json()
        self.stop()

    monkeypatch.setattr(DashboardServer, "serve_forever", serve_once)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    assert main(["dashboard", "--ledger", url, "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "faremeter dashboard on http://127.0.0.1:" in out
    assert seen["ticker"]["total"] == "0.0035" and seen["ticker"]["spans"] == 2
    assert len(opened) == 1 and opened[0].startswith("http://127.0.0.1:")


def test_missing_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    assert main(["dashboard", "--ledger", "memory", "--no-open"]) == 2
    assert "pip install 'faremeter[dashboard]'" in capsys.readouterr().err


def test_busy_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    meter = Meter(ledger="memory")
    with DashboardServer(meter) as taken:
        code = main(["dashboard", "--ledger", "memory", "--no-open", "--port", str(taken.port)])
    meter.close()
    assert code == 2
    assert "in use" in capsys.readouterr().err.lower()
