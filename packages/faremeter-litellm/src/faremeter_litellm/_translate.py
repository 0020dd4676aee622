"""LiteLLM payloads → faremeter values, without importing LiteLLM.

Everything here reads the ``kwargs`` dict (LiteLLM's ``model_call_details``)
and response objects defensively: they are large, version-dependent and, in a
proxy, partly user-controlled. Nothing here raises on a malformed payload;
callers get ``None`` and record what they can.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faremeter.normalize import safe_parse_usage
from faremeter.spans import ATTRIBUTE_NAME
from faremeter.spans import ATTRIBUTION_KEYS as CORE_ATTRIBUTION_KEYS
from faremeter.usage import Usage

__all__ = [
    "ATTRIBUTION_KEYS",
    "attribution",
    "call_id",
    "completion_text",
    "litellm_cost",
    "metadata",
    "prompt_texts",
    "reported_usage",
    "router_info",
]

ATTRIBUTION_KEYS = (*CORE_ATTRIBUTION_KEYS, "team_id")
"""``metadata`` keys copied onto spans as attribution (others stay private)."""

_PROXY_KEYS = {
    "user_api_key_user_id": "user_id",
    "user_api_key_team_id": "team_id",
    "user_api_key_team_alias": "team",
    "user_api_key_end_user_id": "end_user",
    "user_api_key_alias": "api_key_alias",
}
"""What the LiteLLM proxy stamps into metadata for the authenticated key.

The proxy writes these after it merged the request's own ``metadata``
(``dict.update``), so a client cannot forge them; they win over anything the
request says (see :func:`attribution`).
"""

_PROXY_ADMIN_USER = "default_user_id"
"""``user_api_key_user_id`` of the proxy's master key (LiteLLM's
``LITELLM_PROXY_ADMIN_NAME``): a placeholder, not a person, so a request made
with the master key may name its user itself."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}  # pyright: ignore[reportUnknownVariableType]


def metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The request's metadata: ``litellm_params["metadata"]`` (or ``litellm_metadata``)."""
    params = _mapping(kwargs.get("litellm_params"))
    md = _mapping(params.get("metadata"))
    return md or _mapping(params.get("litellm_metadata"))


def call_id(kwargs: Mapping[str, Any]) -> str | None:
    """LiteLLM's id of one attempt (one logging object)."""
    value = kwargs.get("litellm_call_id") or _mapping(kwargs.get("litellm_params")).get(
        "litellm_call_id"
    )
    return value if isinstance(value, str) and value else None


def _scalar(value: Any) -> str | int | float | bool | None:
    if isinstance(value, str | int | float | bool):
        return value[:200] if isinstance(value, str) else value
    return None


