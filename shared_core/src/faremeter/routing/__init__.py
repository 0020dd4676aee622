"""Cost-aware model routing: pick the cheapest capable model per call, and say why.

``Router(tiers, rules=..., steps=...).route(RouteRequest(...))`` returns a
:class:`RouteDecision` (model, tier, reason, estimated cost, alternatives) in
microseconds with no network. See ``docs/router.md``. The ``[routing]`` table
of ``faremeter.toml`` is validated by :class:`RoutingConfig` (imported on
first use: it needs pydantic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faremeter.routing.candidates import (
    BUILTIN_TIERS,
    CAPABILITY_ALIASES,
    Candidate,
    normalize_capabilities,
)
from faremeter.routing.decision import NoCandidateError, RouteDecision, RouteRequest, message_text
from faremeter.routing.router import ComplexityScorer, Router
from faremeter.routing.rules import RouteRule

if TYPE_CHECKING:
    from faremeter.routing.config import RoutingConfig, parse_routing
    from faremeter.routing.routed_call import ModelRouting, RoutePlan

__all__ = [
    "BUILTIN_TIERS",
    "CAPABILITY_ALIASES",
    "Candidate",
    "ComplexityScorer",
    "ModelRouting",
    "NoCandidateError",
    "RouteDecision",
    "RoutePlan",
    "RouteRequest",
    "RouteRule",
    "Router",
    "RoutingConfig",
    "complexity",
    "message_text",
    "normalize_capabilities",
    "parse_routing",
]


def complexity(messages: Any) -> float:
    """How demanding a prompt is, in [0, 1], scored locally (no model, no network).

    0 means a small model will do, 1 that it needs the strongest tier. The
    scorer lives in :mod:`faremeter.routing.scoring`; this forwards to it.

    Raises:
        RuntimeError: This installation has no scorer module.
    """
    try:
        from faremeter.routing import scoring
    except ImportError as exc:
        raise RuntimeError(
            "faremeter.routing.scoring is not available in this installation"
        ) from exc
    fn = getattr(scoring, "complexity")  # noqa: B009 - the module may not define it yet
    return float(fn(messages))


def __getattr__(name: str) -> Any:
    # The config models need pydantic; load them only when asked for.
    if name in ("RoutingConfig", "parse_routing"):
        from faremeter.routing import config

        return getattr(config, name)
    if name in ("ModelRouting", "RoutePlan"):
        # The routed call: router + budgets + fallback chain, used by the frameworks' routed models.
        from faremeter.routing import routed_call

        return getattr(routed_call, name)
    raise AttributeError(f"module 'faremeter.routing' has no attribute {name!r}")
