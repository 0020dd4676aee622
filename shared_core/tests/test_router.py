"""Router: rules, complexity, capabilities, context windows, budget pressure, config."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from faremeter.errors import ConfigError
from faremeter.pricing import ModelPrice, PriceCatalog, PriceTier
from faremeter.routing import (
    Candidate,
    NoCandidateError,
    RouteDecision,
    Router,
    RouteRequest,
    RouteRule,
    message_text,
    normalize_capabilities,
)
from faremeter.routing.config import RoutingConfig, parse_routing
from faremeter.spans import SpanKind
from faremeter.testing import make_test_meter, recorded_spans
from faremeter.usage import Usage

TOOLS = ("function_calling", "response_schema")


def _catalog() -> PriceCatalog:
    """Small, fixed prices and limits so expectations are exact."""
    return PriceCatalog(
        models={
            "mini": ModelPrice(
                input_per_mtok="0.15",
                output_per_mtok="0.6",
                max_input_tokens=16_000,
                capabilities=TOOLS,
            ),
            "mini-vision": ModelPrice(
                input_per_mtok="0.2",
                output_per_mtok="0.8",
                max_input_tokens=16_000,
                capabilities=(*TOOLS, "vision"),
            ),
            "mid": ModelPrice(
                input_per_mtok="2.5",
                output_per_mtok="10",
                max_input_tokens=128_000,
                capabilities=(*TOOLS, "vision"),
            ),
            "mid-cheap": ModelPrice(
                input_per_mtok="1",
                output_per_mtok="4",
                max_input_tokens=32_000,
                capabilities=TOOLS,
            ),
            "big": ModelPrice(
                input_per_mtok="10",
                output_per_mtok="40",
                max_input_tokens=1_000_000,
                capabilities=(*TOOLS, "vision", "reasoning"),
                tiers=[PriceTier(above_tokens=200_000, input_per_mtok="20", output_per_mtok="80")],
            ),
        }
    )


TIERS = {"economy": ["mini", "mini-vision"], "standard": ["mid", "mid-cheap"], "premium": ["big"]}


@pytest.fixture
def catalog() -> PriceCatalog:
    return _catalog()


@pytest.fixture
def router(catalog: PriceCatalog) -> Router:
    return Router(TIERS, catalog=catalog, complexity=False)


def req(**kw: Any) -> RouteRequest:
    kw.setdefault("input_tokens", 1_000)
    kw.setdefault("max_tokens", 500)
    return RouteRequest(**kw)


# ---------------------------------------------------------------- candidates


def test_candidate_precomputes_catalog_facts(catalog: PriceCatalog) -> None:
    c = Candidate.from_catalog("mid", catalog, tier="standard", rank=1)
    assert c.max_input_tokens == 128_000
    assert c.input_per_token == Decimal("0.0000025")
    assert c.output_per_token == Decimal("0.00001")
    assert {"function_calling", "vision"} <= c.capabilities
    assert (
        c.estimate(1_000, 500)
        == catalog.cost("mid", Usage(input_tokens=1_000, output_tokens=500)).total
    )


def test_candidate_long_context_estimate_reprices_whole_request(catalog: PriceCatalog) -> None:
    c = Candidate.from_catalog("big", catalog)
    usage = Usage(input_tokens=300_000, output_tokens=1_000)
    assert c.estimate(300_000, 1_000) == catalog.cost("big", usage).total
    assert c.estimate(300_000, 1_000) == Decimal("6.08")  # 300k x $20/M + 1k x $80/M


def test_model_price_capability_views() -> None:
    price = PriceCatalog.default().get("gpt-4o")
    assert price.supports_function_calling and price.supports_vision
    assert price.supports_response_schema
    assert price.context_window == 128_000
    plain = ModelPrice(input_per_mtok=1, output_per_mtok=1)
    assert not plain.supports_vision and plain.context_window is None


def test_capability_aliases() -> None:
    assert normalize_capabilities(["tools", "JSON", "vision", "pdf_input"]) == {
        "function_calling",
        "response_schema",
        "vision",
        "pdf_input",
    }


# ---------------------------------------------------------------- rules


def test_step_map_routes_like_model_routing(catalog: PriceCatalog) -> None:
    router = Router(
        TIERS,
        catalog=catalog,
        complexity=False,
        steps={"parse": "mini", "summarize": "mini", "draft": "mid", "review": "premium"},
    )
    parse = router.route(req(attributes={"step": "parse"}))
    assert (parse.model, parse.tier, parse.rule) == ("mini", "economy", "step=parse")
    assert "rule step=parse -> mini" in parse.reason
    assert router.route(req(attributes={"step": "draft"})).model == "mid"
    review = router.route(req(attributes={"step": "review"}))
    assert (review.model, review.tier) == ("big", "premium")
    other = router.route(req(attributes={"step": "other"}))
    assert other.rule is None and other.tier == "standard"
    assert other.reason == "default tier standard"


def test_first_matching_rule_wins_and_any_attribute_or_tag_matches(catalog: PriceCatalog) -> None:
    rules = [
        RouteRule.of({"workflow": "research", "tags": ["vip", "gold"]}, tier="premium", name="vip"),
        RouteRule.of({"workflow": "research"}, tier="economy"),
        RouteRule.of({"user_id": 42}, model="mid-cheap"),
    ]
    router = Router(TIERS, catalog=catalog, rules=rules, complexity=False)
    vip = router.route(req(attributes={"workflow": "research"}, tags=("gold",)))
    assert (vip.tier, vip.rule) == ("premium", "vip")
    plain = router.route(req(attributes={"workflow": "research"}, tags=("bronze",)))
    assert (plain.tier, plain.rule) == ("economy", "workflow=research")
    assert router.route(req(attributes={"user_id": 42})).model == "mid-cheap"
    assert router.route(req(attributes={"user_id": "42"})).model == "mid-cheap"


def test_rule_validation(catalog: PriceCatalog) -> None:
    with pytest.raises(ValueError, match="exactly one of model= or tier="):
        RouteRule.of({"step": "x"})
    with pytest.raises(ValueError, match="non-empty list"):
        RouteRule.of({"step": []}, tier="economy")
    with pytest.raises(ValueError, match="which is in no tier"):
        Router(TIERS, catalog=catalog, rules=[RouteRule.of({"step": "x"}, model="gpt-4o")])
    with pytest.raises(ValueError, match="tier 'gold', which does not exist"):
        Router(TIERS, catalog=catalog, rules=[RouteRule.of({"step": "x"}, tier="gold")])
    with pytest.raises(ValueError, match="tier 'empty' has no models"):
        Router({**TIERS, "empty": []}, catalog=catalog)
    with pytest.raises(ValueError, match="a model belongs to one tier"):
        Router({"economy": ["mini"], "standard": ["mini"]}, catalog=catalog)


# ---------------------------------------------------------------- choosing


def test_cheapest_capable_model_of_the_tier(router: Router, catalog: PriceCatalog) -> None:
    d = router.route(req())
    assert d.model == "mid-cheap"  # standard tier, cheaper of the two
    assert (
        d.estimated_cost
        == catalog.cost("mid-cheap", Usage(input_tokens=1_000, output_tokens=500)).total
    )
    assert isinstance(d.estimated_cost, Decimal)
    # Same tier next, then higher tiers, then lower ones: a fallback order.
    assert d.alternatives == ("mid", "big", "mini", "mini-vision")
    assert d.candidates == ("mid-cheap", "mid", "big", "mini", "mini-vision")


def test_required_capability_filters_candidates(router: Router) -> None:
    d = router.route(req(capabilities=frozenset({"vision"})))
    assert d.model == "mid"  # mid-cheap has no vision
    assert "mid-cheap" not in d.alternatives and "mini" not in d.alternatives
    pinned = Router(TIERS, catalog=_catalog(), complexity=False, steps={"ocr": "mini"})
    e = pinned.route(req(attributes={"step": "ocr"}, capabilities=frozenset({"vision"})))
    assert e.model == "mini-vision"
    assert "mini lacks vision" in e.reason


def test_over_long_prompt_goes_to_a_window_that_fits(router: Router) -> None:
    d = router.route(req(input_tokens=150_000))
    assert d.model == "big"
    assert d.alternatives == ()  # nothing else can take 150k tokens
    assert "no capable model in tier standard -> tier premium" in d.reason
    economy = Router(TIERS, catalog=_catalog(), complexity=False, default_tier="economy")
    e = economy.route(req(input_tokens=20_000))
    assert e.model == "mid-cheap"  # 32k window; the 16k economy models cannot take it
    assert set(e.candidates) == {"mid-cheap", "mid", "big"}
    with pytest.raises(NoCandidateError, match="largest context window is 1000000"):
        router.route(req(input_tokens=2_000_000))


def test_no_candidate_with_capability(router: Router) -> None:
    with pytest.raises(NoCandidateError, match="needs audio_input"):
        router.route(req(capabilities=frozenset({"audio_input"})))


def test_token_estimate_from_messages(router: Router) -> None:
    d = router.route(RouteRequest(messages=[{"role": "user", "content": "x" * 2_000}]))
    assert d.input_tokens == 500
    assert d.output_tokens == router.default_output_tokens


def test_budget_pressure_routes_down_a_tier(router: Router) -> None:
    d = router.route(req(pressure=True))
    assert d.tier == "economy" and d.model == "mini"
    assert "budget pressure -> tier economy" in d.reason
    # Under pressure, the fallback order goes down before it goes up.
    assert d.alternatives == ("mini-vision", "mid-cheap", "mid", "big")
    pinned = Router(TIERS, catalog=_catalog(), complexity=False, steps={"s": "big"})
    assert pinned.route(req(attributes={"step": "s"}, pressure=True)).tier == "standard"
    bottom = Router(TIERS, catalog=_catalog(), complexity=False, default_tier="economy")
    assert bottom.route(req(pressure=True)).tier == "economy"


def test_degrade_budget_headroom_picks_a_model_that_fits(router: Router) -> None:
    # mid-cheap: 1000 x 1e-6 + 500 x 4e-6 = 0.003; mini: 0.00015 + 0.0003 = 0.00045
    d = router.route(req(budget_headroom=Decimal("0.001")))
    assert d.model == "mini" and d.within_budget
    assert d.estimated_cost == Decimal("0.00045")
    assert "budget headroom $0.001 -> mini" in d.reason
    assert d.model not in d.alternatives
    broke = router.route(req(budget_headroom=Decimal("0.0001")))
    assert broke.model == "mini" and not broke.within_budget
    roomy = router.route(req(budget_headroom=Decimal("1")))
    assert roomy.model == "mid-cheap"


def test_headroom_never_moves_up_a_tier(catalog: PriceCatalog) -> None:
    router = Router(TIERS, catalog=catalog, complexity=False, default_tier="economy")
    d = router.route(req(budget_headroom=Decimal("0.00001")))
    assert d.tier == "economy" and not d.within_budget


# ---------------------------------------------------------------- complexity


def test_complexity_score_picks_the_tier(catalog: PriceCatalog) -> None:
    scores = {"easy": 0.1, "medium": 0.5, "hard": 0.9}
    router = Router(
        TIERS,
        catalog=catalog,
        complexity=lambda messages: scores[message_text(messages)],
        complexity_thresholds={"economy": 0.3, "standard": 0.7},
    )
    assert router.route(req(messages="easy")).tier == "economy"
    assert router.route(req(messages="medium")).tier == "standard"
    hard = router.route(req(messages="hard"))
    assert hard.tier == "premium" and hard.complexity == 0.9
    assert "complexity 0.90 -> tier premium" in hard.reason
    # A precomputed score skips the scorer; a rule beats the score.
    assert router.route(req(messages="hard", complexity=0.0)).tier == "economy"


def test_default_complexity_bands_are_equal(router: Router) -> None:
    assert [router.tier_for(s) for s in (0.0, 0.33, 0.34, 0.66, 0.67, 1.0)] == [
        "economy",
        "economy",
        "standard",
        "standard",
        "premium",
        "premium",
    ]


def test_tier_without_threshold_is_reached_only_by_rules(catalog: PriceCatalog) -> None:
    router = Router(
        TIERS, catalog=catalog, complexity=False, complexity_thresholds={"economy": 0.5}
    )
    assert router.tier_for(0.4) == "economy"
    assert router.tier_for(0.6) == "premium"
    with pytest.raises(ValueError, match="must rise"):
        Router(
            TIERS,
            catalog=catalog,
            complexity_thresholds={"economy": 0.6, "standard": 0.3},
        )


def test_a_failing_scorer_routes_by_default_and_logs_once(
    catalog: PriceCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(messages: object) -> float:
        raise RuntimeError("model file missing")

    router = Router(TIERS, catalog=catalog, complexity=broken)
    with caplog.at_level(logging.ERROR, logger="faremeter"):
        first = router.route(req(messages="hi"))
        router.route(req(messages="hi"))
    assert first.tier == "standard" and first.complexity is None
    assert sum("complexity scorer failed" in r.message for r in caplog.records) == 1


def test_request_validation() -> None:
    with pytest.raises(ValueError, match="input_tokens"):
        RouteRequest(input_tokens=-1)
    with pytest.raises(ValueError, match="complexity"):
        RouteRequest(complexity=1.5)
    with pytest.raises(ValueError, match="Decimal"):
        RouteRequest(budget_headroom=0.5)  # type: ignore[arg-type]


def test_message_text_shapes() -> None:
    class Msg:
        def __init__(self, content: object) -> None:
            self.content = content

    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert message_text("s") == "s"
    assert message_text([{"role": "user", "content": parts}, Msg("b"), "c"]) == "a\nb\nc"
    assert message_text(None) == ""


# ---------------------------------------------------------------- decision log


def test_decision_is_recorded_as_span_attributes(router: Router) -> None:
    meter = make_test_meter()
    decision = router.route(req(attributes={"step": "x"}))
    span = meter.start_span("llm", kind=SpanKind.LLM, attributes=decision.as_attributes())
    span.end(usage=Usage(input_tokens=1_000, output_tokens=500), model=decision.model)
    (record,) = recorded_spans(meter)
    assert record.attributes["route.model"] == "mid-cheap"
    assert record.attributes["route.tier"] == "standard"
    assert record.attributes["route.reason"] == "default tier standard"
    assert Decimal(str(record.attributes["route.estimated_cost"])) == decision.estimated_cost
    assert record.attributes["route.alternatives"] == "mid,big,mini,mini-vision"


def test_decision_attributes_include_optional_fields() -> None:
    d = RouteDecision(
        model="m",
        tier="t",
        reason="r",
        estimated_cost=Decimal("0.1"),
        complexity=0.123456,
        rule="x",
        within_budget=False,
    )
    attrs = d.as_attributes()
    assert attrs["route.complexity"] == 0.1235
    assert attrs["route.rule"] == "x"
    assert attrs["route.within_budget"] is False


def test_real_snapshot_models() -> None:
    router = Router(
        {"economy": ["gpt-4o-mini"], "standard": ["gpt-4o"], "premium": ["o3"]},
        complexity=False,
        steps={"parse": "gpt-4o-mini", "summarize": "gpt-4o-mini", "draft": "gpt-4o"},
    )
    assert router.route(req(attributes={"step": "parse"})).model == "gpt-4o-mini"
    assert router.route(req(attributes={"step": "draft"})).model == "gpt-4o"
    assert router.route(req(input_tokens=150_000)).model == "o3"  # 200k window


# ---------------------------------------------------------------- config

GOOD: dict[str, Any] = {
    "default_tier": "standard",
    "tiers": {
        "economy": ["mini", "mini-vision"],
        "standard": {"models": ["mid", "mid-cheap"], "max_complexity": 0.7},
        "premium": ["big"],
    },
    "steps": {"parse": "mini", "review": "premium"},
    "rules": [{"name": "vip", "match": {"team": "research", "tags": ["vip"]}, "tier": "premium"}],
    "models": {"mid-cheap": {"max_input_tokens": 8_000, "capabilities": ["tools", "vision"]}},
}


def test_from_config(catalog: PriceCatalog) -> None:
    router = Router.from_config(GOOD, catalog, complexity=False)
    assert router.tiers == ("economy", "standard", "premium")
    assert router.route(req(attributes={"step": "parse"})).model == "mini"
    assert router.route(req(attributes={"team": "research"}, tags=("vip",))).tier == "premium"
    cheap = router.candidate("mid-cheap")
    assert cheap.max_input_tokens == 8_000
    assert cheap.capabilities == {"function_calling", "vision"}
    assert router.route(req(input_tokens=10_000)).model == "mid"  # override: 8k window
    parsed = parse_routing(GOOD, catalog=catalog)
    assert isinstance(parsed, RoutingConfig)
    assert Router.from_config(parsed, catalog, complexity=False).tiers == router.tiers


CONFIG_ERRORS: list[tuple[dict[str, Any], str]] = [
    (
        {"tiers": {"economy": ["mini"], "standard": ["gpt4o-mini"]}},
        "routing.tiers.standard.models.0: unknown model 'gpt4o-mini'",
    ),
    (
        {"tiers": {"economy": [], "standard": ["mid"]}},
        "routing.tiers.economy.models: empty tier",
    ),
    ({"tiers": {}}, "routing.tiers: at least one tier"),
    (
        {"rules": [{"match": {"step": "x"}, "tier": "gold"}]},
        "routing.rules.0.tier: rule points to tier 'gold', which does not exist",
    ),
    (
        {"rules": [{"match": {"step": "x"}, "model": "nope"}]},
        "routing.rules.0.model: rule points to model 'nope', which is in no tier",
    ),
    (
        {"rules": [{"match": {"step": "x"}}]},
        "routing.rules.0: give exactly one of model or tier",
    ),
    ({"rules": [{"match": {}, "tier": "economy"}]}, "routing.rules.0.match: name at least one"),
    (
        {"steps": {"parse": "nowhere"}},
        "routing.steps.parse: points to 'nowhere', which is in no tier",
    ),
    ({"default_tier": "gold"}, "routing.default_tier: tier 'gold' does not exist"),
    ({"models": {"other": {"max_input_tokens": 5}}}, "routing.models.other: overrides a model"),
    ({"colour": "blue"}, "routing.colour: unknown key"),
    ({"default_output_tokens": -1}, "routing.default_output_tokens"),
    (
        {"tiers": {"premium": ["big"], "economy": ["mini"]}},
        "tiers are ranked in the order written, cheapest first",
    ),
    (
        {"tiers": {"economy": ["mini"], "standard": ["mini"]}},
        "already in tier 'economy'",
    ),
]


@pytest.mark.parametrize(("change", "message"), CONFIG_ERRORS)
def test_config_errors_name_key_and_reason(
    catalog: PriceCatalog, change: dict[str, Any], message: str
) -> None:
    data = {**GOOD, **change}
    if "tiers" in change:
        data = {"tiers": change["tiers"]}
    with pytest.raises(ConfigError) as info:
        Router.from_config(data, catalog, source="app.toml")
    assert str(info.value).startswith("app.toml: routing.")
    assert message in str(info.value)


def test_config_unknown_model_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="did you mean 'gpt-4o-mini'"):
        parse_routing({"tiers": {"economy": ["gpt-4o-mnii"]}})
