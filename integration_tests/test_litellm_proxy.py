"""The real LiteLLM proxy records into a shared PostgreSQL ledger.

The proxy (``litellm[proxy]``, a dev dependency) runs as a subprocess on a
free loopback port with the configuration ``docs/litellm.md`` documents:
``litellm_settings.callbacks: faremeter_litellm.proxy.handler`` and
``FAREMETER_LEDGER_URL`` pointing at this test's own PostgreSQL schema. Its
model is served by LiteLLM's ``mock_response``, so nothing leaves the
machine. Three chat completions go through it over HTTP; after a graceful
SIGTERM the ledger must hold three priced, attributed ``llm`` spans.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from faremeter.ledger import Ledger
from faremeter.pricing import PriceCatalog
from faremeter.spans import SpanKind, SpanStatus
from faremeter.usage import Usage

pytest.importorskip("fastapi", reason="needs litellm[proxy] (the workspace dev group has it)")
pytest.importorskip("uvicorn", reason="needs litellm[proxy] (the workspace dev group has it)")

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
REQUEST_TIMEOUT_S = 15.0

# Exactly what docs/litellm.md shows (the model entry is this test's mock).
CONFIG = """\
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: sk-fake
      mock_response: "hi"
litellm_settings:
  callbacks: faremeter_litellm.proxy.handler
