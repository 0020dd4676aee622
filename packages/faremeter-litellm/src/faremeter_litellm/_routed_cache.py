"""LiteLLM responses as JSON and back, for a routed completion's response cache.

A ``ModelResponse`` is kept as its ``model_dump()`` and revived with
``litellm.ModelResponse(**data)``; a completed stream is assembled with
``litellm.stream_chunk_builder`` and kept the same way, so a streamed miss
serves later plain calls and the other way round. A hit on a stream call
replays the stored response as one ``ModelResponseStream`` chunk. The
routing core (:mod:`faremeter.routing.routed_cache`) does everything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from faremeter.caching.response_cache import NON_OUTPUT_PARAMS
from faremeter.routing.routed_cache import StoredResponse, describe
from faremeter_litellm._translate import reported_usage

__all__ = ["CompletionCodec", "StreamCodec", "cache_identity", "cache_request"]

# Parameters whose effective value decides whether a request is deterministic;
# a model's own spec overrides the call's (see RoutedCompletion._kwargs).
_DECIDING = ("temperature", "top_k", "n")


def cache_identity(models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """How each router model is sent (its spec, without transport and secrets)."""
    return {
        name: describe({k: v for k, v in spec.items() if k not in NON_OUTPUT_PARAMS})
        for name, spec in models.items()
    }


def cache_request(
    request: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The request as the key sees it, with the sampling parameters every model will use.

    A model's spec wins over the call's kwargs, so ``temperature`` (``top_k``,
    ``n``) is the value every candidate will run with, or absent when they
    differ (the request is then not deterministic).
    """
    out = dict(request)
    for name in _DECIDING:
        values = {json.dumps(spec.get(name, request.get(name))) for spec in models.values()}
        if len(values) == 1:
            value = json.loads(values.pop())
            if value is None:
                out.pop(name, None)
            else:
                out[name] = value
        else:
            out.pop(name, None)
    return out


def _data(response: Any) -> dict[str, Any] | None:
    dump = getattr(response, "model_dump", None)
    if not callable(dump):
        return None
    data: Any = json.loads(json.dumps(dump()))
    return cast("dict[str, Any]", data) if isinstance(data, dict) else None


def _stored(response: Any) -> StoredResponse | None:
    data = _data(response)
    if data is None:
        return None
    model = data.get("model")
    return StoredResponse(
        data=data,
        model=model if isinstance(model, str) and model else None,
        usage=reported_usage({}, response),
    )


def _revive(data: Any) -> Any:
    import litellm

    if not isinstance(data, Mapping) or not isinstance(data.get("choices"), list):  # pyright: ignore[reportUnknownMemberType]
        return None
    return litellm.ModelResponse(**cast("Mapping[str, Any]", data))


class CompletionCodec:
    """A ``ModelResponse`` as JSON and back."""

    def dump(self, response: Any) -> StoredResponse | None:
        """Its ``model_dump()``, model and reported usage."""
        return _stored(response)

    def load(self, data: Any) -> Any:
        """A ``litellm.ModelResponse``."""
        return _revive(data)


class StreamCodec:
    """A completed stream, kept as its assembled ``ModelResponse``, replayed as one chunk."""

    def __init__(self, messages: Any) -> None:
        self._messages = messages

    def dump(self, response: Sequence[Any]) -> StoredResponse | None:
        """The chunks assembled by ``litellm.stream_chunk_builder``."""
        import litellm

        if not response:
            return None
        given: Any = self._messages
        messages: list[Any] | None = cast("list[Any]", given) if isinstance(given, list) else None
        build: Any = litellm.stream_chunk_builder  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        built: Any = build(list(response), messages=messages)
        if built is None:
            return None
        stored = _stored(built)
        if stored is None:
            return None
        # Usage the provider did not report (no include_usage) is LiteLLM's
        # guess: keep it only when a chunk reported usage.
        if not any(getattr(chunk, "usage", None) is not None for chunk in response):
            stored = StoredResponse(data=stored.data, model=stored.model, usage=None)
        return stored

    def load(self, data: Any) -> list[Any] | None:
        """One ``ModelResponseStream`` chunk carrying the whole stored reply."""
        from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

        full = _revive(data)
        if full is None:
            return None
        choices: list[Any] = []
        for i, choice in enumerate(cast("list[Any]", data["choices"])):
            message: dict[str, Any] = dict(choice.get("message") or {})
            choices.append(
                StreamingChoices(
                    index=choice.get("index", i),
                    delta=Delta(**message),
                    finish_reason=choice.get("finish_reason"),
                )
            )
        chunk = ModelResponseStream(
            id=full.id, created=full.created, model=full.model, choices=choices
        )
        return [chunk]
