"""LangChain replies as JSON and back, for ``RoutedChatModel``'s response cache.

A reply is kept the way :class:`~faremeter_langchain.FaremeterLLMCache` keeps
generations: ``langchain_core.load.dumpd`` of ``[ChatGeneration(message)]``,
revived with an allow-list of output classes (never pickle). A completed
stream is kept as the message its chunks add up to, so a streamed miss
serves later ``invoke`` calls and the other way round; a hit on a stream
call replays it as one chunk. Like LangChain's own cache, a revived message
has ``usage_metadata["total_cost"] = 0``; its id is cleared so LangChain
gives it the current run's (LangGraph's ``add_messages`` merges messages
that share an id). The routing core (:mod:`faremeter.routing.routed_cache`)
does everything else.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Mapping, Sequence
from typing import Any, cast

from langchain_core.language_models import BaseLanguageModel
from langchain_core.load import dumpd
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    message_chunk_to_message,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables import RunnableBinding
from pydantic import BaseModel

from faremeter.routing.routed_cache import StoredResponse, describe
from faremeter_langchain._cache import _model_of, _revive, _usage_of  # pyright: ignore[reportPrivateUsage]

__all__ = [
    "MessageCodec",
    "StreamCodec",
    "StructuredCodec",
    "cache_identity",
    "message_parts",
    "structured_request",
    "temperature_of",
]

_NOT_SENT = frozenset({"id", "response_metadata", "usage_metadata"})
"""Message fields a provider never sees: left out of the key."""


def message_parts(messages: Sequence[BaseMessage]) -> list[Any]:
    """Messages as the key sees them: what is sent (type, content, tool calls...)."""
    return [m.model_dump(mode="json", exclude=set(_NOT_SENT)) for m in messages]


def _tool_schema(tool: Any) -> Any:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    try:
        return convert_to_openai_tool(tool)
    except Exception:
        return describe(tool)


def _describe_model(model: Any) -> Any:
    if isinstance(model, RunnableBinding):
        binding = cast("Any", model)
        kwargs: dict[str, Any] = dict(binding.kwargs)
        tools = kwargs.pop("tools", None)
        if isinstance(tools, list | tuple):
            kwargs["tools"] = [_tool_schema(t) for t in cast("Sequence[Any]", tools)]
        return {"bound": _describe_model(binding.bound), "kwargs": describe(kwargs)}
    if isinstance(model, BaseLanguageModel):
        llm = cast("Any", model)
        return {
            "class": type(llm).__qualname__,
            "type": getattr(llm, "_llm_type", None),
            "params": describe(getattr(llm, "_identifying_params", None)),
        }
    return {"class": type(model).__qualname__}


def cache_identity(models: Mapping[str, Any]) -> dict[str, Any]:
    """Each model's class and parameters (bound tools as their JSON schemas)."""
    return {name: _describe_model(model) for name, model in models.items()}


def _temperature(model: Any) -> Any:
    if isinstance(model, RunnableBinding):
        binding = cast("Any", model)
        if "temperature" in binding.kwargs:
            return binding.kwargs["temperature"]
        return _temperature(binding.bound)
    return getattr(model, "temperature", None)


def temperature_of(models: Mapping[str, Any]) -> Any:
    """The temperature every model runs at when they agree, else ``None``."""
    values = [_temperature(m) for m in models.values()]
    first = values[0] if values else None
    return first if all(v == first for v in values) else None


def _stored(message: BaseMessage) -> StoredResponse | None:
    if not isinstance(message, AIMessage):
        return None
    if isinstance(message, AIMessageChunk):
        message = message_chunk_to_message(message)
    generations = [ChatGeneration(message=message)]
    data = json.loads(json.dumps(dumpd(generations)))
    return StoredResponse(data=data, model=_model_of(generations), usage=_usage_of(generations))


def _message(data: Any) -> AIMessage | None:
    generations = _revive(data)
    if not generations:
        return None
    message = getattr(generations[0], "message", None)
    if not isinstance(message, AIMessage):
        return None
    update: dict[str, Any] = {"id": None}
    if message.usage_metadata:  # LangChain's mark of a reply replayed from a cache
        update["usage_metadata"] = {**message.usage_metadata, "total_cost": 0}
    return message.model_copy(update=update)