"""

# What each request attributes its call to, and what the span must then carry.
REQUESTS: list[tuple[dict[str, object], dict[str, object]]] = [
    (
        {"user": "end-1", "metadata": {"user_id": "u-1", "team": "search"}},
        {"user_id": "u-1", "team": "search", "end_user": "end-1"},
    ),
    (
        {"user": "end-2", "metadata": {"user_id": "u-2", "team": "search", "workflow": "rag"}},
        {"user_id": "u-2", "team": "search", "end_user": "end-2", "workflow": "rag"},
    ),
    (
        {"metadata": {"team": "billing", "faremeter": {"customer": "acme"}}},
        # No user named: the master key's own (placeholder) user id.
        {"user_id": "default_user_id", "team": "billing", "customer": "acme"},
    ),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _litellm_cli() -> list[str]:
    script = Path(sys.executable).with_name("litellm")
    if script.exists():
        return [str(script)]
    # The console script's entry point, for environments without bin/ scripts.
    return [sys.executable, "-c", "from litellm import run_server; run_server()"]


def _env(ledger_url: str, master_key: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FAREMETER_", "LITELLM_", "DATABASE_"))
        and k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    env.update(
        FAREMETER_LEDGER_URL=ledger_url,
        # 1.106 refuses to start without a master key (no DATABASE_URL: only it is valid).
        LITELLM_MASTER_KEY=master_key,
        # Otherwise LiteLLM fetches its price map from GitHub at import (retries offline).
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"LiteLLM proxy exited with {proc.returncode} on startup:\n{_tail(log)}")
        try:
            if client.get(f"{base}/health/liveliness", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"LiteLLM proxy not ready after {READY_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM (faremeter flushes on it), then SIGKILL after a bounded wait."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


def test_docs_show_the_config_this_test_runs() -> None:
    docs = (ROOT / "docs" / "litellm.md").read_text()
    assert f"```yaml\n{CONFIG}```" in docs


@pytest.mark.postgres
@pytest.mark.slow
def test_litellm_proxy_records_into_shared_postgres_ledger(
    postgres_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    log = tmp_path / "proxy.log"
    port = _free_port()
    base = f"http://{HOST}:{port}"
    master_key = f"sk-{secrets.token_hex(32)}"

    responses: list[tuple[str, dict[str, object], dict[str, object]]] = []
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_litellm_cli(), "--config", str(config), "--host", HOST, "--port", str(port)],
            cwd=tmp_path,
            env=_env(postgres_url, master_key),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_S) as client:
                _wait_ready(client, proc, base, log)
                for extra, expected in REQUESTS:
                    body = {
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": "hello"}],
                        **extra,
                    }
                    resp = client.post(
                        f"{base}/v1/chat/completions",
                        json=body,
                        headers={"Authorization": f"Bearer {master_key}"},
                    )
                    assert resp.status_code == 200, f"{resp.status_code} {resp.text}\n{_tail(log)}"
                    call_id = resp.headers.get("x-litellm-call-id")
                    assert call_id, f"no x-litellm-call-id header: {dict(resp.headers)}"
                    responses.append((call_id, resp.json()["usage"], expected))
        finally:
            code = _stop(proc)
    assert code is not None, f"proxy ignored SIGTERM for {STOP_TIMEOUT_S} s:\n{_tail(log)}"
    # faremeter's hooks log "faremeter: ..." when they fail (LiteLLM would hide it).
    assert "faremeter:" not in log.read_text(errors="replace"), _tail(log)

    ledger = Ledger.from_url(postgres_url)
    try:
        spans = ledger.spans(kind=SpanKind.LLM)
    finally:
        ledger.close()
    by_call = {s.attributes.get("litellm_call_id"): s for s in spans}
    assert len(spans) == 3 and set(by_call) == {c for c, _, _ in responses}, spans

    catalog = PriceCatalog.default()
    total = Decimal(0)
    for call_id, reported, expected in responses:
        span = by_call[call_id]
        usage = Usage(
            input_tokens=int(reported["prompt_tokens"]),  # type: ignore[arg-type]
            output_tokens=int(reported["completion_tokens"]),  # type: ignore[arg-type]
        )
        assert usage.total_tokens == reported["total_tokens"] > 0
        assert span.status is SpanStatus.OK
        assert span.model == "gpt-4o-mini" and span.provider == "openai"
        assert span.usage is not None and span.usage.source == "reported"
        assert (span.usage.input_tokens, span.usage.output_tokens) == (
            usage.input_tokens,
            usage.output_tokens,
        )
        want = catalog.cost("openai/gpt-4o-mini", usage).total
        assert want is not None and want > 0
        assert span.cost.total == want
        for key, value in expected.items():
            assert span.attributes.get(key) == value, (key, dict(span.attributes))
        # Key material the proxy puts into metadata never reaches the ledger.
        assert master_key not in repr(span.attributes)
        total += want
    assert sum((s.cost.total or Decimal(0)) for s in spans) == total


def test_a_proxy_request_over_budget_gets_a_429_naming_the_budget(tmp_path: Path) -> None:
    """Budgets from faremeter.toml are enforced before the proxy routes the request."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    toml = tmp_path / "faremeter.toml"
    # Team "search" may spend $0.005 a month; one reply capped at 1,000 tokens fits
    # (≈ $0.0006 on gpt-4o-mini), one allowed to run to the model's 16,384-token maximum
    # (≈ $0.0098) does not.
    toml.write_text(
        '[[budgets]]\nname = "search-monthly"\nlimit = "0.005"\nwindow = "month"\n'
        'scope = { team = "search" }\n'
    )
    log = tmp_path / "proxy.log"
    port = _free_port()
    base = f"http://{HOST}:{port}"
    master_key = f"sk-{secrets.token_hex(32)}"
    env = _env("memory", master_key)
    env["FAREMETER_CONFIG"] = str(toml)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_litellm_cli(), "--config", str(config), "--host", HOST, "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_S) as client:
                _wait_ready(client, proc, base, log)

                def ask(max_tokens: int | None) -> httpx.Response:
                    body: dict[str, object] = {
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": "hello"}],
                        "metadata": {"team": "search"},
                    }
                    if max_tokens is not None:
                        body["max_tokens"] = max_tokens
                    return client.post(
                        f"{base}/v1/chat/completions",
                        json=body,
                        headers={"Authorization": f"Bearer {master_key}"},
                    )

                fits = ask(1000)
                assert fits.status_code == 200, f"{fits.status_code} {fits.text}\n{_tail(log)}"
                refused = ask(None)  # worst case: the model's full output cap
                assert refused.status_code == 429, f"{refused.status_code} {refused.text}"
                assert "search-monthly" in refused.text
        finally:
            _stop(proc)
