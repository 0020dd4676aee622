"""Models a router may pick, with their tier, limits, capabilities and prices.

A :class:`Candidate` is built once, when the router is built, from the price
catalog (LiteLLM's map carries context windows and ``supports_*`` flags) plus
the user's overrides. Everything a routing decision needs is precomputed here
(per-token rates as Decimal for the reported estimate and as float for
ranking), so :meth:`faremeter.routing.Router.route` does no catalog lookups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from faremeter.usage import Usage

if TYPE_CHECKING:
    from faremeter.pricing import PriceCatalog

__all__ = [
    "BUILTIN_TIERS",
    "CAPABILITY_ALIASES",
    "Candidate",
    "normalize_capabilities",
]

BUILTIN_TIERS: Final = ("economy", "standard", "premium")
"""Well-known tier names, cheapest first; users may add their own."""

CAPABILITY_ALIASES: Final = {
    "tools": "function_calling",
    "tool_calling": "function_calling",
    "function_calling": "function_calling",
    "vision": "vision",
    "images": "vision",
    "json": "response_schema",
    "json_mode": "response_schema",
    "structured_output": "response_schema",
    "response_schema": "response_schema",
}
"""Request-side names (``tools``, ``vision``, ``json``) → the catalog's flag names.

Names not listed here are used as given, so any flag the catalog carries
(``reasoning``, ``pdf_input``, ``audio_input`` ...) can be required too.
"""


def normalize_capabilities(names: Iterable[str]) -> frozenset[str]:
    """Map request-side capability names onto the catalog's flag names."""
    if isinstance(names, str):
        names = (names,)
    return frozenset(CAPABILITY_ALIASES.get(n.strip().lower(), n.strip().lower()) for n in names)


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    """One model the router may choose, as the router sees it.

    Attributes:
        model: The model id callers pass to their client (also the catalog key).
        tier: Quality tier name (``economy``, ``standard``, ``premium`` or user-named).
        rank: Position of the tier, 0 = cheapest tier; "down a tier" means lower rank.
        max_input_tokens: Context window; ``None`` when unknown (treated as
            fitting any prompt by the router, but never chosen by a
            ``context_window`` fallback, which must be sure).
        max_output_tokens: Largest completion, when known.
        capabilities: Catalog flags (``function_calling``, ``vision``, ``response_schema`` ...).
        input_per_token: Base prompt rate, USD per token.
        output_per_token: Base completion rate, USD per token.
        long_context_above: Smallest long-context threshold; prompts above it
            are estimated through the catalog (the whole request reprices).
    """

    model: str
    tier: str = ""
    rank: int = 0
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    capabilities: frozenset[str] = frozenset()
    input_per_token: Decimal = Decimal(0)
    output_per_token: Decimal = Decimal(0)
    long_context_above: int | None = None
    catalog: PriceCatalog | None = field(default=None, repr=False, compare=False)
    in_rate: float = field(default=0.0, repr=False, compare=False)
    out_rate: float = field(default=0.0, repr=False, compare=False)

    @classmethod
    def from_catalog(
        cls,
        model: str,
        catalog: PriceCatalog,
        *,
        tier: str = "",
        rank: int = 0,
        max_input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        capabilities: Iterable[str] | None = None,
    ) -> Candidate:
        """Build from the catalog's price entry; explicit arguments override it.

        Raises:
            faremeter.errors.UnknownModelError: The catalog cannot price ``model``
                (with close matches suggested).
        """
        price = catalog.get(model)
        rates = price.rates_for(0)
        per_in = rates["input"].scaleb(-6)
        per_out = rates["output"].scaleb(-6)
        caps = price.capabilities if capabilities is None else normalize_capabilities(capabilities)
        return cls(
            model=model,
            tier=tier,
            rank=rank,
            max_input_tokens=max_input_tokens
            if max_input_tokens is not None
            else price.max_input_tokens,
            max_output_tokens=max_output_tokens
            if max_output_tokens is not None
            else price.max_output_tokens,
            capabilities=frozenset(caps),
            input_per_token=per_in,
            output_per_token=per_out,
            long_context_above=min((t.above_tokens for t in price.tiers), default=None),
            catalog=catalog,
            in_rate=float(per_in),
            out_rate=float(per_out),
        )

    def fits(self, input_tokens: int) -> bool:
        """Whether a prompt of ``input_tokens`` fits the context window (unknown fits)."""
        limit = self.max_input_tokens
        return limit is None or input_tokens <= limit

    def can_surely_take(self, input_tokens: int | None) -> bool:
        """Whether the window is *known* to take the prompt (``context_window`` moves)."""
        limit = self.max_input_tokens
        if limit is None:
            return False
        return input_tokens is None or input_tokens <= limit

    def estimate(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Estimated cost of a call in USD: prompt tokens plus expected completion.

        Above a long-context threshold the catalog prices the request, since
        the whole request reprices there; otherwise two multiplications.
        """
        above = self.long_context_above
        if above is not None and input_tokens >= above and self.catalog is not None:
            total = self.catalog.cost(
                self.model, Usage(input_tokens=input_tokens, output_tokens=output_tokens)
            ).total
            if total is not None:
                return total
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token

    def rough_cost(self, input_tokens: int, output_tokens: int) -> float:
        """Float estimate used only to rank candidates (fast; never reported)."""
        return input_tokens * self.in_rate + output_tokens * self.out_rate
