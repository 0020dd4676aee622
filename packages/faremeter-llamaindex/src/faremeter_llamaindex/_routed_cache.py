"""LlamaIndex responses as JSON and back, for ``RoutedLLM``'s response cache.

``ChatResponse`` and ``CompletionResponse`` are pydantic models: kept as
``model_dump(mode="json")`` and revived with ``model_validate``. A response
whose ``additional_kwargs`` hold provider objects (an OpenAI tool call object,
say) is not stored: revived, they would come back as plain dicts, which the
LLM that reads them back (``get_tool_calls_from_response``) may refuse.
LlamaIndex streams carry the whole message so far on every chunk, so a
completed stream is kept as its last chunk; a hit on a stream call replays
it as one chunk whose ``delta`` is the whole text. The routing core
(:mod:`faremeter.routing.routed_cache`) does everything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse

from faremeter.routing.routed_cache import StoredResponse, describe
from faremeter_llamaindex._payloads import usage_of

__all__ = [
    "ChatCodec",
    "ChatStreamCodec",
    "CompletionCodec",
    "CompletionStreamCodec",
    "cache_identity",
    "common_setting",
    "message_parts",
]

_PARAMS = ("temperature", "top_p", "max_tokens", "additional_kwargs", "system_prompt")
"""LLM fields that change answers, when the LLM has them."""

_JSON = (str, int, float, bool, type(None))


def cache_identity(llms: Mapping[str, Any]) -> dict[str, Any]:
    """Each LLM's class, model name and answer-changing fields."""
    out: dict[str, Any] = {}
    for name, llm in llms.items():
        params = {p: getattr(llm, p) for p in _PARAMS if hasattr(llm, p)}
        meta: Any = getattr(llm, "metadata", None)
        out[name] = describe(
            {
                "class": type(llm).__qualname__,
                "model": getattr(meta, "model_name", None),
                "params": params,
            }
        )
    return out


def common_setting(llms: Mapping[str, Any], name: str) -> Any:
    """The value of field ``name`` when every LLM has it and they agree, else ``None``."""
    values = [getattr(llm, name, None) for llm in llms.values()]
    first = values[0] if values else None
    return first if all(v == first for v in values) else None


def message_parts(messages: Sequence[ChatMessage]) -> list[Any]:
    """Messages as the key sees them (role, blocks, extra fields)."""
    return [m.model_dump(mode="json") for m in messages]


def _plain(value: Any) -> bool:
    """Whether ``value`` is plain JSON data (no provider objects inside)."""
    if isinstance(value, _JSON):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in cast("Sequence[Any]", value))
    if isinstance(value, Mapping):
        items = cast("Mapping[Any, Any]", value).items()
        return all(isinstance(k, str) and _plain(v) for k, v in items)
    return False


def _data(response: ChatResponse | CompletionResponse, chunk: bool) -> dict[str, Any] | None:
    extra: list[Any] = [getattr(response, "additional_kwargs", None)]
    message = getattr(response, "message", None)
    if isinstance(message, ChatMessage):
        extra.append(getattr(message, "additional_kwargs", None))
    if not all(_plain(e) for e in extra):
        return None
    try:
        data = response.model_dump(mode="json")
    except Exception:  # a raw payload pydantic cannot serialise: keep the rest
        data = response.model_dump(mode="json", exclude={"raw"})
    if chunk:
        data["delta"] = None  # the last increment, not the response's
    return cast("dict[str, Any]", json.loads(json.dumps(data)))


def _stored(response: Any, *, chunk: bool = False) -> StoredResponse | None:
    if not isinstance(response, ChatResponse | CompletionResponse):
        return None
    data = _data(response, chunk)
    if data is None:
        return None
    return StoredResponse(data=data, usage=usage_of(response, chunk=chunk))


class ChatCodec:
    """A ``ChatResponse`` as JSON and back."""

    def dump(self, response: ChatResponse) -> StoredResponse | None:
        """Its JSON form and reported usage."""
        return _stored(response)

    def load(self, data: Any) -> ChatResponse | None:
        """The revived ``ChatResponse``."""
        return ChatResponse.model_validate(data)


class CompletionCodec:
    """A ``CompletionResponse`` as JSON and back."""

    def dump(self, response: CompletionResponse) -> StoredResponse | None:
        """Its JSON form and reported usage."""
        return _stored(response)

    def load(self, data: Any) -> CompletionResponse | None:
        """The revived ``CompletionResponse``."""
        return CompletionResponse.model_validate(data)


class ChatStreamCodec:
    """A completed chat stream (its last chunk); replayed as one chunk."""

    def dump(self, response: Sequence[ChatResponse]) -> StoredResponse | None:
        """The last chunk, which carries the whole message."""
        return _stored(response[-1], chunk=True) if response else None

    def load(self, data: Any) -> list[ChatResponse] | None:
        """One chunk: the whole message, its text as the delta."""
        full = ChatResponse.model_validate(data)
        full.delta = full.message.content
        return [full]


class CompletionStreamCodec:
    """A completed completion stream (its last chunk); replayed as one chunk."""

    def dump(self, response: Sequence[CompletionResponse]) -> StoredResponse | None:
        """The last chunk, which carries the whole text."""
        return _stored(response[-1], chunk=True) if response else None

    def load(self, data: Any) -> list[CompletionResponse] | None:
        """One chunk: the whole text, also as the delta."""
        full = CompletionResponse.model_validate(data)
        full.delta = full.text
        return [full]
