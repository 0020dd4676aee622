"""A circuit breaker shared by two processes through real Redis.

Each worker process runs its own FallbackChain with a RedisCircuitBreaker on
the same key prefix; the test drives both over stdin/stdout, telling each what
time it is (a fake clock: nothing here depends on the wall clock or on thread
scheduling).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

WORKER = textwrap.dedent(
    """
    import json, sys
    from faremeter.fallback import FallbackChain, RetryPolicy
    from faremeter.fallback.redis_breaker import RedisCircuitBreaker

    url, prefix = sys.argv[1], sys.argv[2]
    now = [0.0]
    clock = lambda: now[0]
    breaker = RedisCircuitBreaker(
        url, prefix=prefix, failure_threshold=2, window_s=60, cooldown_s=30, clock=clock
    )

    class InternalServerError(Exception):
        status_code = 500

    state = {"down": set(), "calls": []}

    def provider(model):
        state["calls"].append(model)
        if model in state["down"]:
            raise InternalServerError(model + " is down")
        return "answer from " + model

    chain = FallbackChain(
        ["primary", "backup"], breaker=breaker, retry=RetryPolicy(retries={}),
        clock=clock, sleep=lambda s: None,
    )
    for line in sys.stdin:
        cmd = json.loads(line)
        now[0] = cmd["now"]
        state["down"] = set(cmd.get("down", ()))
        state["calls"] = []
        if cmd["op"] == "call":
            out = {"result": chain.call(provider), "calls": state["calls"]}
        else:
            out = {"allow": breaker.allow("primary")}
        out["state"] = str(breaker.state("primary"))
        print(json.dumps(out), flush=True)
    """
)


class Worker:
    def __init__(self, url: str, prefix: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, url, prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "worker exited"
        return json.loads(line)

    def ask(self, **cmd: Any) -> dict[str, Any]:
        self.send(**cmd)
        return self.read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def workers(redis_url: str) -> Iterator[tuple[Worker, Worker, str]]:
    prefix = f"faremeter-test:breaker:{uuid.uuid4().hex}"
    one, two = Worker(redis_url, prefix), Worker(redis_url, prefix)
    try:
        yield one, two, prefix
    finally:
        one.close()
        two.close()
        import redis

        client = redis.Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
        pattern = f"{prefix}:*"
        keys: list[Any] = list(client.scan_iter(pattern))  # pyright: ignore[reportUnknownMemberType,reportUnknownArgumentType]
        if keys:
            client.delete(*keys)


@pytest.mark.redis
def test_two_processes_share_one_breaker(
    workers: tuple[Worker, Worker, str], redis_url: str
) -> None:
    one, two, prefix = workers
    down = ["primary"]

    # One failure in each process: two failures fleet-wide open the breaker.
    assert one.ask(op="call", now=0, down=down)["calls"] == ["primary", "backup"]
    r = two.ask(op="call", now=1, down=down)
    assert r["calls"] == ["primary", "backup"] and r["state"] == "open"

    # Both processes now skip primary without trying it.
    assert one.ask(op="call", now=2, down=down)["calls"] == ["backup"]
    assert two.ask(op="call", now=3, down=down)["calls"] == ["backup"]

    # Keys expire on their own.
    import redis

    client = redis.Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
    ttl: Any = client.pttl(f"{prefix}:{{primary}}:state")
    assert ttl > 0

    # After the cooldown (open until 31): one probe, fleet-wide. It fails: re-opened.
    assert one.ask(op="call", now=32, down=down)["calls"] == ["primary", "backup"]
    assert two.ask(op="call", now=33, down=down)["calls"] == ["backup"]

    # Next cooldown over (open until 62), primary recovered: the probe closes it for all.
    r = two.ask(op="call", now=63, down=[])
    assert r["calls"] == ["primary"] and r["state"] == "closed"
    assert one.ask(op="call", now=64, down=[])["calls"] == ["primary"]


@pytest.mark.redis
def test_exactly_one_probe_when_both_ask_at_once(workers: tuple[Worker, Worker, str]) -> None:
    one, two, _ = workers
    one.ask(op="call", now=0, down=["primary"])
    two.ask(op="call", now=0, down=["primary"])
    # Both ask for the probe in the same instant (open until 30).
    one.send(op="allow", now=31)
    two.send(op="allow", now=31)
    answers = [one.read()["allow"], two.read()["allow"]]
    assert sorted(answers) == [False, True]
    # Later callers are still skipped while the probe holds its lease.
    assert one.ask(op="allow", now=32)["allow"] is False


@pytest.mark.redis
def test_failures_outside_the_window_do_not_open(redis_url: str) -> None:
    from faremeter.fallback import BreakerState
    from faremeter.fallback.redis_breaker import RedisCircuitBreaker

    now = [0.0]
    prefix = f"faremeter-test:breaker:{uuid.uuid4().hex}"
    breaker = RedisCircuitBreaker(
        redis_url, prefix=prefix, failure_threshold=2, window_s=10, clock=lambda: now[0]
    )
    try:
        breaker.record_failure("m")
        now[0] = 11.0
        breaker.record_failure("m")
        assert breaker.state("m") is BreakerState.CLOSED
        breaker.record_failure("m")
        assert breaker.state("m") is BreakerState.OPEN
        breaker.reset("m")
        assert breaker.state("m") is BreakerState.CLOSED
    finally:
        breaker.reset("m")


def test_redis_down_fails_open_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    import redis

    from faremeter.fallback import FallbackChain
    from faremeter.fallback.redis_breaker import RedisCircuitBreaker

    # Port 1 refuses connections at once: no wall-clock wait involved.
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    breaker = RedisCircuitBreaker(client, clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, logger="faremeter"):
        assert breaker.allow("m") is True
        breaker.record_failure("m")
        chain = FallbackChain(["m"], breaker=breaker)
        assert chain.call(lambda model: f"ok {model}") == "ok m"
    assert "circuit breaker store unreachable" in caplog.text
    closed = RedisCircuitBreaker(client, clock=lambda: 0.0, fail_open=False)
    assert closed.allow("m") is False
