"""BudgetManager: reserve/settle, concurrency, policies, per-user windows, status and health."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from faremeter.alerts import Alert, CallbackSink
from faremeter.budgets import Budget, BudgetManager
from faremeter.budgets.stores import Check, ReserveResult, StoreUnavailable
from faremeter.errors import BudgetExceeded
from faremeter.testing import FakeClock

NS = 1_000_000_000
CENT = Decimal("0.01")


def at(text: str) -> FakeClock:
    """A clock frozen at ``text`` (advanced only by the test)."""
    start = int(dt.datetime.fromisoformat(text).timestamp()) * NS
    return FakeClock(start_ns=start, step_ns=0)


def spent_of(manager: BudgetManager, budget: str, subject: str | None = None) -> Decimal:
    rows = [r for r in manager.status() if r.budget == budget and r.subject == subject]
    assert len(rows) == 1, rows
    return rows[0].spent


def one_call(manager: BudgetManager, **kw: object) -> bool:
    try:
        res = manager.reserve(amount=CENT, **kw)  # type: ignore[arg-type]
    except BudgetExceeded:
        return False
    res.settle(CENT)
    return True


# ---------------------------------------------------------------- the guarantee


def test_200_threads_one_dollar_exactly_100_run() -> None:
    manager = BudgetManager([Budget("cap", limit="1.00")], clock=at("2026-12-01T12:00:00+00:00"))
    barrier = threading.Barrier(200)
    ran: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        result = one_call(manager)
        with lock:
            ran.append(result)

    threads = [threading.Thread(target=worker) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ran.count(True) == 100
    assert spent_of(manager, "cap") == Decimal("1.00")
    assert manager.health().denials == 100


async def test_200_asyncio_tasks_one_dollar_exactly_100_run() -> None:
    manager = BudgetManager([Budget("cap", limit="1.00")], clock=at("2026-12-01T12:00:00+00:00"))

    async def call() -> bool:
        try:
            res = await manager.areserve(amount=CENT)
        except BudgetExceeded:
            return False
        await asyncio.sleep(0)  # the "request" is in flight while others reserve
        await res.asettle(CENT)
        return True

    results = await asyncio.gather(*(call() for _ in range(200)))
    assert results.count(True) == 100
    assert spent_of(manager, "cap") == Decimal("1.00")


def test_denial_names_budget_limit_spent_reserved_attempted() -> None:
    manager = BudgetManager([Budget("cap", limit="0.05")], clock=at("2026-12-01T12:00:00+00:00"))
    held = manager.reserve(amount=Decimal("0.02"))
    manager.reserve(amount=Decimal("0.02")).settle(Decimal("0.02"))
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(amount=Decimal("0.02"))
    err = info.value
    assert (err.budget, err.limit, err.spent, err.reserved, err.attempted) == (
        "cap",
        Decimal("0.05"),
        Decimal("0.02"),
        Decimal("0.02"),
        Decimal("0.02"),
    )
    assert err.available == Decimal("0.01")
    assert err.scope_key == "cap:*:m2026-12"
    assert not err.partial
    held.release()
    manager.reserve(amount=Decimal("0.02"))  # the released money is usable again


def test_reservation_is_all_or_nothing_across_budgets() -> None:
    manager = BudgetManager(
        [
            Budget("team", limit="10", scope={"team": "sales"}),
            Budget("user", limit="0.015", per="user_id"),
        ],
        clock=at("2026-12-01T12:00:00+00:00"),
    )
    attrs = {"team": "sales", "user_id": "u1"}
    manager.reserve(attributes=attrs, amount=CENT).settle(CENT)
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(attributes=attrs, amount=CENT)
    assert info.value.budget == "user"
    # The team budget was not charged for the refused call.
    team = next(r for r in manager.status() if r.budget == "team")
    assert (team.spent, team.reserved) == (CENT, Decimal(0))


def test_settle_is_idempotent_and_release_after_settle_is_a_no_op() -> None:
    manager = BudgetManager([Budget("cap", limit="1")], clock=at("2026-12-01T12:00:00+00:00"))
    res = manager.reserve(amount=Decimal("0.5"))
    res.settle(Decimal("0.25"))
    res.settle(Decimal("0.25"))
    res.release()
    row = manager.status()[0]
    assert (row.spent, row.reserved) == (Decimal("0.25"), Decimal(0))


def test_context_manager_releases_on_error_and_commits_estimate_otherwise() -> None:
    manager = BudgetManager([Budget("cap", limit="1")], clock=at("2026-12-01T12:00:00+00:00"))
    with pytest.raises(RuntimeError), manager.reserve(amount=Decimal("0.3")):
        raise RuntimeError("provider down")
    assert manager.status()[0].spent == 0
    with manager.reserve(amount=Decimal("0.3")):
        pass
    assert manager.status()[0].spent == Decimal("0.3")


async def test_cancelled_call_releases_its_money() -> None:
    manager = BudgetManager([Budget("cap", limit="1")], clock=at("2026-12-01T12:00:00+00:00"))
    started = asyncio.Event()

    async def call() -> None:
        res = await manager.areserve(amount=Decimal("0.4"))
        try:
            started.set()
            await asyncio.Event().wait()  # a request that never answers
        except asyncio.CancelledError:
            await res.arelease()
            raise
        res.settle(Decimal("0.4"))

    task = asyncio.create_task(call())
    await started.wait()
    assert manager.status()[0].reserved == Decimal("0.4")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = manager.status()[0]
    assert (row.spent, row.reserved) == (0, 0)


def test_no_matching_budget_reserves_nothing() -> None:
    manager = BudgetManager([Budget("sales", limit="1", scope={"team": "sales"})])
    res = manager.reserve(attributes={"team": "ops"}, amount=Decimal("100"))
    assert res.budgets == ()
    res.settle(Decimal("100"))


def test_kind_and_name_are_matchable_attributes() -> None:
    manager = BudgetManager(
        [Budget("search", limit="0.01", scope={"tool": "web_search"})],
        clock=at("2026-12-01T12:00:00+00:00"),
    )
    manager.reserve(amount=Decimal("0.005"), kind="tool", name="web_search").settle(
        Decimal("0.005")
    )
    manager.reserve(amount=Decimal("1"), kind="llm", name="gpt-4o").settle(Decimal("1"))
    manager.reserve(amount=Decimal("0.005"), kind="tool", name="web_search").settle(
        Decimal("0.005")
    )
    with pytest.raises(BudgetExceeded):
        manager.reserve(amount=Decimal("0.005"), kind="tool", name="web_search")


# ---------------------------------------------------------------- estimation error


def test_overruns_are_settled_at_true_cost_bounded_and_reported() -> None:
    rng = random.Random(7)
    manager = BudgetManager([Budget("cap", limit="1")], clock=at("2026-12-01T12:00:00+00:00"))
    estimate = Decimal("0.01")
    expected_overrun = Decimal(0)
    overruns = 0
    while True:
        try:
            res = manager.reserve(amount=estimate)
        except BudgetExceeded:
            break
        actual = (estimate * Decimal(rng.randint(50, 150)) / 100).quantize(Decimal("0.0001"))
        res.settle(actual)
        if actual > estimate:
            overruns += 1
            expected_overrun += actual - estimate
            assert res.overrun == actual - estimate
    spent = manager.status()[0].spent
    # Each reservation fit before the call, so the limit can only be crossed by
    # the last call's own estimation error: at most +50% of one estimate.
    assert spent <= Decimal("1") + estimate / 2
    health = manager.health()
    assert health.overruns == overruns > 0
    assert health.overrun_total == expected_overrun


# ---------------------------------------------------------------- unpriced policy


def test_unpriced_call_is_denied_by_default() -> None:
    manager = BudgetManager([Budget("cap", limit="1")])
    with pytest.raises(BudgetExceeded, match="cannot be priced") as info:
        manager.reserve(amount=None, name="mystery-model")
    assert info.value.reason == "unpriced"
    assert manager.health().unpriced_denied == 1


def test_unpriced_allowed_is_flagged_counted_and_still_stops_at_the_limit() -> None:
    manager = BudgetManager(
        [Budget("cap", limit="0.01")], unpriced="allow", clock=at("2026-12-01T12:00:00+00:00")
    )
    res = manager.reserve(amount=None, name="mystery-model")
    assert res.unpriced
    res.settle(Decimal("0.01"))  # the response turned out to be priceable
    with pytest.raises(BudgetExceeded):
        manager.reserve(amount=None, name="mystery-model")
    assert manager.health().unpriced_allowed == 2


def test_unknown_actual_commits_the_estimate() -> None:
    manager = BudgetManager([Budget("cap", limit="1")], clock=at("2026-12-01T12:00:00+00:00"))
    manager.reserve(amount=Decimal("0.2")).settle(None)
    assert manager.status()[0].spent == Decimal("0.2")


# ---------------------------------------------------------------- per user, windows


def test_user_a_exhausting_their_budget_never_blocks_user_b() -> None:
    manager = BudgetManager(
        [Budget("daily", limit="0.05", window="day", per="user_id")],
        clock=at("2026-12-01T12:00:00+00:00"),
    )
    a = [one_call(manager, attributes={"user_id": "A"}) for _ in range(10)]
    assert a.count(True) == 5
    b = [one_call(manager, attributes={"user_id": "B"}) for _ in range(5)]
    assert all(b)
    subjects = {r.subject: r.spent for r in manager.status()}
    assert subjects == {"A": Decimal("0.05"), "B": Decimal("0.05")}


def test_daily_window_rolls_over_at_midnight_in_the_budget_timezone() -> None:
    # 23:59 in Tokyo is 14:59 UTC.
    clock = at("2026-12-01T14:59:00+00:00")
    manager = BudgetManager(
        [Budget("daily", limit="0.01", window="day", per="user_id", timezone="Asia/Tokyo")],
        clock=clock,
    )
    assert one_call(manager, attributes={"user_id": "A"})
    assert not one_call(manager, attributes={"user_id": "A"})
    clock.advance(59 * NS)  # 23:59:59 Tokyo: still the same day
    assert not one_call(manager, attributes={"user_id": "A"})
    clock.advance(1 * NS)  # midnight in Tokyo
    assert one_call(manager, attributes={"user_id": "A"})
    assert manager.status()[0].window == "d2026-12-02"


def test_trace_budget_caps_each_task() -> None:
    manager = BudgetManager([Budget("task", limit="0.02", window="trace")])
    runs = [one_call(manager, trace_id="t1") for _ in range(3)]
    assert runs == [True, True, False]
    assert one_call(manager, trace_id="t2")
    assert one_call(manager)  # no trace id: a trace budget does not apply


def test_rolling_window_forgets_old_spend() -> None:
    clock = at("2026-12-01T12:00:00+00:00")
    manager = BudgetManager(
        [Budget("hourly", limit="0.02", window=dt.timedelta(hours=1))], clock=clock
    )
    assert one_call(manager) and one_call(manager)
    assert not one_call(manager)
    clock.advance(30 * 60 * NS)
    assert not one_call(manager)  # still inside the hour
    clock.advance(31 * 60 * NS + 3 * 60 * NS)  # past the window plus one bucket
    assert one_call(manager)


# ---------------------------------------------------------------- $5 budget, gpt-4o


def test_five_dollar_budget_is_never_denied_while_real_spend_plus_in_flight_fits() -> None:
    from faremeter.budgets import estimate_call_cost
    from faremeter.pricing import PriceCatalog

    catalog = PriceCatalog.default()
    manager = BudgetManager([Budget("team", limit="5")], clock=at("2026-12-01T12:00:00+00:00"))
    messages = [
        {"role": "system", "content": "You are a concise research assistant."},
        {"role": "user", "content": "Summarise the attached notes. " * 40},
    ]
    worst = estimate_call_cost(catalog, "gpt-4o", messages, 256)
    assert worst is not None and worst < Decimal("0.01")  # not a model-max lockout
    in_flight: list[object] = []
    spent = Decimal(0)
    rng = random.Random(3)
    calls = 0
    while True:
        try:
            res = manager.reserve(amount=worst, name="gpt-4o")
        except BudgetExceeded as err:
            # Refused only when real spend + real in-flight worst case + this call
            # would not fit.
            assert err.spent is not None and err.reserved is not None
            assert err.spent + err.reserved + worst > Decimal(5)
            break
        calls += 1
        in_flight.append(res)
        if len(in_flight) == 8:  # eight concurrent requests, oldest answers first
            done = in_flight.pop(0)
            actual = (worst * Decimal(rng.randint(30, 100)) / 100).quantize(Decimal("0.000001"))
            done.settle(actual)  # type: ignore[attr-defined]
            spent += actual
    assert spent + len(in_flight) * worst > Decimal(5) - worst
    assert calls > 500


# ---------------------------------------------------------------- store failures


class BrokenStore:
    """A store whose every operation fails (the real kill-Redis test is in integration_tests)."""

    prefix = ""

    def reserve(self, checks: Sequence[Check], amount: int) -> ReserveResult:
        raise StoreUnavailable("connection refused")

    def settle(self, checks: Sequence[Check], reserved: int, actual: int) -> None:
        raise StoreUnavailable("connection refused")

    def read(self, checks: Sequence[Check]) -> list[tuple[int, int]]:
        raise StoreUnavailable("connection refused")

    def scan(self, prefix: str) -> dict[str, int]:
        raise StoreUnavailable("connection refused")

    def claim(self, key: str, ttl_s: int) -> bool:
        raise StoreUnavailable("connection refused")

    def close(self) -> None:
        pass


def test_fail_open_lets_calls_through_unenforced_and_counts() -> None:
    manager = BudgetManager([Budget("cap", limit="1")], store=BrokenStore(), fail="open")
    res = manager.reserve(amount=CENT)
    assert not res.enforced
    res.settle(CENT)
    health = manager.health()
    assert (health.store_failures, health.fail_open_passes) == (1, 1)
    assert manager.headroom() is None


def test_fail_closed_refuses_with_budget_exceeded() -> None:
    manager = BudgetManager([Budget("cap", limit="1")], store=BrokenStore(), fail="closed")
    with pytest.raises(BudgetExceeded, match="store is unavailable") as info:
        manager.reserve(amount=CENT)
    assert info.value.reason == "store unavailable"
    assert manager.health().fail_closed_denials == 1


def test_fail_closed_does_not_apply_to_warn_only_budgets() -> None:
    manager = BudgetManager(
        [Budget("watch", limit="1", action="warn")], store=BrokenStore(), fail="closed"
    )
    assert not manager.reserve(amount=CENT).enforced


# ---------------------------------------------------------------- alerts, status


def test_thresholds_and_denials_alert_once_per_window() -> None:
    alerts: list[Alert] = []
    clock = at("2026-12-01T12:00:00+00:00")
    manager = BudgetManager(
        [Budget("daily", limit="0.10", window="day")],
        clock=clock,
        sinks=[CallbackSink(alerts.append)],
    )
    for _ in range(15):
        one_call(manager)
    kinds = [(a.kind, a.amounts.get("threshold")) for a in alerts]
    assert kinds == [
        ("budget.threshold", Decimal("0.8")),
        ("budget.threshold", Decimal("0.9")),
        ("budget.denied", None),
    ]
    assert alerts[0].window == "d2026-12-01"
    assert alerts[2].amounts["limit"] == Decimal("0.10")
    clock.advance(86_400 * NS)  # next day: alerts again
    for _ in range(15):
        one_call(manager)
    assert len(alerts) == 6


def test_warn_budget_never_refuses_but_alerts() -> None:
    alerts: list[Alert] = []
    manager = BudgetManager(
        [Budget("watch", limit="0.02", action="warn", warn_at=("1",))],
        sinks=[CallbackSink(alerts.append)],
    )
    assert all(one_call(manager) for _ in range(5))
    assert [a.kind for a in alerts] == ["budget.threshold"]


def test_status_projects_end_of_window_spend_from_the_burn_rate() -> None:
    clock = at("2026-12-01T06:00:00+00:00")  # a quarter of the day gone
    manager = BudgetManager([Budget("daily", limit="10", window="day")], clock=clock)
    manager.reserve(amount=Decimal("1")).settle(Decimal("1"))
    held = manager.reserve(amount=Decimal("0.5"))
    row = manager.status()[0]
    assert (row.limit, row.spent, row.reserved, row.remaining) == (
        Decimal("10"),
        Decimal("1"),
        Decimal("0.5"),
        Decimal("8.5"),
    )
    # $1 in 6 h -> $3 more in the 18 h left, plus what is in flight.
    assert row.projected == Decimal("4.5")
    held.release()


def test_headroom_is_the_tightest_enforcing_budget() -> None:
    manager = BudgetManager(
        [
            Budget("team", limit="10", scope={"team": "t"}),
            Budget("user", limit="2", per="user_id"),
            Budget("watch", limit="0.5", action="warn"),
        ]
    )
    attrs = {"team": "t", "user_id": "u"}
    manager.reserve(attributes=attrs, amount=Decimal("0.5")).settle(Decimal("0.5"))
    assert manager.headroom(attrs) == Decimal("1.5")
    assert manager.headroom({"team": "t"}) == Decimal("9.5")


def test_duplicate_budget_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="repeated: a"):
        BudgetManager([Budget("a", limit="1"), Budget("a", limit="2")])


def test_thread_pool_mixed_users_never_exceed_any_limit() -> None:
    manager = BudgetManager(
        [Budget("user", limit="0.10", per="user_id"), Budget("all", limit="0.25")]
    )

    def call(i: int) -> bool:
        return one_call(manager, attributes={"user_id": f"u{i % 4}"})

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(200)))
    assert results.count(True) == 25
    rows = manager.status()
    assert next(r for r in rows if r.budget == "all").spent == Decimal("0.25")
    assert all(r.spent <= Decimal("0.10") for r in rows if r.budget == "user")


def test_concurrent_overruns_are_bounded_by_the_overruns_of_calls_in_flight() -> None:
    manager = BudgetManager([Budget("cap", limit="1")], sinks=[])
    estimate = Decimal("0.01")

    def call(i: int) -> Decimal:
        try:
            res = manager.reserve(amount=estimate)
        except BudgetExceeded:
            return Decimal(0)
        # Actual costs deviate -50%..+50% from the estimate (deterministic per call).
        actual = estimate * Decimal(50 + (i * 37) % 101) / 100
        res.settle(actual)
        return actual

    with ThreadPoolExecutor(16) as pool:
        actuals = list(pool.map(call, range(400)))
    spent = manager.status()[0].spent
    assert spent == sum(actuals)
    health = manager.health()
    over = sum((a - estimate for a in actuals if a > estimate), Decimal(0))
    assert health.overrun_total == over
    # Every reservation fit when it was made, so the limit is exceeded by at
    # most the overruns (the estimation error) of the calls that ran.
    assert spent <= Decimal("1") + health.overrun_total


def test_unhashable_attribute_values_still_match() -> None:
    manager = BudgetManager([Budget("b", limit="0.01", per="tags")], sinks=[])
    assert one_call(manager, attributes={"tags": ["a", "b"]})
    assert not one_call(manager, attributes={"tags": ["a", "b"]})
    assert one_call(manager, attributes={"tags": ["c"]})


def test_a_negative_actual_cost_cannot_refund_the_budget() -> None:
    manager = BudgetManager([Budget("cap", limit="1")], sinks=[])
    manager.reserve(amount=Decimal("0.5")).settle(Decimal("0.5"))
    manager.reserve(amount=Decimal("0.1")).settle(Decimal("-0.4"))
    assert manager.status()[0].spent == Decimal("0.5")
