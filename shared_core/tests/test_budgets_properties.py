"""Properties of reserve/settle/release over random operation sequences (hypothesis)."""

from __future__ import annotations

import tempfile
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from faremeter.budgets import Budget, BudgetManager, Reservation
from faremeter.budgets.stores import from_units, to_units
from faremeter.errors import BudgetExceeded

FIXED_NS = 1_796_126_400_000_000_000
LIMIT = Decimal("1")

amounts = st.decimals(min_value=Decimal(0), max_value=Decimal("0.4"), places=6)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), amounts, st.sampled_from(["a", "b"])),
        st.tuples(st.just("settle"), st.integers(0, 100), st.integers(0, 20)),
        st.tuples(st.just("release"), st.integers(0, 0), st.integers(0, 20)),
    ),
    max_size=60,
)


def run(manager: BudgetManager, sequence: list[tuple[str, object, object]]) -> None:
    held: list[Reservation] = []
    committed = {"a": Decimal(0), "b": Decimal(0)}
    owners: dict[int, str] = {}
    for op, x, y in sequence:
        if op == "reserve":
            user = str(y)
            try:
                res = manager.reserve(attributes={"user_id": user}, amount=x)  # type: ignore[arg-type]
            except BudgetExceeded as exc:
                assert exc.spent is not None and exc.reserved is not None
                assert exc.spent + exc.reserved + x > LIMIT  # type: ignore[operator]
                continue
            held.append(res)
            owners[id(res)] = user
        elif held:
            res = held.pop(int(y) % len(held))  # type: ignore[call-overload]
            if op == "settle":
                assert res.amount is not None
                actual = (res.amount * int(x) / 100).quantize(Decimal("0.000001"))  # type: ignore[call-overload]
                res.settle(actual)
                committed[owners[id(res)]] += actual
            else:
                res.release()
        rows = {r.subject: r for r in manager.status()}
        for user, row in rows.items():
            assert user is not None
            # Never past the limit while actual costs stay within their estimates.
            assert row.spent + row.reserved <= LIMIT
            assert row.spent == committed[user]  # exact: no rounding drift
    for res in held:
        res.release()
    assert all(r.reserved == 0 for r in manager.status())


@settings(max_examples=150, deadline=None)
@given(ops)
def test_memory_store_never_exceeds_and_accounts_exactly(
    sequence: list[tuple[str, object, object]],
) -> None:
    manager = BudgetManager(
        [Budget("u", limit=LIMIT, per="user_id")], clock=lambda: FIXED_NS, sinks=[]
    )
    run(manager, sequence)


@settings(max_examples=30, deadline=None)
@given(ops)
def test_sqlite_store_never_exceeds_and_accounts_exactly(
    sequence: list[tuple[str, object, object]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manager = BudgetManager(
            [Budget("u", limit=LIMIT, per="user_id")],
            store=f"sqlite:///{tmp}/b.db",
            clock=lambda: FIXED_NS,
            sinks=[],
        )
        run(manager, sequence)
        manager.close()


@given(st.decimals(min_value=Decimal(0), max_value=Decimal(10**6), places=12))
def test_units_round_up_and_never_lose_money(amount: Decimal) -> None:
    units = to_units(amount)
    assert from_units(units) >= amount
    assert from_units(units) - amount < Decimal("0.000000001")
