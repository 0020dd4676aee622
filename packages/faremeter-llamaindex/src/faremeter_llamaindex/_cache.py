"""Cache a LlamaIndex ``FunctionTool`` by content without rewriting it.

:func:`cached_function_tool` returns a copy of the tool whose function goes
through a :class:`~faremeter.caching.ToolCache`; name, description, schema,
partial params and callbacks stay the tool's own. Under
``faremeter_llamaindex.instrument()`` a hit turns the tool's span into one
``cached`` span ($0, ``saved``), a miss stays the normally priced span; with
no instrumentation the cache records both itself.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from llama_index.core.tools import FunctionTool

from faremeter.caching import ToolCache
from faremeter.caching.keys import bind_arguments

__all__ = ["cached_function_tool"]


def _key_without(fn: Callable[..., Any], skip: str | None) -> Callable[..., Any]:
    def key(*args: Any, **kwargs: Any) -> Any:
        data = bind_arguments(fn, args, kwargs)
        if skip is not None:
            data.pop(skip, None)  # a workflow Context is not part of what the tool computes
        return data

    return key


def cached_function_tool(
    tool: FunctionTool,
    cache: ToolCache,
    *,
    price: Decimal | float | str | None = None,
) -> FunctionTool:
    """A copy of ``tool`` (sync and async) whose calls go through ``cache``.

    Args:
        tool: A ``FunctionTool`` (e.g. ``FunctionTool.from_defaults(fn)``).
        cache: The cache (TTL, backend, exclusions).
        price: USD per call for ``saved``; else the catalog's price for the tool
            name. Under ``instrument()`` misses are priced from the catalog, so
            price the tool there to have misses charged and hits saved alike.
    """
    name = tool.metadata.get_name()
    skip = getattr(tool, "ctx_param_name", None)
    real: Callable[..., Any] = tool.real_fn
    cached_copy = copy.copy(tool)
    if inspect.iscoroutinefunction(real):
        cached_async = cache.wrap(real, name=name, price=price, key=_key_without(real, skip))
        sync_fn = tool.fn

        def cached_sync(*args: Any, **kwargs: Any) -> Any:
            # The sync face of an async tool: LlamaIndex runs the coroutine itself.
            return _run_sync(cached_async, args, kwargs, fallback=sync_fn)

        cached_copy._fn = cached_sync  # pyright: ignore[reportPrivateUsage]
        cached_copy._async_fn = cached_async  # pyright: ignore[reportPrivateUsage]
    else:
        cached_fn = cache.wrap(real, name=name, price=price, key=_key_without(real, skip))

        async def cached_async_of_sync(*args: Any, **kwargs: Any) -> Any:
            # to_thread copies the context, so the tool's span stays the current one.
            return await asyncio.to_thread(cached_fn, *args, **kwargs)

        cached_copy._fn = cached_fn  # pyright: ignore[reportPrivateUsage]
        cached_copy._async_fn = cached_async_of_sync  # pyright: ignore[reportPrivateUsage]
    return cached_copy


def _run_sync(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, fallback: Any
) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn(*args, **kwargs))
    # Inside a running loop a sync call cannot await: use LlamaIndex's own bridge, uncached.
    return fallback(*args, **kwargs)
