"""Attribute names faremeter exports, in one place.

The ``gen_ai.*`` names follow the OpenTelemetry GenAI semantic conventions so
any backend that understands them (Grafana, Datadog, Honeycomb, Langfuse,
Phoenix) shows faremeter spans like any other GenAI instrumentation's. Cost
has no stable convention yet; ``gen_ai.usage.cost.amount`` / ``.currency`` is
the open proposal, and ``faremeter.cost.direct`` / ``faremeter.cost.inclusive``
say which of the two a number is, so a backend summing spans over a trace
counts each dollar once (sum ``direct``; read ``inclusive`` on one span).

Names are spelled out here rather than imported from
``opentelemetry-semantic-conventions``: its GenAI module is "incubating" and
renames attributes between releases, while an exporter's output must not
change under a user's feet.
"""

from __future__ import annotations

from typing import Final

from faremeter.spans import SpanKind

__all__ = [
    "ATTRIBUTE_PREFIX",
    "BUDGET_PREFIX",
    "ERROR_TYPE",
    "FM_COST_DIRECT",
    "FM_COST_INCLUSIVE",
    "FM_COST_SAVED",
    "FM_COST_UNPRICED_REASON",
    "FM_INCLUSIVE_UNPRICED",
    "FM_KIND",
    "FM_PRICE_VERSION",
    "FM_SOURCE",
    "FM_STATUS",
    "FM_TAGS",
    "FM_USAGE_SOURCE",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_SYSTEM",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS",
    "GEN_AI_USAGE_COMPLETION_TOKENS",
    "GEN_AI_USAGE_COST_AMOUNT",
    "GEN_AI_USAGE_COST_CURRENCY",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_USAGE_PROMPT_TOKENS",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS",
    "OPERATION_BY_KIND",
    "RESPONSE_MODEL_ATTRIBUTE",
    "ROUTE_PREFIX",
    "SESSION_ID",
    "SOURCE_OTEL",
    "USER_ID",
]

# -- GenAI semantic conventions -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"
"""The provider attribute before it was renamed ``gen_ai.provider.name`` (read, never written)."""
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
"""Deprecated spelling of input tokens that older instrumentations still emit (read only)."""
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
"""Deprecated spelling of output tokens that older instrumentations still emit (read only)."""
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"
"""Proposed (semantic-conventions PR #443): the span's own cost, as a double."""
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
ERROR_TYPE: Final = "error.type"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"

OPERATION_BY_KIND: Final[dict[SpanKind, str]] = {
    SpanKind.LLM: "chat",
    SpanKind.EMBEDDING: "embeddings",
    SpanKind.TOOL: "execute_tool",
    SpanKind.AGENT: "invoke_agent",
    SpanKind.RETRIEVAL: "retrieval",
}
"""``gen_ai.operation.name`` per faremeter span kind (chains and cache hits have none)."""

# -- faremeter's own ------------------------------------------------------------
FM_COST_DIRECT: Final = "faremeter.cost.direct"
"""This span's own cost in USD (what ``gen_ai.usage.cost.amount`` also holds): sum this."""
FM_COST_INCLUSIVE: Final = "faremeter.cost.inclusive"
"""This span plus every descendant that ended before it, in USD: never sum this."""
FM_INCLUSIVE_UNPRICED: Final = "faremeter.cost.inclusive_unpriced"
"""How many spans in that subtree could not be priced (their cost is not in ``inclusive``)."""
FM_COST_UNPRICED_REASON: Final = "faremeter.cost.unpriced_reason"
FM_COST_SAVED: Final = "faremeter.cost.saved"
FM_PRICE_VERSION: Final = "faremeter.price_version"
FM_KIND: Final = "faremeter.kind"
FM_STATUS: Final = "faremeter.status"
FM_TAGS: Final = "faremeter.tags"
FM_USAGE_SOURCE: Final = "faremeter.usage.source"
ATTRIBUTE_PREFIX: Final = "faremeter."
"""Attribution (``user_id``, ``team``, ``workflow``, ...) is exported as ``faremeter.<key>``."""
ROUTE_PREFIX: Final = "route."
"""Span attributes the router stamps (``route.model``, ``route.reason``, ...).

Exported as ``faremeter.route.*``; counted by the Prometheus route metric.
"""
BUDGET_PREFIX: Final = "budget."
"""Span attributes budgets stamp (``budget.name``, ``budget.decision``, ...).

Exported as ``faremeter.budget.*``.
"""
RESPONSE_MODEL_ATTRIBUTE: Final = "response_model"
"""Span attribute holding the model that answered when it differs from the one requested."""

FM_SOURCE: Final = "faremeter.source"
"""Marks a ledger span recorded *from* an OpenTelemetry span (value :data:`SOURCE_OTEL`)."""
SOURCE_OTEL: Final = "otel"
