"""The ``[routing]`` table of ``faremeter.toml``, validated with clear errors.

Example::

    [routing]
    default_tier = "standard"

    [routing.tiers]                    # cheapest tier first
    economy = ["gpt-4o-mini"]
    standard = { models = ["gpt-4o"], max_complexity = 0.7 }
    premium = ["o3"]

    [routing.steps]                    # step -> model or tier
    parse = "gpt-4o-mini"
    draft = "gpt-4o"

    [[routing.rules]]
    name = "vip"
    match = { team = "research", tags = ["vip"] }
    tier = "premium"

    [routing.models."my-finetune"]      # override what the catalog says
    max_input_tokens = 32000
    capabilities = ["tools", "json"]

Every problem becomes one :class:`~faremeter.errors.ConfigError` naming the
file, the dotted key and the reason (``routing.rules.0.model: unknown model
'gpt4o'; did you mean 'gpt-4o'?``). Imported only when routing is configured,
so pydantic stays off ``import faremeter``'s path.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from faremeter.errors import ConfigError, UnknownModelError
from faremeter.routing.candidates import BUILTIN_TIERS
from faremeter.routing.rules import RouteRule

if TYPE_CHECKING:
    from faremeter.pricing import PriceCatalog
    from faremeter.routing.router import ComplexityScorer

__all__ = ["ModelOverrideConfig", "RouteRuleConfig", "RoutingConfig", "TierConfig", "parse_routing"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _tier_shorthand(value: object) -> object:
    """``economy = ["gpt-4o-mini"]`` is short for ``economy = { models = [...] }``."""
    if isinstance(value, list | tuple):
        models: list[object] = list(value)  # pyright: ignore[reportUnknownArgumentType]
        return {"models": models}
    return value


class TierConfig(_Frozen):
    """``[routing.tiers.<name>]``: the models of one tier."""

    models: tuple[str, ...]
    max_complexity: Annotated[float, Field(ge=0.0, le=1.0)] | None = None


class RouteRuleConfig(_Frozen):
    """``[[routing.rules]]``: attribute conditions → a ``tier`` or a ``model``."""

    name: str | None = None
    match: dict[str, str | int | bool | list[str]]
    model: str | None = None
    tier: str | None = None


class ModelOverrideConfig(_Frozen):
    """``[routing.models.<model>]``: limits and capabilities replacing the catalog's."""

    max_input_tokens: Annotated[int, Field(gt=0)] | None = None
    max_output_tokens: Annotated[int, Field(gt=0)] | None = None
    capabilities: tuple[str, ...] | None = None


class RoutingConfig(_Frozen):
    """The whole ``[routing]`` table."""

    tiers: dict[str, Annotated[TierConfig, BeforeValidator(_tier_shorthand)]]
    rules: tuple[RouteRuleConfig, ...] = ()
    steps: dict[str, str] = Field(default_factory=dict[str, str])
    default_tier: str | None = None
    complexity: bool = True
    default_output_tokens: Annotated[int, Field(ge=0)] = 1024
    models: dict[str, ModelOverrideConfig] = Field(default_factory=dict[str, ModelOverrideConfig])

    def router_arguments(
        self,
        catalog: PriceCatalog | None = None,
        *,
        complexity: bool | ComplexityScorer = True,
    ) -> dict[str, Any]:
        """The :class:`~faremeter.routing.Router` arguments this table describes.

        ``Router.from_config`` builds the router from them; returning arguments
        (not a router) keeps this module independent of the router module.

        Args:
            catalog: Prices and model facts (default: the bundled snapshot).
            complexity: A scorer to use instead of faremeter's (``complexity =
                false`` in the table always disables scoring).
        """
        rules = [
            RouteRule.of(
                r.match,
                model=r.model,
                tier=r.tier,
                name=r.name,
            )
            for r in self.rules
        ]
        thresholds = {
            name: t.max_complexity for name, t in self.tiers.items() if t.max_complexity is not None
        }
        overrides = {model: o.model_dump(exclude_none=True) for model, o in self.models.items()}
        return {
            "tiers": {name: list(t.models) for name, t in self.tiers.items()},
            "catalog": catalog,
            "rules": rules,
            "steps": self.steps,
            "default_tier": self.default_tier,
            "complexity": complexity if self.complexity else False,
            "complexity_thresholds": thresholds or None,
            "default_output_tokens": self.default_output_tokens,
            "model_overrides": overrides,
        }


