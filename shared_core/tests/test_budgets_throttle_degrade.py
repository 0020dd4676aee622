"""throttle paces calls to fit the window; degrade fits calls to the money left."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from decimal import Decimal

import pytest

from faremeter.budgets import Budget, BudgetManager, FitRequest
from faremeter.errors import BudgetExceeded
from faremeter.pricing import PriceCatalog
from faremeter.testing import FakeClock

NS = 1_000_000_000
CENT = Decimal("0.01")
NOON = int(dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC).timestamp()) * NS
MIDNIGHT = NOON + 12 * 3600 * NS


def throttled(max_wait_s: float) -> tuple[BudgetManager, FakeClock, list[float]]:
    clock = FakeClock(start_ns=NOON, step_ns=0)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(round(seconds * NS))

    manager = BudgetManager(
        [Budget("daily", limit="10", window="day", action="throttle")],
        clock=clock,
        sleep=sleep,
        throttle_max_wait_s=max_wait_s,
    )
    manager.reserve(amount=Decimal("8.99")).settle(Decimal("8.99"))  # just under 90%
    return manager, clock, waits


def test_below_the_threshold_calls_never_wait() -> None:
    manager, _, waits = throttled(3600)
    assert waits == []
    assert manager.status()[0].spent == Decimal("8.99")


def test_past_90_percent_calls_are_spaced_so_the_projection_fits_the_day() -> None:
    manager, clock, waits = throttled(24 * 3600)
    times: list[int] = []
    while True:
        try:
            res = manager.reserve(amount=CENT)
        except BudgetExceeded:
            break
        times.append(clock())
        res.settle(CENT)
    assert len(times) == 101  # every remaining cent is spent ...
    assert manager.status()[0].spent == Decimal("10.00")
    # ... evenly over the rest of the day, not all at noon: the interval is
    # cost * time left / money left = 0.01 * 12 h / $1.01.
    interval = CENT * 12 * 3600 / Decimal("1.01")
    gaps = [(b - a) / NS for a, b in itertools.pairwise(times)]
    assert all(abs(Decimal(g) - interval) < Decimal("0.001") for g in gaps)
    assert times[-1] < MIDNIGHT
    assert MIDNIGHT - times[-1] <= int(interval * NS) + NS
    assert waits[0] == pytest.approx(float(interval))
    assert manager.health().throttled == 100


def test_a_call_whose_wait_exceeds_the_maximum_is_denied_and_releases() -> None:
    manager, _, _ = throttled(300)  # the interval is ~428 s
    first = manager.reserve(amount=CENT)  # the first paced call goes at once
    with pytest.raises(BudgetExceeded, match="paces calls") as info:
        manager.reserve(amount=CENT)
    assert info.value.reason == "throttled"
    row = manager.status()[0]
    assert row.reserved == CENT  # only the first call's money is held
    first.settle(CENT)
    assert manager.health().throttle_denials == 1


async def test_asyncio_tasks_wait_without_blocking_the_loop() -> None:
    clock = FakeClock(start_ns=NOON, step_ns=0)
    gate = asyncio.Event()
    waited: list[float] = []

    async def asleep(seconds: float) -> None:
        waited.append(seconds)
        await gate.wait()  # only another task can open it
        clock.advance(round(seconds * NS))

    manager = BudgetManager(
        [Budget("daily", limit="10", window="day", action="throttle")],
        clock=clock,
        asleep=asleep,
        throttle_max_wait_s=3600,
    )
    manager.reserve(amount=Decimal("8.99")).settle(Decimal("8.99"))
    (await manager.areserve(amount=CENT)).settle(CENT)  # first paced call: no wait
    pending = asyncio.create_task(manager.areserve(amount=CENT))
    other_ran: list[bool] = []

    async def other() -> None:
        other_ran.append(True)  # runs while the first task is waiting
        gate.set()

    await asyncio.wait_for(asyncio.gather(pending, other()), timeout=30)
    assert other_ran == [True]
    assert len(waited) == 1 and waited[0] > 400
    pending.result().settle(CENT)


async def test_cancelled_while_throttled_releases_the_reservation() -> None:
    clock = FakeClock(start_ns=NOON, step_ns=0)

    async def asleep(seconds: float) -> None:
        await asyncio.Event().wait()

    manager = BudgetManager(
        [Budget("daily", limit="10", window="day", action="throttle")],
        clock=clock,
        asleep=asleep,
        throttle_max_wait_s=3600,
    )
    manager.reserve(amount=Decimal("8.99")).settle(Decimal("8.99"))
    manager.reserve(amount=CENT).settle(CENT)
    task = asyncio.create_task(manager.areserve(amount=CENT))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert manager.status()[0].reserved == 0


# ---------------------------------------------------------------- degrade

MESSAGES = [{"role": "user", "content": "Write a haiku about budgets."}]


def degrading(limit: str, spent: str) -> BudgetManager:
    manager = BudgetManager([Budget("team", limit=limit, action="degrade")])
    manager.reserve(amount=Decimal(spent)).settle(Decimal(spent))
    return manager


def test_degrade_fits_max_tokens_to_the_money_left() -> None:
    catalog = PriceCatalog.default()
    manager = degrading("1", "0.995")  # $0.005 left; 4096 tokens of gpt-4o is ~$0.041
    res = manager.reserve_call(catalog=catalog, model="gpt-4o", messages=MESSAGES, max_tokens=4096)
    assert res.model == "gpt-4o"
    assert res.max_tokens is not None and 16 <= res.max_tokens < 4096
    assert res.amount is not None and res.amount <= Decimal("0.005")
    assert res.degraded is not None and "max_tokens=4096" in res.degraded
    assert manager.health().degraded == 1


def test_degrade_without_pressure_changes_nothing() -> None:
    manager = degrading("1", "0")
    res = manager.reserve_call(
        catalog=PriceCatalog.default(), model="gpt-4o", messages=MESSAGES, max_tokens=256
    )
    assert (res.model, res.max_tokens, res.degraded) == ("gpt-4o", 256, None)


def test_degrade_asks_the_fitter_for_a_cheaper_model() -> None:
    catalog = PriceCatalog.default()
    manager = degrading("1", "0.99995")  # $0.00005: gpt-4o cannot fit 16 tokens, mini can
    asked: list[FitRequest] = []

    def fit(request: FitRequest) -> tuple[str, int | None]:
        asked.append(request)
        return ("gpt-4o-mini", 32)

    res = manager.reserve_call(
        catalog=catalog, model="gpt-4o", messages=MESSAGES, max_tokens=1024, fit=fit
    )
    assert res.model == "gpt-4o-mini" and res.max_tokens == 32
    assert asked[0].available == Decimal("0.00005")
    assert asked[0].budget == "team"


def test_degrade_with_no_option_left_raises_partial() -> None:
    manager = degrading("1", "1")
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve_call(
            catalog=PriceCatalog.default(),
            model="gpt-4o",
            messages=MESSAGES,
            max_tokens=256,
            fit=lambda request: None,
        )
    assert info.value.partial
    assert info.value.available == 0


def test_deny_budgets_are_never_degraded() -> None:
    manager = BudgetManager([Budget("team", limit="1")])
    manager.reserve(amount=Decimal("0.995")).settle(Decimal("0.995"))
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve_call(
            catalog=PriceCatalog.default(), model="gpt-4o", messages=MESSAGES, max_tokens=4096
        )
    assert not info.value.partial


async def test_async_degrade_fits_like_the_sync_path() -> None:
    catalog = PriceCatalog.default()
    manager = degrading("1", "0.995")
    res = await manager.areserve_call(
        catalog=catalog, model="gpt-4o", messages=MESSAGES, max_tokens=4096
    )
    sync = degrading("1", "0.995").reserve_call(
        catalog=catalog, model="gpt-4o", messages=MESSAGES, max_tokens=4096
    )
    assert (res.model, res.max_tokens, res.amount) == (sync.model, sync.max_tokens, sync.amount)
    assert res.degraded is not None


def test_fitting_respects_a_tighter_deny_budget() -> None:
    catalog = PriceCatalog.default()
    manager = BudgetManager(
        [
            Budget("team", limit="1", action="degrade"),
            Budget("task", limit="0.003", window="trace"),
        ]
    )
    manager.reserve(amount=Decimal("0.995")).settle(Decimal("0.995"))
    res = manager.reserve_call(
        catalog=catalog, model="gpt-4o", messages=MESSAGES, max_tokens=4096, trace_id="t"
    )
    # $0.005 left for the team, but only $0.003 for the task: fitted to the task.
    assert res.amount is not None and res.amount <= Decimal("0.003")


def test_denied_tool_never_runs_its_body() -> None:
    from faremeter.pricing import ToolPrice

    catalog = PriceCatalog.default().with_overrides(
        tools={"web_search": ToolPrice.per_call("0.005")}
    )
    manager = BudgetManager([Budget("search", limit="0.01", scope={"tool": "web_search"})])
    ran: list[str] = []

    def search(query: str) -> None:
        res = manager.reserve_tool(catalog=catalog, name="web_search")
        ran.append(query)  # the body: only after the money is held
        res.settle(Decimal("0.005"))

    search("a")
    search("b")
    with pytest.raises(BudgetExceeded):
        search("c")
    assert ran == ["a", "b"]
    everything = BudgetManager([Budget("all", limit="1")])
    with pytest.raises(BudgetExceeded, match="cannot be priced"):
        everything.reserve_tool(catalog=catalog, name="unpriced_tool")
