"""faremeter: see, cap and cut what LLM agents cost.

``import faremeter`` is kept cheap (no framework, no pydantic, no price table):
the price snapshot loads on first use and heavier parts import lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faremeter.context import attributes, bind, current_attributes, current_span
from faremeter.cost import CURRENCY, Cost
from faremeter.default_meter import get_meter, set_meter
from faremeter.errors import (
    BudgetExceeded,
    ConfigError,
    FaremeterError,
    InvalidUsageError,
    UnknownModelError,
)
from faremeter.meter import Meter
from faremeter.open_span import OpenSpan
from faremeter.scope import SpanScope
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.tree import TraceNode, TraceTree
from faremeter.usage import Usage

if TYPE_CHECKING:
    from faremeter.budgets import Budget, BudgetManager, BudgetStatus
    from faremeter.caching import ResponseCache, ToolCache
    from faremeter.fallback import CircuitBreaker, FallbackChain, RetryPolicy
    from faremeter.ledger import Ledger
    from faremeter.pricing import ModelPrice, PriceCatalog, ToolPrice
    from faremeter.routing import RouteDecision, Router, RouteRequest

__version__ = "0.1.0"

__all__ = [
    "CURRENCY",
    "Budget",
    "BudgetExceeded",
    "BudgetManager",
    "BudgetStatus",
    "CircuitBreaker",
    "ConfigError",
    "Cost",
    "FallbackChain",
    "FaremeterError",
    "InvalidUsageError",
    "Ledger",
    "Meter",
    "ModelPrice",
    "OpenSpan",
    "PriceCatalog",
    "ResponseCache",
    "RetryPolicy",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "SpanKind",
    "SpanRecord",
    "SpanScope",
    "SpanStatus",
    "ToolCache",
    "ToolPrice",
    "TraceNode",
    "TraceTree",
    "UnknownModelError",
    "Usage",
    "attributes",
    "bind",
    "current_attributes",
    "current_span",
    "get_meter",
    "set_meter",
]

_LAZY = {
    "Budget": "faremeter.budgets",
    "BudgetManager": "faremeter.budgets",
    "BudgetStatus": "faremeter.budgets",
    "ToolCache": "faremeter.caching",
    "ResponseCache": "faremeter.caching",
    "Router": "faremeter.routing",
    "RouteRequest": "faremeter.routing",
    "RouteDecision": "faremeter.routing",
    "FallbackChain": "faremeter.fallback",
    "RetryPolicy": "faremeter.fallback",
    "CircuitBreaker": "faremeter.fallback",
    "PriceCatalog": "faremeter.pricing",
    "ModelPrice": "faremeter.pricing",
    "ToolPrice": "faremeter.pricing",
    "Ledger": "faremeter.ledger",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'faremeter' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