def attribution(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Attribution from request metadata, the proxy's key info and OpenAI's ``user``.

    Only known attribution keys are copied (plus anything under
    ``metadata["faremeter"]``): metadata also carries router internals and,
    in a proxy, key material that must never reach a ledger.

    Precedence, lowest first: OpenAI's ``user``, the request's ``metadata``
    (then its ``faremeter`` dict), then what the proxy stamped for the
    authenticated key — a client of a shared proxy must not be able to book
    its spend to another user or team. The master key's placeholder user
    (``default_user_id``) is only a fallback.
    """
    out: dict[str, Any] = {}
    user = _scalar(kwargs.get("user"))
    if user is not None:
        out["user_id"] = user
    md = metadata(kwargs)
    for key in ATTRIBUTION_KEYS:
        value = _scalar(md.get(key))
        if value is not None:
            out[key] = value
    for key, value in _mapping(md.get("faremeter")).items():
        scalar = _scalar(value)
        if ATTRIBUTE_NAME.match(key) and scalar is not None:
            out[key] = scalar
    for src, dst in _PROXY_KEYS.items():
        value = _scalar(md.get(src))
        if value is None:
            continue
        if src == "user_api_key_user_id" and value == _PROXY_ADMIN_USER:
            out.setdefault(dst, value)
        else:
            out[dst] = value
    tags = md.get("tags")
    if isinstance(tags, list | tuple) and tags:
        out["litellm_tags"] = ",".join(str(t) for t in tags[:20])  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    return out


def router_info(kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """Router facts of an attempt, or ``None`` for a call that did not go through a Router.

    The Router stamps ``model_group`` (the name the caller asked for),
    ``deployment`` (the deployment's ``litellm_params.model``), ``model_info.id``,
    ``attempted_retries`` / ``attempted_fallbacks`` into the attempt's
    metadata, and shares one ``litellm_trace_id`` between every attempt of
    one call; that id is what groups attempts under one logical call.
    """
    md = metadata(kwargs)
    group = md.get("model_group")
    if not isinstance(group, str) or not group:
        return None
    params = _mapping(kwargs.get("litellm_params"))
    trace = kwargs.get("litellm_trace_id") or params.get("litellm_trace_id")
    info = _mapping(md.get("model_info")) or _mapping(params.get("model_info"))
    original = md.get("original_model_group")
    return {
        "trace": trace if isinstance(trace, str) and trace else None,
        "model_group": group,
        "original_model_group": original if isinstance(original, str) else group,
        "deployment": _scalar(md.get("deployment")),
        "model_id": _scalar(info.get("id")),
        "attempted_retries": _scalar(md.get("attempted_retries")),
        "attempted_fallbacks": _scalar(md.get("attempted_fallbacks")),
    }


def litellm_cost(kwargs: Mapping[str, Any]) -> float | None:
    """LiteLLM's own price of the call, or ``None`` when it had none.

    LiteLLM reports ``0.0`` for a model missing from its map (with debug info
    beside it): that is "unknown", never "free".
    """
    value = kwargs.get("response_cost")
    if value is None:
        value = _mapping(kwargs.get("standard_logging_object")).get("response_cost")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value <= 0 or value == float("inf"):  # NaN, zero, inf
        return None
    return float(value)


def prompt_texts(messages: Any) -> list[str]:
    """The text of each prompt message (or embedding input), for estimates and redaction."""
    out: list[str] = []
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, list | tuple):
        for message in messages:  # pyright: ignore[reportUnknownVariableType]
            item: Any = message  # pyright: ignore[reportUnknownVariableType]
            content: Any = _mapping(item).get("content") if isinstance(item, Mapping) else item  # pyright: ignore[reportUnknownVariableType]
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                parts = [_mapping(p).get("text") for p in content]  # pyright: ignore[reportUnknownVariableType]
                out.append(" ".join(p for p in parts if isinstance(p, str)))
    return out


def completion_text(response: Any) -> str:
    """The generated text of a completion response (every choice)."""
    choices: Any = getattr(response, "choices", None)
    if choices is None:
        choices = _mapping(response).get("choices")
    out: list[str] = []
    if isinstance(choices, list | tuple):
        for choice in choices:  # pyright: ignore[reportUnknownVariableType]
            message: Any = getattr(choice, "message", None) or _mapping(choice).get("message")  # pyright: ignore[reportUnknownArgumentType]
            content: Any = getattr(message, "content", None)
            if content is None:
                content = _mapping(message).get("content")
            if isinstance(content, str):
                out.append(content)
    return "".join(out)


def reported_usage(kwargs: Mapping[str, Any], response: Any) -> Usage | None:
    """The usage the response (or a stream cut short) reported, or ``None``.

    Embeddings report only ``prompt_tokens``/``total_tokens``; the core's parser
    counts those as input. Whether the counts are believable against the
    texts is the core's call (usage honesty), not this module's.
    """
    usage_payload: Any = getattr(response, "usage", None)
    if usage_payload is None:
        usage_payload = _mapping(response).get("usage")
    if usage_payload is None:
        usage_payload = kwargs.get("combined_usage_object")  # a stream cut short
    return safe_parse_usage(usage_payload, where="litellm")
