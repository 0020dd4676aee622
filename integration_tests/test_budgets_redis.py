"""Budgets on real Redis: 4 processes share one limit; Redis dying mid-run.

The fleet test uses the shared Redis (``redis_url`` fixture, skipped when it
is down) under a key prefix of its own. The outage tests start a private
``redis-server`` on a free port, so they can pause and kill it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from _budget_procs import run_workers

from faremeter.budgets import Budget, BudgetManager
from faremeter.errors import BudgetExceeded

FIXED_NS = 1_796_126_400_000_000_000
CENT = Decimal("0.01")


_USED_PREFIXES: list[tuple[str, str]] = []


def prefixed(redis_url: str) -> str:
    """A store URL under a fresh key prefix (its keys are deleted after the test)."""
    prefix = f"fmtest:{uuid.uuid4().hex}:"
    _USED_PREFIXES.append((redis_url, prefix))
    return f"{redis_url}?prefix={prefix}"


@pytest.fixture(autouse=True)
def _delete_test_keys() -> Iterator[None]:
    yield
    while _USED_PREFIXES:
        url, prefix = _USED_PREFIXES.pop()
        try:
            import importlib

            client: Any = importlib.import_module("redis").Redis.from_url(url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        except Exception:  # the private server of an outage test may be gone
            pass


def test_four_processes_on_redis_run_exactly_100_calls(redis_url: str, tmp_path: Path) -> None:
    url = prefixed(redis_url)
    results = run_workers(url, procs=4, calls=50, directory=tmp_path)
    assert sum(r["ran"] for r in results) == 100
    assert sum(r["denied"] for r in results) == 100
    manager = BudgetManager(
        [Budget("fleet-cap", limit="1.00", window="day")], store=url, clock=lambda: FIXED_NS
    )
    [row] = manager.status()
    assert (row.spent, row.reserved) == (Decimal("1.00"), Decimal(0))


def test_redis_keys_expire_with_their_window(redis_url: str) -> None:
    import importlib

    redis: Any = importlib.import_module("redis")  # untyped client calls in this test only
    url = prefixed(redis_url)
    manager = BudgetManager(
        [Budget("daily", limit="1", window="day", per="user_id")],
        store=url,
        clock=lambda: FIXED_NS,  # noon: 12 h left in the day
    )
    held = manager.reserve(attributes={"user_id": "u1"}, amount=CENT)
    manager.reserve(attributes={"user_id": "u1"}, amount=CENT).settle(CENT)
    client: Any = redis.Redis.from_url(redis_url)
    prefix = url.split("prefix=", 1)[1]
    keys: list[bytes] = sorted(client.scan_iter(match=f"{prefix}*"))
    assert [k.decode().removeprefix(prefix) for k in keys] == [
        "daily:u1:d2026-12-01:r",  # in flight
        "daily:u1:d2026-12-01:s",  # spent
    ]
    for key in keys:
        ttl = int(client.ttl(key))
        assert 12 * 3600 <= ttl <= 12 * 3600 + 3600 + 1  # the rest of the day + 1 h grace
    assert int(client.get(keys[1])) == 10_000_000  # $0.01 in nano-dollars
    held.settle(CENT)
    assert not client.exists(keys[0])  # nothing in flight: the counter is gone
    keys = list(client.scan_iter(match=f"{prefix}*"))
    client.delete(*keys)


def test_redis_atomic_across_budgets_and_status(redis_url: str) -> None:
    manager = BudgetManager(
        [
            Budget("team", limit="10", scope={"team": "sales"}),
            Budget("user", limit="0.015", per="user_id", window="day"),
        ],
        store=prefixed(redis_url),
        clock=lambda: FIXED_NS,
    )
    attrs = {"team": "sales", "user_id": "u1"}
    manager.reserve(attributes=attrs, amount=CENT).settle(CENT)
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(attributes=attrs, amount=CENT)
    assert info.value.budget == "user"
    rows = {(r.budget, r.subject): r for r in manager.status()}
    assert rows[("team", None)].spent == CENT
    assert rows[("user", "u1")].spent == CENT
    assert manager.headroom(attrs) == Decimal("0.005")


# ---------------------------------------------------------------- a private Redis
# (the `private_redis` fixture lives in integration_tests/conftest.py)


def _manager(url: str, fail: str) -> BudgetManager:
    return BudgetManager(
        [Budget("cap", limit="1")],
        store=url,
        clock=lambda: FIXED_NS,
        fail=fail,  # type: ignore[arg-type]
        store_timeout_s=2.0,  # a killed server fails at once; a loaded host must not
    )


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_redis_killed_mid_run_follows_the_fail_policy(
    private_redis: tuple[str, subprocess.Popen[bytes]], fail: str
) -> None:
    url, proc = private_redis
    manager = _manager(url, fail)
    manager.reserve(amount=CENT).settle(CENT)
    in_flight = manager.reserve(amount=CENT)
    proc.kill()
    proc.wait()
    if fail == "open":
        res = manager.reserve(amount=CENT)
        assert not res.enforced
        res.settle(CENT)
        assert manager.health().fail_open_passes == 1
    else:
        with pytest.raises(BudgetExceeded) as info:
            manager.reserve(amount=CENT)
        assert info.value.reason == "store unavailable"
        assert manager.health().fail_closed_denials == 1
    in_flight.settle(CENT)  # cannot be written: counted, never raised
    health = manager.health()
    assert health.store_failures == 1
    assert health.settle_failures == 1
    assert manager.headroom() is None


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_redis_that_stops_answering_costs_one_timeout(
    private_redis: tuple[str, subprocess.Popen[bytes]], fail: str
) -> None:
    url, proc = private_redis
    manager = _manager(url, fail)
    manager.reserve(amount=CENT).settle(CENT)  # connection established
    os.kill(proc.pid, signal.SIGSTOP)  # the server hangs: connected, silent
    try:
        if fail == "open":
            assert not manager.reserve(amount=CENT).enforced
        else:
            with pytest.raises(BudgetExceeded, match="store is unavailable"):
                manager.reserve(amount=CENT)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert manager.health().store_failures == 1
    # Once Redis answers again, enforcement resumes on the same manager.
    res = manager.reserve(amount=CENT)
    assert res.enforced
    res.settle(CENT)
    assert manager.status()[0].spent == Decimal("0.02")


# ---------------------------------------------------------------- parity with the in-process store

_amounts = st.decimals(min_value=Decimal(0), max_value=Decimal("0.4"), places=6)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), _amounts, st.sampled_from(["a", "b"])),
        st.tuples(st.just("settle"), st.integers(0, 150), st.integers(0, 20)),
        st.tuples(st.just("release"), st.integers(0, 0), st.integers(0, 20)),
        st.tuples(st.just("tick"), st.integers(1, 40), st.integers(0, 0)),
    ),
    max_size=40,
)


def _budgets() -> list[Budget]:
    return [
        Budget("user", limit="1", per="user_id", window="day"),
        Budget("hourly", limit="1.5", window=dt.timedelta(hours=1)),
        Budget("watch", limit="0.5", action="warn"),
    ]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=_ops)
def test_redis_lua_scripts_match_the_in_process_store(
    redis_url: str, sequence: list[tuple[str, Any, Any]]
) -> None:
    now = [FIXED_NS]
    memory = BudgetManager(_budgets(), clock=lambda: now[0], sinks=[])
    remote = BudgetManager(_budgets(), store=prefixed(redis_url), clock=lambda: now[0], sinks=[])
    held: list[tuple[Any, Any]] = []
    for op, x, y in sequence:
        if op == "tick":
            now[0] += int(x) * 60 * 1_000_000_000  # minutes: buckets roll, the hour slides
            continue
        if op == "reserve":
            outcomes: list[Any] = []
            for manager in (memory, remote):
                try:
                    outcomes.append(manager.reserve(attributes={"user_id": y}, amount=x))
                except BudgetExceeded as exc:
                    outcomes.append((exc.budget, exc.spent, exc.reserved))
            if isinstance(outcomes[0], tuple):
                assert outcomes[0] == outcomes[1]
            else:
                assert not isinstance(outcomes[1], tuple)
                held.append((outcomes[0], outcomes[1]))
        elif held:
            pair = held.pop(int(y) % len(held))
            for res in pair:
                if op == "settle":
                    res.settle((res.amount * int(x) / 100).quantize(Decimal("0.000001")))
                else:
                    res.release()
        mine = {(r.budget, r.subject): (r.spent, r.reserved) for r in memory.status()}
        theirs = {(r.budget, r.subject): (r.spent, r.reserved) for r in remote.status()}
        assert {k: v for k, v in theirs.items() if any(v)} == {
            k: v for k, v in mine.items() if any(v)
        }
    for pair in held:
        for res in pair:
            res.release()
    remote.close()
