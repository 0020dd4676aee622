"""Routing rules: "calls whose attributes look like this go to that tier or model".

A rule matches when *every* one of its conditions holds; a condition is an
attribute name and the values it may take (any of them). The special name
``tags`` matches when any of the request's tags is listed. Rules are tried in
order and the first match wins, like a routing table. The seed use case is a
step → model map (``{"parse": "gpt-4o-mini", "draft": "gpt-4o"}``): see
:meth:`RouteRule.from_step_map`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from faremeter.spans import AttributeValue

__all__ = ["RouteRule"]

_TAGS: Final = "tags"


def _values(value: object) -> frozenset[str]:
    if isinstance(value, str | int | float | bool):
        return frozenset((str(value),))
    if isinstance(value, Iterable):
        values = frozenset(str(v) for v in value)  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
        if values:
            return values
    raise ValueError(
        f"a match value must be a string or a non-empty list of strings, got {value!r}"
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class RouteRule:
    """Send matching calls to a ``tier`` or a specific ``model`` (exactly one).

    Attributes:
        name: Shown in the decision's reason and its ``route.rule`` attribute.
        match: Attribute name → accepted values (``{"step": ("parse", "summarize")}``).
        model: Target model (must be one of the router's candidates).
        tier: Target tier.
    """

    name: str
    match: Mapping[str, frozenset[str]]
    model: str | None = None
    tier: str | None = None

    def __post_init__(self) -> None:
        if (self.model is None) == (self.tier is None):
            raise ValueError(f"rule {self.name!r}: give exactly one of model= or tier=")
        if not self.match:
            raise ValueError(f"rule {self.name!r}: match must name at least one attribute")

    @classmethod
    def of(
        cls,
        match: Mapping[str, object],
        *,
        model: str | None = None,
        tier: str | None = None,
        name: str | None = None,
    ) -> RouteRule:
        """Build from plain values: ``RouteRule.of({"step": "parse"}, model="gpt-4o-mini")``."""
        compiled = {str(k): _values(v) for k, v in match.items()}
        if name is None:
            name = ",".join(f"{k}={'|'.join(sorted(v))}" for k, v in compiled.items())
        return cls(name=name, match=compiled, model=model, tier=tier)

    @classmethod
    def from_step_map(cls, steps: Mapping[str, str], tiers: Iterable[str]) -> list[RouteRule]:
        """Rules from a step → model-or-tier map (the ``MODEL_ROUTING`` dict).

        A value naming a tier routes to that tier; anything else is a model.
        """
        tier_names = frozenset(tiers)
        rules: list[RouteRule] = []
        for step, target in steps.items():
            if target in tier_names:
                rules.append(cls.of({"step": step}, tier=target, name=f"step={step}"))
            else:
                rules.append(cls.of({"step": step}, model=target, name=f"step={step}"))
        return rules

    def matches(self, attributes: Mapping[str, AttributeValue], tags: Iterable[str]) -> bool:
        """Whether every condition holds for these attributes and tags."""
        for key, accepted in self.match.items():
            if key == _TAGS:
                if accepted.isdisjoint(tags):
                    return False
                continue
            value = attributes.get(key)
            if value is None:
                return False
            if (value if type(value) is str else str(value)) not in accepted:
                return False
        return True

    @property
    def target(self) -> str:
        """``model X`` or ``tier Y``, for messages."""
        return f"model {self.model}" if self.model is not None else f"tier {self.tier}"
