"""What a router is asked (:class:`RouteRequest`) and what it answers (:class:`RouteDecision`).

Both are frozen values: a decision is logged as span attributes and may be
replayed later ("what would the router have done with these prices"), so it
must not change after the fact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from faremeter.spans import AttributeValue

__all__ = ["NoCandidateError", "RouteDecision", "RouteRequest", "message_text"]

_EMPTY: Final[Mapping[str, AttributeValue]] = MappingProxyType({})


class NoCandidateError(LookupError):
    """No candidate can take the request (capabilities or context window).

    Raised by :meth:`faremeter.routing.Router.route` — a request nothing can
    serve is a configuration problem the caller must see, not something to
    paper over by picking a model that will fail.
    """


def message_text(messages: object) -> str:
    """The text of a prompt given as a string, OpenAI-style dicts or framework messages.

    Content parts other than text (images, audio) contribute nothing; the
    router only needs the text for its length and complexity estimates.
    """
    if messages is None:
        return ""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, Mapping):
        return _content_text(messages.get("content"))  # pyright: ignore[reportUnknownMemberType,reportUnknownArgumentType]
    if isinstance(messages, Sequence):
        parts: list[str] = []
        for message in messages:  # pyright: ignore[reportUnknownVariableType]
            if isinstance(message, str):
                parts.append(message)
            elif isinstance(message, Mapping):
                parts.append(_content_text(message.get("content")))  # pyright: ignore[reportUnknownMemberType,reportUnknownArgumentType]
            else:
                inner: object = getattr(message, "content", None)  # pyright: ignore[reportUnknownArgumentType]
                parts.append(_content_text(inner))
        return "\n".join(p for p in parts if p)
    content: object = getattr(messages, "content", None)
    return _content_text(content)


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        out: list[str] = []
        for part in content:  # pyright: ignore[reportUnknownVariableType]
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Mapping) and part.get("type", "text") == "text":  # pyright: ignore[reportUnknownMemberType]
                text = part.get("text")  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
                if isinstance(text, str):
                    out.append(text)
        return "\n".join(out)
    return ""


@dataclass(frozen=True, kw_only=True, slots=True)
class RouteRequest:
    """One model call the router must place.

    Attributes:
        messages: The prompt (a string, OpenAI-style message dicts or framework
            message objects); used for the token estimate and the complexity
            score when those are not given.
        input_tokens: Prompt tokens, when the caller counted them (better than
            the router's 4-characters-per-token estimate).
        max_tokens: The call's completion cap; the estimate assumes it is used.
        capabilities: Required capabilities: ``tools``, ``vision``, ``json``
            or any catalog flag (``reasoning``, ``pdf_input`` ...).
        attributes: Attribution in force (``step``, ``workflow``, ``user_id`` ...)
            that routing rules match on.
        tags: Free-form labels rules can match.
        budget_headroom: Money left under the tightest matching ``degrade``
            budget; the router picks a model whose estimate fits it.
        pressure: A matching budget is past its warn threshold: route down a tier.
        complexity: A precomputed complexity score in [0, 1] (skips scoring).
    """

    messages: Any = None
    input_tokens: int | None = None
    max_tokens: int | None = None
    capabilities: frozenset[str] = frozenset()
    attributes: Mapping[str, AttributeValue] = field(default_factory=lambda: _EMPTY)
    tags: tuple[str, ...] = ()
    budget_headroom: Decimal | None = None
    pressure: bool = False
    complexity: float | None = None

    def __post_init__(self) -> None:
        for name in ("input_tokens", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"RouteRequest.{name} must be an int >= 0, got {value!r}")
        if self.complexity is not None and not 0.0 <= self.complexity <= 1.0:
            raise ValueError(f"RouteRequest.complexity must be in [0, 1], got {self.complexity!r}")
        if self.budget_headroom is not None and not isinstance(self.budget_headroom, Decimal):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(
                "RouteRequest.budget_headroom must be a Decimal (money is never float)"
            )
        if not isinstance(self.capabilities, frozenset):  # pyright: ignore[reportUnnecessaryIsInstance]
            object.__setattr__(self, "capabilities", frozenset(self.capabilities))

    @property
    def text(self) -> str:
        """The prompt's text (see :func:`message_text`)."""
        return message_text(self.messages)


@dataclass(frozen=True, kw_only=True, slots=True)
class RouteDecision:
    """The router's answer, and why.

    Attributes:
        model: The chosen model.
        tier: Its tier.
        reason: Human-readable chain of reasons (rule, complexity, pressure, budget).
        estimated_cost: Estimated USD cost of the call on ``model``
            (prompt tokens + expected completion).
        alternatives: Other capable models, in the order a fallback chain
            should try them: the rest of the chosen tier cheapest first, then
            higher tiers, then lower tiers (lower first under budget
            pressure); within those other tiers, by input price.
        input_tokens: The prompt size the decision assumed.
        output_tokens: The completion size the estimate assumed.
        complexity: The complexity score, when it was used.
        rule: The name of the rule that matched, if any.
        within_budget: ``False`` when ``budget_headroom`` was given and no
            capable model's estimate fits it (the cheapest was chosen).
    """

    model: str
    tier: str
    reason: str
    estimated_cost: Decimal
    alternatives: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    complexity: float | None = None
    rule: str | None = None
    within_budget: bool = True

    @property
    def candidates(self) -> tuple[str, ...]:
        """The chosen model followed by the alternatives: a fallback order."""
        return (self.model, *self.alternatives)

    def as_attributes(self) -> dict[str, AttributeValue]:
        """The decision as span attributes (the decision log).

        Money is a string so it stays exact through every exporter.
        """
        attrs: dict[str, AttributeValue] = {
            "route.model": self.model,
            "route.tier": self.tier,
            "route.reason": self.reason,
            "route.estimated_cost": str(self.estimated_cost),
            "route.alternatives": ",".join(self.alternatives),
            "route.input_tokens": self.input_tokens,
        }
        if self.complexity is not None:
            attrs["route.complexity"] = round(self.complexity, 4)
        if self.rule is not None:
            attrs["route.rule"] = self.rule
        if not self.within_budget:
            attrs["route.within_budget"] = False
        return attrs
