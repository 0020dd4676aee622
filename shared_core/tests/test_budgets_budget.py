"""Budget values and windows: validation with clear errors, calendar windows in a timezone."""

from __future__ import annotations

import datetime as dt
import pickle
from decimal import Decimal

import pytest

from faremeter.budgets import Budget
from faremeter.budgets.windows import ROLLING_BUCKETS, window_at
from faremeter.errors import BudgetExceeded, FaremeterError

NS = 1_000_000_000


def ns(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp()) * NS


def test_defaults_match_the_documented_signature() -> None:
    b = Budget("team", limit="500")
    assert b.limit == Decimal("500")
    assert b.window == "month"
    assert b.action == "deny"
    assert dict(b.scope) == {}
    assert b.per is None
    assert b.warn_at == (Decimal("0.8"), Decimal("0.9"))
    assert b.timezone == "UTC"
    assert b == Budget("team", limit=Decimal("500"))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"limit": 1.5}, "floats are inexact"),
        ({"limit": "abc"}, "not an amount of USD"),
        ({"limit": "0"}, "must be > 0"),
        ({"limit": "1", "window": "week"}, "window must be 'day', 'month', 'trace'"),
        ({"limit": "1", "window": dt.timedelta(0)}, ">= 1 second"),
        ({"limit": "1", "action": "block"}, "action must be one of"),
        ({"limit": "1", "warn_at": (1.5,)}, "fractions of the limit"),
        ({"limit": "1", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"limit": "1", "per": "user_id", "window": "trace"}, "cannot be combined"),
        ({"limit": "1", "per": "team", "scope": {"team": "x"}}, "also fixed in scope"),
        ({"limit": "1", "action": "throttle", "window": "trace"}, "throttle paces"),
    ],
)
def test_bad_arguments_name_budget_and_reason(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match="budget 'b'") as info:
        Budget("b", **kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_bad_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="budget name"):
        Budget("has space", limit="1")


def test_matching_by_scope_and_per() -> None:
    b = Budget("b", limit="1", scope={"team": "sales"}, per="user_id")
    assert b.matches({"team": "sales", "user_id": "u1"})
    assert not b.matches({"team": "sales"})  # no per value: not counted
    assert not b.matches({"team": "ops", "user_id": "u1"})


def test_day_window_rolls_over_at_local_midnight() -> None:
    b = Budget("b", limit="1", window="day", timezone="America/New_York")
    # 2026-12-01 23:30 in New York is 04:30 UTC on 12-02.
    before = window_at(b, ns("2026-12-02T04:29:59+00:00"))
    after = window_at(b, ns("2026-12-02T05:00:00+00:00"))
    assert before.key == "d2026-12-01"
    assert after.key == "d2026-12-02"
    assert before.end_ns == after.start_ns == ns("2026-12-02T05:00:00+00:00")


def test_day_window_across_a_dst_change_is_23_hours() -> None:
    b = Budget("b", limit="1", window="day", timezone="Europe/Paris")
    span = window_at(b, ns("2026-03-29T12:00:00+00:00"))
    assert span.end_ns is not None
    assert (span.end_ns - span.start_ns) // NS == 23 * 3600


def test_month_window_and_year_end() -> None:
    b = Budget("b", limit="1", window="month")
    span = window_at(b, ns("2026-12-31T23:59:59+00:00"))
    assert span.key == "m2026-12"
    assert span.end_ns == ns("2027-01-01T00:00:00+00:00")


def test_rolling_window_covers_at_least_the_window() -> None:
    b = Budget("b", limit="1", window=dt.timedelta(hours=24))
    now = ns("2026-12-01T12:34:56+00:00")
    span = window_at(b, now)
    bucket_ns = 24 * 3600 * NS // ROLLING_BUCKETS
    oldest = int(span.spent_windows[0][1:]) * bucket_ns
    assert oldest <= now - 24 * 3600 * NS
    assert len(span.spent_windows) == ROLLING_BUCKETS + 1


def test_budget_exceeded_is_simple_to_build_and_pickles() -> None:
    plain = BudgetExceeded("over")
    assert isinstance(plain, FaremeterError)
    assert str(plain) == "over"
    full = BudgetExceeded(
        budget="b",
        limit=Decimal(1),
        spent=Decimal("0.99"),
        reserved=Decimal("0.005"),
        attempted=Decimal("0.01"),
        available=Decimal("0.005"),
        scope_key="b:*:m2026-12",
    )
    text = str(full)
    for part in ("'b'", "$1", "$0.99", "$0.005", "$0.01", "b:*:m2026-12"):
        assert part in text
    again = pickle.loads(pickle.dumps(full))
    assert again.available == Decimal("0.005")
    assert str(again) == text


def test_budgets_pickle_for_worker_processes() -> None:
    b = Budget("b", limit="2", window=dt.timedelta(hours=1), scope={"team": "x"}, per="user_id")
    again = pickle.loads(pickle.dumps(b))
    assert again == b
    assert dict(again.scope) == {"team": "x"}
