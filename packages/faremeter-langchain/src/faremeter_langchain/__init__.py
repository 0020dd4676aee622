"""faremeter for LangChain and LangGraph: price and attribute every run.

Add :class:`FaremeterCallbackHandler` to a run's callbacks, or wrap code in
``with track(...)``: every chat model, tool and retriever run is priced and
recorded with the real run tree and the run's attribution.

``track`` resolves on first use: it needs ``langchain_core.tracers.context``,
which pulls in the LangSmith client (seconds of import time) that an app using
only the handler never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faremeter_langchain._handler import DEFAULT_METADATA_KEYS, FaremeterCallbackHandler

if TYPE_CHECKING:
    from faremeter_langchain._cache import FaremeterLLMCache, cached_tool
    from faremeter_langchain._routed import RoutedChatModel
    from faremeter_langchain._track import Tracking, track

__all__ = [
    "DEFAULT_METADATA_KEYS",
    "FaremeterCallbackHandler",
    "FaremeterLLMCache",
    "RoutedChatModel",
    "Tracking",
    "cached_tool",
    "track",
]

_LAZY = {
    "track": "faremeter_langchain._track",
    "Tracking": "faremeter_langchain._track",
    "FaremeterLLMCache": "faremeter_langchain._cache",
    "cached_tool": "faremeter_langchain._cache",
    "RoutedChatModel": "faremeter_langchain._routed",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'faremeter_langchain' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
