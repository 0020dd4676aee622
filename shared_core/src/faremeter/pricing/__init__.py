"""Model and tool prices: the bundled LiteLLM-derived snapshot, overrides, pricing.

``PriceCatalog.default().cost("gpt-4o", usage)`` prices one call; see
``docs/pricing.md`` for how names resolve and how to add your own prices.
Nothing here imports litellm, and the snapshot is parsed on first use.
"""

from faremeter.pricing.catalog import PriceCatalog
from faremeter.pricing.model_price import OVERRIDE_VERSION, ModelPrice, PriceTier
from faremeter.pricing.tools import ToolPrice

__all__ = ["OVERRIDE_VERSION", "ModelPrice", "PriceCatalog", "PriceTier", "ToolPrice"]
