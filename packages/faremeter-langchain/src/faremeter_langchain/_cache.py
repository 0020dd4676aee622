"""faremeter's caches in LangChain's own cache slots.

* :class:`FaremeterLLMCache` is a LangChain ``BaseCache``: pass it to
  ``set_llm_cache(...)`` or a model's ``cache=``, as with ``InMemoryCache``.
  It stores generations as JSON through ``langchain_core.load.dumpd`` (never
  pickle) in a :class:`~faremeter.caching.ResponseCache` — memory, SQLite or
  Redis — with what the miss cost.
* :func:`cached_tool` caches a LangChain tool (``@tool``, ``StructuredTool`` or
  any ``BaseTool``) by content without rewriting it.

Recording: LangChain replays a hit through the normal callbacks, stamping
``usage_metadata["total_cost"] = 0`` on each replayed message, and
:class:`~faremeter_langchain.FaremeterCallbackHandler` records exactly that
as one ``cached`` span at $0 with ``saved`` = the price of the replayed usage
— the usage this cache stored, so ``saved`` equals what the miss was charged.
The cache therefore records nothing itself by default; pass
``record_hits=True`` only when no faremeter handler (or ``track()``) sees
the model.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from cachetools import LRUCache
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from langchain_core.tools import BaseTool

from faremeter import Meter, Usage
from faremeter.caching import CacheBackend, ResponseCache, ToolCache
from faremeter.caching.keys import bind_arguments
from faremeter.normalize import safe_parse_usage

__all__ = ["FaremeterLLMCache", "cached_tool"]

logger = logging.getLogger("faremeter.langchain")

_ALLOWED = [
    AIMessage,
    AIMessageChunk,
    ChatGeneration,
    ChatGenerationChunk,
    Generation,
    GenerationChunk,
]
"""The only classes a stored entry may revive: outputs and assistant messages."""

_NOT_ARGUMENTS = frozenset({"run_manager", "config", "callbacks"})


def _model_of(generations: Sequence[Generation]) -> str | None:
    for gen in generations:
        message = getattr(gen, "message", None)
        metadata = getattr(message, "response_metadata", None) or gen.generation_info or {}
        for key in ("model_name", "model", "model_id"):
            value = metadata.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _usage_of(generations: Sequence[Generation]) -> Usage | None:
    total: Usage | None = None
    seen: list[Any] = []
    for gen in generations:
        raw = getattr(getattr(gen, "message", None), "usage_metadata", None)
        if not raw or raw in seen:  # n>1: providers copy one request's usage on each
            continue
        seen.append(raw)
        usage = safe_parse_usage(raw, where="langchain cache")
        if usage is not None:
            total = usage if total is None else total + usage
    return total


def _revive(data: Any) -> list[Generation] | None:
    """Generations from their stored ``dumpd`` form, admitting only output classes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # load() is marked beta
        revived: Any = load(data, allowed_objects=_ALLOWED)
    if not isinstance(revived, list):
        return None
    generations: list[Generation] = []
    for item in revived:  # pyright: ignore[reportUnknownVariableType]
        if not isinstance(item, Generation):
            return None
        generations.append(item)
    return generations


