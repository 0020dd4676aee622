"""A call a framework could not stop still counts against its budgets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from faremeter import Budget, BudgetExceeded
from faremeter.budgets import BudgetManager


def test_unreserved_commits_the_real_spend_past_the_limit() -> None:
    manager = BudgetManager([Budget("team", limit="0.01", scope={"team": "a"})])
    manager.reserve(attributes={"team": "a"}, amount=Decimal("0.01")).settle(Decimal("0.01"))
    with pytest.raises(BudgetExceeded):
        manager.reserve(attributes={"team": "a"}, amount=Decimal("0.005"))
    # The framework ran the call anyway: its cost is committed, not lost.
    manager.unreserved(attributes={"team": "a"}).settle(Decimal("0.004"))
    [status] = manager.status()
    assert status.spent == Decimal("0.014") and status.reserved == 0


def test_unreserved_without_a_matching_budget_is_a_no_op() -> None:
    manager = BudgetManager([Budget("team", limit="1", scope={"team": "a"})])
    manager.unreserved(attributes={"team": "b"}).settle(Decimal("5"))
    assert manager.status()[0].spent == 0
