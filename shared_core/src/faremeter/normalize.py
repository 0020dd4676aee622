"""Turn any provider's or framework's usage payload into one :class:`Usage`.

Providers disagree on what ``input_tokens`` means (Anthropic excludes cache
tokens, OpenAI includes them) and on where cache and reasoning counts live.
Every adapter hands its raw payload here, so each shape is understood once and
fuzzed once.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from typing import Any, cast

from faremeter.errors import InvalidUsageError
from faremeter.usage import Usage, UsageSource, usage_totals

__all__ = ["parse_usage", "safe_parse_usage"]

logger = logging.getLogger("faremeter")

_FLAT_KEYS = frozenset(
    ("input_tokens", "output_tokens", "total_tokens", "prompt_tokens", "completion_tokens")
)
_DETAIL_KEYS = frozenset(
    (
        "input_token_details",
        "prompt_tokens_details",
        "input_tokens_details",
        "output_token_details",
        "completion_tokens_details",
        "output_tokens_details",
    )
)
_TOTALS_AND_DETAILS = _FLAT_KEYS | _DETAIL_KEYS
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _as_mapping(payload: Any) -> Mapping[str, Any] | None:
    if payload is None or type(payload) is dict:  # the common cases, without ABC checks
        return cast("Mapping[str, Any] | None", payload)
    if isinstance(payload, Mapping):
        return payload  # pyright: ignore[reportUnknownVariableType]
    dump = getattr(payload, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:  # a broken pydantic model is just "no usage"
            return None
        return dumped if isinstance(dumped, Mapping) else None  # pyright: ignore[reportUnknownVariableType]
    attrs = getattr(payload, "__dict__", None)
    if isinstance(attrs, Mapping):
        return attrs  # pyright: ignore[reportUnknownVariableType]
    return None


def _count(data: Mapping[str, Any] | None, *keys: str) -> int | None:
    """The first present count among ``keys``, validated as a whole number."""
    if data is None:
        return None
    for key in keys:
        if key not in data:
            continue
        value = data[key]
        if type(value) is int:  # the common case first: this runs per recorded call
            return value
        if value is None:
            continue
        if isinstance(value, bool):
            raise InvalidUsageError(f"{key} must be a token count, got {value!r}")
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise InvalidUsageError(f"{key} must be a whole number, got {value!r}")
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise InvalidUsageError(f"{key} must be a token count, got {value!r}") from None
        raise InvalidUsageError(f"{key} must be a token count, got {type(value).__name__}")
    return None


def _sub(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any] | None:
    for key in keys:
        found = _as_mapping(data.get(key))
        if found is not None:
            return found
    return None


def _zero_details(data: Mapping[str, Any]) -> bool:
    """True when every detail object present is a dict of zero (or null) counts."""
    for value in data.values():  # totals (ints) and detail objects
        if value.__class__ is dict:
            for count in cast("dict[str, Any]", value).values():
                if count is not None and (count.__class__ is not int or count != 0):
                    return False
        elif value is not None and value.__class__ is not int:
            return False  # a pydantic or other detail object: the full parse reads it
    return True


def _z(value: int | None) -> int:
    return 0 if value is None else value


def parse_usage(payload: Any, *, source: UsageSource = "reported") -> Usage | None:
    """Normalise a usage payload of any known shape.

    Understood shapes: OpenAI Chat Completions (``prompt_tokens``,
    ``completion_tokens``, ``*_tokens_details``), OpenAI Responses and
    LangChain ``UsageMetadata`` (``input_tokens``/``output_tokens`` with
    ``input_token_details``/``output_token_details`` or ``*_tokens_details``),
    Anthropic (``input_tokens`` *excluding* ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens``, with ``cache_creation.ephemeral_1h_input_tokens``),
    Gemini ``usageMetadata`` (``promptTokenCount``, ``candidatesTokenCount``
    excluding ``thoughtsTokenCount``, ``cachedContentTokenCount``) and Bedrock
    (``inputTokens``/``outputTokens``). Dicts, pydantic models and plain
    objects are accepted; a payload nested under ``usage``/``usage_metadata``/
    ``usageMetadata`` is unwrapped.

    Returns:
        The usage, or ``None`` when the payload has no token counts at all.

    Raises:
        InvalidUsageError: For counts that are not whole non-negative numbers
            or are inconsistent (e.g. more cached than input tokens).
    """
    data = _as_mapping(payload)
    if data is None:
        return None
    if data.__class__ is dict and data.keys() <= _FLAT_KEYS:
        # Only totals (LangChain usage_metadata without details, plain OpenAI):
        # the most common payload, so skip probing for every other shape.
        i = data.get("input_tokens", data.get("prompt_tokens"))
        o = data.get("output_tokens", data.get("completion_tokens"))
        if type(i) is int and type(o) is int:
            return usage_totals(i, o, source)
    elif data.__class__ is dict and data.keys() <= _TOTALS_AND_DETAILS:
        # OpenAI's usual shape: totals plus detail objects that are all zero
        # (no cache, reasoning, audio or image tokens) mean just the totals.
        # Anything else in the details takes the full parse below.
        i = data.get("input_tokens", data.get("prompt_tokens"))
        o = data.get("output_tokens", data.get("completion_tokens"))
        if type(i) is int and type(o) is int and _zero_details(data):
            return usage_totals(i, o, source)

    for wrapper in ("usage", "usage_metadata", "usageMetadata", "token_usage"):
        inner = _as_mapping(data.get(wrapper))
        if inner is not None:
            data = inner
            break

    # Gemini
    if "promptTokenCount" in data or "candidatesTokenCount" in data:
        prompt = _z(_count(data, "promptTokenCount"))
        thoughts = _z(_count(data, "thoughtsTokenCount"))
        return Usage(
            input_tokens=prompt,
            output_tokens=_z(_count(data, "candidatesTokenCount")) + thoughts,
            cache_read_tokens=_z(_count(data, "cachedContentTokenCount")),
            reasoning_tokens=thoughts,
            source=source,
        )
    # Bedrock Converse
    if "inputTokens" in data or "outputTokens" in data:
        cache_read = _z(_count(data, "cacheReadInputTokens", "cacheReadInputTokenCount"))
        cache_write = _z(_count(data, "cacheWriteInputTokens", "cacheWriteInputTokenCount"))
        return Usage(
            input_tokens=_z(_count(data, "inputTokens")) + cache_read + cache_write,
            output_tokens=_z(_count(data, "outputTokens")),
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            source=source,
        )
    # Anthropic: cache counts sit beside an input count that excludes them.
    # (LiteLLM mirrors these keys on an OpenAI shape, which has prompt_tokens.)
    anthropic_keys = "cache_read_input_tokens" in data or "cache_creation_input_tokens" in data
    if anthropic_keys and "prompt_tokens" not in data:
        creation = _as_mapping(data.get("cache_creation"))
        write_1h = _z(_count(creation, "ephemeral_1h_input_tokens"))
        return Usage.from_exclusive(
            input_tokens=_z(_count(data, "input_tokens")),
            output_tokens=_z(_count(data, "output_tokens")),
            cache_read_tokens=_z(_count(data, "cache_read_input_tokens")),
            cache_write_tokens=_z(_count(data, "cache_creation_input_tokens")),
            cache_write_1h_tokens=write_1h,
            source=source,
        )

    input_tokens = _count(data, "input_tokens", "prompt_tokens")
    output_tokens = _count(data, "output_tokens", "completion_tokens")
    if input_tokens is None and output_tokens is None:
        total = _count(data, "total_tokens")
        if total is None:
            return None
        input_tokens = total  # embeddings report only a total; all of it is input
    in_details = _sub(data, "input_token_details", "prompt_tokens_details", "input_tokens_details")
    out_details = _sub(
        data, "output_token_details", "completion_tokens_details", "output_tokens_details"
    )
    cache_read = _count(in_details, "cache_read", "cached_tokens")
    if cache_read is None:
        cache_read = _count(data, "cache_read_input_tokens")
    cache_write = _count(
        in_details, "cache_creation", "cache_write_tokens", "cache_creation_tokens"
    )
    if cache_write is None:
        cache_write = _count(data, "cache_creation_input_tokens")
    write_1h = _count(in_details, "ephemeral_1h_input_tokens", "cache_creation_1h")
    return Usage(
        input_tokens=_z(input_tokens),
        output_tokens=_z(output_tokens),
        cache_read_tokens=_z(cache_read),
        cache_write_tokens=_z(cache_write),
        cache_write_1h_tokens=_z(write_1h),
        reasoning_tokens=_z(_count(out_details, "reasoning", "reasoning_tokens")),
        audio_input_tokens=_z(_count(in_details, "audio", "audio_tokens")),
        audio_output_tokens=_z(_count(out_details, "audio", "audio_tokens")),
        image_input_tokens=_z(_count(in_details, "image", "image_tokens")),
        source=source,
    )


def safe_parse_usage(payload: Any, *, where: str, source: UsageSource = "reported") -> Usage | None:
    """:func:`parse_usage` for adapters: never raises, logs a rejection once per ``where``.

    A rejected payload is dropped rather than guessed at: a wrong number
    recorded as reported usage is worse than a span without usage.
    """
    try:
        return parse_usage(payload, source=source)
    except Exception as exc:
        with _warned_lock:
            first = where not in _warned
            _warned.add(where)
        if first:
            logger.warning("faremeter: rejected usage from %s: %s", where, exc)
        else:
            logger.debug("faremeter: rejected usage from %s: %s", where, exc)
        return None
