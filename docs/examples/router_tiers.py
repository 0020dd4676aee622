"""Route each step of an agent to the cheapest capable model, and log why.

Run: uv run python docs/examples/router_tiers.py   (offline: no model is called)
"""

from __future__ import annotations

from decimal import Decimal

from faremeter.routing import Router, RouteRequest

# The same table you would write under [routing] in faremeter.toml.
router = Router.from_config(
    {
        "tiers": {  # cheapest tier first
            "economy": ["gpt-4o-mini"],
            "standard": ["gpt-4o"],
            "premium": ["o3"],
        },
        "steps": {"parse": "gpt-4o-mini", "summarize": "economy", "draft": "gpt-4o"},
        "rules": [{"name": "vip", "match": {"team": "research"}, "tier": "premium"}],
    },
    complexity=False,  # this demo routes by rules only
)

calls: list[tuple[str, dict[str, str], frozenset[str], int]] = [
    ("parse", {}, frozenset[str](), 800),
    ("summarize", {}, frozenset[str](), 3_000),
    ("draft", {}, frozenset({"tools"}), 6_000),
    ("review", {"team": "research"}, frozenset[str](), 6_000),
    ("review", {}, frozenset[str](), 150_000),  # only o3's 200k window takes it
]
for step, extra, needs, tokens in calls:
    decision = router.route(
        RouteRequest(
            input_tokens=tokens,
            max_tokens=500,
            capabilities=needs,
            attributes={"step": step, **extra},
        )
    )
    print(f"{step:9} -> {decision.model:11} ${decision.estimated_cost:.6f}  {decision.reason}")

# A budget past its warn threshold routes down a tier; a degrade budget with
# $0.002 left gets a model whose estimate fits.
pressed = router.route(RouteRequest(input_tokens=3_000, max_tokens=500, pressure=True))
print(f"pressure  -> {pressed.model:11} {pressed.reason}")
fitted = router.route(
    RouteRequest(input_tokens=3_000, max_tokens=500, budget_headroom=Decimal("0.002"))
)
print(f"headroom  -> {fitted.model:11} {fitted.reason}")
print("span attributes:", fitted.as_attributes()["route.alternatives"])