def _describe(error: Any) -> tuple[str, str]:
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    kind: str = error["type"]
    if kind == "extra_forbidden":
        return loc, "unknown key"
    if kind == "missing":
        return loc, "required key is missing"
    message: str = error["msg"]
    if kind == "value_error":
        return loc, message.removeprefix("Value error, ")
    return loc, f"{message[:1].lower()}{message[1:]}, got {error.get('input')!r}"


def parse_routing(
    data: RoutingConfig | Mapping[str, Any],
    *,
    catalog: PriceCatalog | None = None,
    source: str = "faremeter.toml",
) -> RoutingConfig:
    """Validate a ``[routing]`` table (already parsed TOML, or a model).

    Checks beyond the types: every tier has models, every model is known to
    the catalog (close matches suggested), a model sits in one tier, the
    built-in tiers are declared cheapest first, every rule and step points at
    an existing tier or a model of some tier, the default tier exists.

    Raises:
        ConfigError: ``<source>: routing.<key>: <reason>``.
    """
    if isinstance(data, RoutingConfig):
        config = data
    else:
        try:
            config = RoutingConfig.model_validate(dict(data))
        except ValidationError as exc:
            problems = [_describe(e) for e in exc.errors()]
            key, reason = problems[0]
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise ConfigError(f"{source}: routing.{key}: {reason}{more}") from None

    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(f"{source}: routing.{key}: {reason}")

    if not config.tiers:
        raise fail("tiers", "at least one tier with models is needed")
    if catalog is None:
        from faremeter.pricing import PriceCatalog

        catalog = PriceCatalog.default()
    owner: dict[str, str] = {}
    for tier, spec in config.tiers.items():
        if not spec.models:
            raise fail(f"tiers.{tier}.models", "empty tier: list at least one model")
        for i, model in enumerate(spec.models):
            if model in owner:
                raise fail(
                    f"tiers.{tier}.models.{i}",
                    f"model {model!r} is already in tier {owner[model]!r} "
                    "(a model belongs to one tier)",
                )
            owner[model] = tier
            try:
                catalog.get(model)
            except UnknownModelError as exc:
                raise fail(
                    f"tiers.{tier}.models.{i}", str(exc).replace("no price known for ", "unknown ")
                ) from None
    builtin = [t for t in config.tiers if t in BUILTIN_TIERS]
    if builtin != sorted(builtin, key=BUILTIN_TIERS.index):
        raise fail(
            "tiers",
            f"tiers are ranked in the order written, cheapest first; {', '.join(builtin)} is out "
            f"of order (write {', '.join(sorted(builtin, key=BUILTIN_TIERS.index))})",
        )
    tier_list = ", ".join(config.tiers)

    def check_target(key: str, model: str | None, tier: str | None) -> None:
        if (model is None) == (tier is None):
            raise fail(key, "give exactly one of model or tier")
        if tier is not None and tier not in config.tiers:
            raise fail(
                f"{key}.tier",
                f"rule points to tier {tier!r}, which does not exist (tiers: {tier_list})",
            )
        if model is not None and model not in owner:
            hint = "add it to a tier" if model in catalog else "unknown model"
            raise fail(
                f"{key}.model", f"rule points to model {model!r}, which is in no tier ({hint})"
            )

    for i, rule in enumerate(config.rules):
        if not rule.match:
            raise fail(f"rules.{i}.match", "name at least one attribute to match")
        for attr, value in rule.match.items():
            if isinstance(value, list) and not value:
                raise fail(f"rules.{i}.match.{attr}", "empty list matches nothing")
        check_target(f"rules.{i}", rule.model, rule.tier)
    for step, target in config.steps.items():
        if target not in config.tiers and target not in owner:
            hint = "add it to a tier" if target in catalog else "not a tier nor a known model"
            raise fail(
                f"steps.{step}",
                f"points to {target!r}, which is in no tier ({hint}; tiers: {tier_list})",
            )
    if config.default_tier is not None and config.default_tier not in config.tiers:
        raise fail(
            "default_tier", f"tier {config.default_tier!r} does not exist (tiers: {tier_list})"
        )
    for model in config.models:
        if model not in owner:
            raise fail(f"models.{model}", "overrides a model that is in no tier")
    thresholds = [
        (name, t.max_complexity) for name, t in config.tiers.items() if t.max_complexity is not None
    ]
    for (a, va), (b, vb) in itertools.pairwise(thresholds):
        if vb < va:
            raise fail(
                f"tiers.{b}.max_complexity",
                f"{vb} is below {a}'s {va}; thresholds rise with the tiers",
            )
    return config
