"""LangChain payloads → plain values (names, model, texts, tags, tool-reported cost).

No hook logic here: just reading what LangChain hands a callback, defensively,
since integrations put surprising things in metadata and generations.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from faremeter import Cost, OpenSpan, SpanKind
from faremeter.cost import to_decimal

__all__ = [
    "chat_texts",
    "first_model",
    "has_priced_tool_child",
    "is_map",
    "reported_tool_cost",
    "text_of",
    "texts",
    "user_tags",
    "valid_str",
]

logger = logging.getLogger("faremeter.langchain")

_MODEL_KEYS = ("model_name", "model", "model_id", "deployment_name")
_MODEL_KEY_SET = frozenset(_MODEL_KEYS)
_INTERNAL_TAG_PARTS = (":step:", "langsmith:")


def valid_str(value: Any) -> str | None:
    return value if type(value) is str and value else None


def is_map(value: Any) -> bool:
    # LangChain's payloads are dicts; skip the slow ABC check for them.
    return type(value) is dict or isinstance(value, Mapping)


def first_model(source: Any) -> str | None:
    if type(source) is dict:  # the usual payload: skip the probes when no key can match
        if not source or source.keys().isdisjoint(_MODEL_KEY_SET):
            return None
    elif not (source and isinstance(source, Mapping)):
        return None
    mapping = cast("Mapping[str, Any]", source)
    for key in _MODEL_KEYS:
        found = mapping.get(key)
        if type(found) is str and found:
            return found
    return None


def _fields(value: Any, names: tuple[str, ...]) -> dict[str, Any]:
    found: Any = getattr(value, "__dict__", None)
    if type(found) is dict:
        return cast("dict[str, Any]", found)
    return {k: getattr(value, k, None) for k in names}


def text_of(value: Any) -> str:
    """Text of a message, generation or prompt, for token estimates and content."""
    if isinstance(value, str):
        return value
    # Pydantic models keep their fields in __dict__: reading it there avoids
    # getattr's AttributeError path for fields a class lacks (a message has no
    # ``message``, a system message no ``tool_calls``), costly on pydantic models.
    found: Any = getattr(value, "__dict__", None)  # _fields inlined: one call per message
    fields: dict[str, Any] = (  # pyright: ignore[reportUnknownVariableType]
        found
        if type(found) is dict  # pyright: ignore[reportUnknownArgumentType]
        else _fields(value, ("message", "content", "tool_calls"))
    )
    message = fields.get("message")  # a generation: read its message
    if message is not None:
        value = message
        fields = _fields(value, ("content", "tool_calls"))
    content = fields.get("content")
    if type(content) is str:
        out = content  # what .text returns for string content, without its accessor's cost
    else:
        try:
            text = getattr(value, "text", None)
        except Exception:  # malformed content (None, numbers) from a buggy integration
            text = None
        out = str(text) if isinstance(text, str) else ""
    calls = fields.get("tool_calls")
    if isinstance(calls, list):
        for call in cast("list[Any]", calls):
            if isinstance(call, Mapping):  # tool-call arguments are generated tokens too
                out += f"{call.get('name', '')}{call.get('args', '')}"  # pyright: ignore[reportUnknownMemberType]
    return out


def user_tags(tags: list[str]) -> tuple[str, ...]:
    """The run's own tags, without LangChain/LangGraph bookkeeping (``seq:step:1``…)."""
    return tuple(t for t in tags if not any(p in t for p in _INTERNAL_TAG_PARTS))


def texts(items: Sequence[Any] | None) -> list[str]:
    return [text_of(item) for item in items or ()]


def chat_texts(batches: Sequence[Sequence[Any]]) -> list[str]:
    """Texts of a chat call's messages (LangChain passes them as a list of batches).

    A message whose content is a string and that carries no tool calls — most
    of a prompt — is read in place; anything else goes through :func:`text_of`.
    """
    out: list[str] = []
    for batch in batches:
        for message in batch:
            found: Any = getattr(message, "__dict__", None)
            if type(found) is dict:  # pyright: ignore[reportUnknownArgumentType]
                fields: dict[str, Any] = found  # pyright: ignore[reportUnknownVariableType]
                content = fields.get("content")
                plain = "message" not in fields and not fields.get("tool_calls")
                if plain and type(content) is str:
                    out.append(content)
                    continue
            out.append(text_of(message))
    return out


def reported_tool_cost(output: Any) -> Cost | None:
    """A cost the tool reported: ``Cost``, ``{"cost": x}`` or ``.cost`` (or on its artifact)."""
    for candidate in (getattr(output, "artifact", None), output):
        if candidate is None:
            continue
        if isinstance(candidate, Cost):
            return candidate
        if isinstance(candidate, Mapping):
            raw: Any = candidate.get("cost")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        else:
            raw = getattr(candidate, "cost", None)
        if isinstance(raw, Cost):
            return raw
        if raw is None or isinstance(raw, bool) or not isinstance(raw, Decimal | int | float | str):
            continue
        try:
            amount = to_decimal(raw)
        except (ValueError, ArithmeticError):
            logger.debug("faremeter: ignoring tool-reported cost %r", raw)
            continue
        if amount < 0:
            logger.debug("faremeter: ignoring negative tool cost %s", amount)
            continue
        return Cost.of_tool(amount)
    return None


def has_priced_tool_child(span: OpenSpan) -> bool:
    for record in reversed(span.trace.records):
        if record.end_ns < span.start_ns:
            return False
        if record.parent_span_id == span.span_id and record.kind is SpanKind.TOOL:
            return record.cost.priced
    return False