class MessageCodec:
    """An ``AIMessage`` as JSON (``dumpd`` of its generation) and back."""

    def dump(self, response: BaseMessage) -> StoredResponse | None:
        """The message's generation as JSON, with its model and usage."""
        return _stored(response)

    def load(self, data: Any) -> BaseMessage | None:
        """The revived ``AIMessage`` (only output classes are revived)."""
        return _message(data)


class StreamCodec:
    """A completed stream, kept as the message its chunks add up to; replayed as one chunk."""

    def dump(self, response: Sequence[BaseMessage]) -> StoredResponse | None:
        """The sum of the chunks, as one message."""
        chunks = [c for c in response if isinstance(c, BaseMessageChunk)]
        if not chunks or len(chunks) != len(response):
            return None
        merged: BaseMessageChunk = functools.reduce(operator.add, chunks)
        return _stored(message_chunk_to_message(merged))

    def load(self, data: Any) -> list[BaseMessage] | None:
        """One chunk carrying the whole stored message."""
        message = _message(data)
        if message is None:
            return None
        calls = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c.get("id"), index=i)
            for i, c in enumerate(message.tool_calls)
        ]
        # The last (and only) chunk: LangChain then parses its tool calls as final.
        last: dict[str, Any] = (
            {"chunk_position": "last"} if "chunk_position" in AIMessageChunk.model_fields else {}
        )
        chunk = AIMessageChunk(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            tool_call_chunks=calls,
            name=message.name,
            **last,
        )
        return [chunk]


def structured_request(
    messages: Sequence[BaseMessage],
    schema: Any,
    include_raw: bool,
    options: Mapping[str, Any],
    models: Mapping[str, Any],
) -> dict[str, Any]:
    """A ``with_structured_output`` call as the cache key sees it.

    The messages, the schema as the JSON schema the models are given, the
    structured-output options (``method``, ``strict``...) and the temperature
    the models run at.
    """
    return {
        "messages": message_parts(messages),
        "structured": _tool_schema(schema),
        "include_raw": include_raw,
        "options": describe(dict(options)),
        "temperature": temperature_of(models),
    }


class StructuredCodec:
    """A ``with_structured_output`` result as JSON and back.

    A pydantic schema's instance is kept as ``model_dump(mode="json")`` and
    revived with the schema's ``model_validate``; a dict result (a JSON-schema or
    TypedDict schema) is kept as the dict it is. With ``include_raw=True`` the
    raw ``AIMessage`` is kept beside it, as :class:`MessageCodec` keeps it. A
    result that failed to parse, or that is neither, is not stored.
    """

    def __init__(self, schema: Any, include_raw: bool) -> None:
        self.schema = schema
        self.include_raw = include_raw

    def _pydantic(self) -> type[BaseModel] | None:
        schema = self.schema
        return schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None

    def _dump_parsed(self, parsed: Any) -> Any:
        model = self._pydantic()
        if model is not None:
            return parsed.model_dump(mode="json") if isinstance(parsed, model) else None
        if isinstance(parsed, dict):
            try:
                return json.loads(json.dumps(parsed))
            except (TypeError, ValueError):
                return None
        return None

    def dump(self, response: Any) -> StoredResponse | None:
        """The parsed result (and the raw message with ``include_raw``) as JSON."""
        if not self.include_raw:
            parsed = self._dump_parsed(response)
            return None if parsed is None else StoredResponse(data={"parsed": parsed})
        if not isinstance(response, dict):
            return None
        result = cast("dict[str, Any]", response)
        raw = result.get("raw")
        if result.get("parsing_error") is not None or not isinstance(raw, BaseMessage):
            return None
        stored = _stored(raw)
        parsed = self._dump_parsed(result.get("parsed"))
        if stored is None or parsed is None:
            return None
        return StoredResponse(
            data={"raw": stored.data, "parsed": parsed}, model=stored.model, usage=stored.usage
        )

    def load(self, data: Any) -> Any:
        """The revived result, as ``with_structured_output`` returns it; ``None``: a miss."""
        if not isinstance(data, dict) or "parsed" not in data:
            return None
        stored = cast("dict[str, Any]", data)
        model = self._pydantic()
        found: Any = stored["parsed"]
        if model is not None:
            parsed: Any = model.model_validate(found)
        elif isinstance(found, dict):
            parsed = cast("dict[str, Any]", found)
        else:
            return None
        if not self.include_raw:
            return parsed
        raw = _message(stored.get("raw"))
        if raw is None:
            return None
        result: dict[str, Any] = {"raw": raw, "parsed": parsed, "parsing_error": None}
        return result
