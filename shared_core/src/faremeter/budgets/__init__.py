"""Budgets: spending limits enforced *before* money is spent.

``Budget`` says what is limited; ``BudgetManager`` reserves each call's worst
case against every matching budget atomically, settles it to the actual cost
afterwards, alerts at thresholds, paces ``throttle`` budgets and fits
``degrade`` calls to the money left. Counters live in-process, in SQLite (one
host) or Redis (a fleet).
"""

from __future__ import annotations

from faremeter.budgets.budget import Budget, BudgetAction
from faremeter.budgets.estimate import estimate_call_cost, fit_max_tokens
from faremeter.budgets.manager import BudgetManager, FitRequest
from faremeter.budgets.reservation import Reservation
from faremeter.budgets.status import BudgetHealth, BudgetStatus

__all__ = [
    "Budget",
    "BudgetAction",
    "BudgetHealth",
    "BudgetManager",
    "BudgetStatus",
    "FitRequest",
    "Reservation",
    "estimate_call_cost",
    "fit_max_tokens",
]