class FaremeterLLMCache(BaseCache):
    """A LangChain LLM cache backed by faremeter's response cache.

    Example:
        >>> from langchain_core.globals import set_llm_cache
        >>> set_llm_cache(FaremeterLLMCache("sqlite:///.faremeter/llm-cache.db"))

    Like every LangChain cache it serves any request it has seen (LangChain
    caches regardless of temperature); the key is LangChain's own: the
    serialised messages plus the model's serialised parameters.

    Args:
        cache: A :class:`~faremeter.caching.ResponseCache`, a backend, or a URL
            (``memory``, ``sqlite:///path.db``, ``redis://host:6379/0``).
        meter: Prices stored usage (and records hits with ``record_hits``).
        ttl: Seconds an entry is served when a backend/URL is given (``None``: forever).
        record_hits: Record hits here; leave False when a faremeter handler sees
            the model (it records the hit itself — one span per call).
        memo_size: Stored entries kept revived in this process (0 disables).
    """

    def __init__(
        self,
        cache: ResponseCache | CacheBackend | str = "memory",
        *,
        meter: Meter | None = None,
        ttl: float | None = None,
        record_hits: bool = False,
        memo_size: int = 256,
    ) -> None:
        if isinstance(cache, ResponseCache):
            self.response_cache = cache
        else:
            self.response_cache = ResponseCache(
                backend=cache, ttl=ttl, meter=meter, deterministic_only=False
            )
        self._meter = meter
        self.record_hits = record_hits
        # Reviving generations (pydantic objects) costs more than the rest of a
        # hit; entries are immutable once stored, so revive each one once.
        self._memo: LRUCache[tuple[str, float], list[Generation]] = LRUCache(
            maxsize=max(1, memo_size)
        )
        self._memo_size = memo_size
        self._memo_lock = threading.Lock()

    def _key(self, prompt: str, llm_string: str) -> str:
        return self.response_cache.key_of("langchain", {"prompt": prompt, "llm": llm_string})

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The stored generations for this prompt and model configuration."""
        try:
            key = self._key(prompt, llm_string)
            hit = self.response_cache.lookup_key(key, record=self.record_hits)
            if hit is None:
                return None
            memo_key = (key, hit.stored_at)
            with self._memo_lock:
                revived = self._memo.get(memo_key)
            if revived is None:
                revived = _revive(hit.response)
                if revived is None:
                    return None
                if self._memo_size > 0:
                    with self._memo_lock:
                        self._memo[memo_key] = revived
            # Copies: LangChain stamps total_cost=0 onto what a lookup returns.
            return [g.model_copy() for g in revived]
        except Exception:  # a cache fault is a miss, never an error in the chain
            logger.exception("faremeter: LLM cache lookup failed; treated as a miss")
            return None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the generations with their usage and cost."""
        try:
            usage = _usage_of(return_val)
            model = _model_of(return_val)
            cost: Decimal | None = None
            if model and usage is not None:
                cost = self.response_cache.meter.price(model, usage).total
            data = json.loads(json.dumps(dumpd(return_val)))
            self.response_cache.store_key(
                self._key(prompt, llm_string), data, usage=usage, cost=cost, model=model
            )
        except Exception:
            logger.exception("faremeter: LLM cache update failed; the response is not cached")

    def clear(self, **kwargs: Any) -> None:
        """Drop every entry of the underlying store."""
        with self._memo_lock:
            self._memo.clear()
        self.response_cache.clear()


def _arguments_key(fn: Callable[..., Any]) -> Callable[..., Any]:
    def key(*args: Any, **kwargs: Any) -> Any:
        data = bind_arguments(fn, args, kwargs)
        return {k: v for k, v in data.items() if k not in _NOT_ARGUMENTS}

    return key


def cached_tool(
    tool: BaseTool,
    cache: ToolCache,
    *,
    price: Decimal | float | str | None = None,
) -> BaseTool:
    """A copy of ``tool`` whose calls go through ``cache``; ``tool`` itself is unchanged.

    Name, description, schema and LangChain's parsing and callbacks stay the
    tool's own: only its body (``_run`` / ``_arun``) is wrapped. Under a
    :class:`~faremeter_langchain.FaremeterCallbackHandler` a hit turns the
    handler's tool span into one ``cached`` span ($0, ``saved``); a miss stays
    the handler's normally priced span.

    Args:
        tool: Any LangChain tool.
        cache: The cache (TTL, backend, exclusions).
        price: USD per call for ``saved``; else the catalog's price for the tool
            name. The handler prices misses from the catalog, so price the tool
            there (``ToolPrice``) to have misses charged and hits saved alike.
    """
    copy = tool.model_copy()
    run = tool._run  # pyright: ignore[reportPrivateUsage]
    wrapped_run = cache.wrap(run, name=tool.name, price=price, key=_arguments_key(run))
    object.__setattr__(copy, "_run", wrapped_run)
    arun = tool._arun  # pyright: ignore[reportPrivateUsage]
    if inspect.iscoroutinefunction(arun):
        wrapped_arun = cache.wrap(arun, name=tool.name, price=price, key=_arguments_key(arun))
        object.__setattr__(copy, "_arun", wrapped_arun)
    return copy
