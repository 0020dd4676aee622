"""Each package's public names, pinned: adding or removing one is a deliberate act.

A name listed in ``__all__`` must resolve (lazily loaded ones included), and the
list must be exactly this — so a refactor cannot silently drop a public name,
and a helper made public by accident shows up in review.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "faremeter": {
        "Budget", "BudgetExceeded", "BudgetManager", "BudgetStatus", "CURRENCY", "CircuitBreaker",
        "ConfigError", "Cost", "FallbackChain", "FaremeterError", "InvalidUsageError", "Ledger",
        "Meter", "ModelPrice", "OpenSpan", "PriceCatalog", "ResponseCache", "RetryPolicy",
        "RouteDecision", "RouteRequest", "Router", "SpanKind", "SpanRecord", "SpanScope",
        "SpanStatus", "ToolCache", "ToolPrice", "TraceNode", "TraceTree", "UnknownModelError",
        "Usage", "attributes", "bind", "current_attributes", "current_span", "get_meter",
        "set_meter",
    },
    "faremeter_langchain": {
        "DEFAULT_METADATA_KEYS", "FaremeterCallbackHandler", "FaremeterLLMCache",
        "RoutedChatModel", "Tracking", "cached_tool", "track",
    },
    "faremeter_llamaindex": {
        "FaremeterEventHandler", "FaremeterSpanHandler", "LlamaIndexInstrumentation",
        "ROUTED_MODEL_KEY", "RoutedLLM", "cached_function_tool", "instrument",
    },
    "faremeter_litellm": {
        "FaremeterLogger", "FaremeterRoutingStrategy", "Instrumentation", "RoutedCompletion",
        "classify_error", "instrument",
    },
    "faremeter.calls": {
        "ADOPTS_ADMISSIONS", "CallTracker", "drain_calls", "log_fault", "safe_hook",
    },
    "faremeter.call_probes": {"add_call_probe", "inside_adapter_call"},
    "faremeter.prompt_prefix": {
        "HASH_ATTRIBUTE", "PREFIX_CHARS", "PROMPT_CACHE_MIN_TOKENS", "TOKENS_ATTRIBUTE",
        "prompt_prefix_attributes", "prompt_prefix_hash", "stamp_prompt_prefix",
    },
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned_and_every_name_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == PUBLIC[module]
    assert len(mod.__all__) == len(set(mod.__all__)), "a name is listed twice"
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name} does not resolve"
