"""Tool and response caches that record what they saved.

``ToolCache`` keys a tool call by its name and the canonical JSON of its
arguments; ``ResponseCache`` keys a model request by model, messages and every
parameter that changes the output. Both store JSON (never pickle) in memory,
SQLite or Redis, and record each hit as a ``cached`` span with cost 0 and the
dollars the miss cost as ``saved``; :func:`cache_report` turns those spans
into hit rates, savings and TTL suggestions.
"""

from __future__ import annotations

from faremeter.caching.backends import (
    CacheBackend,
    CacheBackendError,
    MemoryBackend,
    SQLiteBackend,
    backend_from_url,
)
from faremeter.caching.entries import CacheEntry
from faremeter.caching.keys import canonical_json
from faremeter.caching.report import CacheReport, CacheRow, CacheSuggestion, cache_report
from faremeter.caching.response_cache import CachedResponse, ResponseCache
from faremeter.caching.singleflight import AsyncSingleFlight, SingleFlight
from faremeter.caching.tool_cache import CachedToolError, CacheStats, ToolCache, cache_priced_tool

__all__ = [
    "AsyncSingleFlight",
    "CacheBackend",
    "CacheBackendError",
    "CacheEntry",
    "CacheReport",
    "CacheRow",
    "CacheStats",
    "CacheSuggestion",
    "CachedResponse",
    "CachedToolError",
    "MemoryBackend",
    "ResponseCache",
    "SQLiteBackend",
    "SingleFlight",
    "ToolCache",
    "backend_from_url",
    "cache_priced_tool",
    "cache_report",
    "canonical_json",
]
