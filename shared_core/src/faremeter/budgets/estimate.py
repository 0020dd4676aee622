"""What a model call may cost, *before* it runs, and how to fit it to money left.

The reservation is the worst case the call can really reach: its counted
prompt (plus chat framing) and its real output cap (``max_tokens``, else a
configured per-model cap, else the model's published maximum), priced with the
full catalog rules — long-context tiers by prompt size, cache-write rates for
messages marked ``cache_control``, and the reasoning rate when it is higher
than the output rate. Token counts come from tiktoken for OpenAI models when
its encodings load offline; otherwise from a heuristic padded by 25% so the
estimate errs high.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from faremeter.errors import UnknownModelError
from faremeter.estimate import (
    MESSAGE_OVERHEAD_TOKENS,
    _encoder,  # pyright: ignore[reportPrivateUsage]
    _encoding_name,  # pyright: ignore[reportPrivateUsage]
    count_tokens,
)
from faremeter.pricing.catalog import PriceCatalog
from faremeter.usage import MAX_TOKENS_PER_CALL, Usage

__all__ = [
    "DEFAULT_OUTPUT_CAP",
    "REPLY_PRIMING_TOKENS",
    "count_input_tokens",
    "estimate_call_cost",
    "fit_max_tokens",
]

REPLY_PRIMING_TOKENS = 3
"""Tokens chat APIs add to prime the assistant's reply."""

DEFAULT_OUTPUT_CAP = 4_096
"""Output cap assumed when neither the call, the config nor the catalog gives one."""

HEURISTIC_MARGIN = Decimal("1.25")

Message = str | Mapping[str, object] | object


def _text_of(content: object) -> tuple[str, bool]:
    """(text, marked for cache write) of one message's content."""
    if content is None:
        return "", False
    if isinstance(content, str):
        return content, False
    if isinstance(content, Mapping):
        part: Mapping[str, object] = content  # pyright: ignore[reportUnknownVariableType]
        text = part.get("text")
        return (text if isinstance(text, str) else ""), "cache_control" in part
    if isinstance(content, Sequence):
        texts: list[str] = []
        cached = False
        items: Sequence[object] = content  # pyright: ignore[reportUnknownVariableType]
        for item in items:
            t, c = _text_of(item)
            texts.append(t)
            cached = cached or c
        return "".join(texts), cached
    return str(content), False


def _message(message: object) -> tuple[str, bool]:
    if isinstance(message, str):
        return message, False
    if isinstance(message, Mapping):
        m: Mapping[str, object] = message  # pyright: ignore[reportUnknownVariableType]
        text, cached = _text_of(m.get("content"))
        return text, cached or "cache_control" in m
    # LangChain / LlamaIndex message objects carry .content
    return _text_of(getattr(message, "content", message))


def _tokenizer_exact(model: str) -> bool:
    encoding = _encoding_name(model)
    return encoding is not None and _encoder(encoding) is not None


def count_input_tokens(model: str, messages: Sequence[Message] | str) -> tuple[int, int]:
    """Prompt tokens of a call, with chat framing: ``(total, marked for cache write)``.

    Args:
        model: The model (picks the tokenizer).
        messages: Chat messages (str, ``{"role", "content"}`` dicts with string
            or multi-part content, or objects with ``.content``), or one prompt.
    """
    if isinstance(messages, str):
        total = count_tokens(messages, model)
        cached = 0
    else:
        total = REPLY_PRIMING_TOKENS
        cached = 0
        for message in messages:
            text, marked = _message(message)
            n = count_tokens(text, model) + MESSAGE_OVERHEAD_TOKENS
            total += n
            if marked:
                cached += n
    if not _tokenizer_exact(model):
        total = int((total * HEURISTIC_MARGIN).to_integral_value(rounding="ROUND_CEILING"))
        cached = min(cached, total)
    return total, cached


def _worst_cost(
    catalog: PriceCatalog, model: str, input_tokens: int, cache_write: int, output_tokens: int
) -> Decimal | None:
    try:
        plain = catalog.cost(
            model,
            Usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_write_tokens=cache_write,
                source="estimated",
            ),
        ).total
        reasoning = catalog.cost(
            model,
            Usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_write_tokens=cache_write,
                reasoning_tokens=output_tokens,
                source="estimated",
            ),
        ).total
    except UnknownModelError:
        return None
    if plain is None or reasoning is None:
        return None
    return max(plain, reasoning)


def output_cap_for(
    catalog: PriceCatalog, model: str, max_tokens: int | None, output_cap: int | None
) -> int:
    """The output tokens a call can really produce."""
    published: int | None = None
    try:
        published = catalog.get(model).max_output_tokens
    except UnknownModelError:
        published = None
    cap = max_tokens if max_tokens is not None else output_cap
    if cap is None:
        cap = published if published is not None else DEFAULT_OUTPUT_CAP
    elif published is not None:
        cap = min(cap, published)
    return max(0, min(cap, MAX_TOKENS_PER_CALL))


def estimate_call_cost(
    catalog: PriceCatalog,
    model: str,
    messages: Sequence[Message] | str,
    max_tokens: int | None,
    *,
    output_cap: int | None = None,
) -> Decimal | None:
    """The most a model call can cost, or ``None`` when it cannot be priced.

    Args:
        catalog: Prices.
        model: Model name (any form the catalog resolves).
        messages: The prompt (see :func:`count_input_tokens`).
        max_tokens: The call's own output cap, if it sets one.
        output_cap: A configured per-model cap used when ``max_tokens`` is unset
            (instead of the model's published maximum, which can be 16x more
            than calls really produce).
    """
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 0):
        raise ValueError(f"max_tokens must be an int >= 0, got {max_tokens!r}")
    input_tokens, cache_write = count_input_tokens(model, messages)
    input_tokens = min(input_tokens, MAX_TOKENS_PER_CALL)
    output = output_cap_for(catalog, model, max_tokens, output_cap)
    return _worst_cost(catalog, model, input_tokens, cache_write, output)


def fit_max_tokens(
    catalog: PriceCatalog,
    model: str,
    input_tokens: int,
    available: Decimal,
    *,
    cache_write_tokens: int = 0,
) -> int | None:
    """The largest ``max_tokens`` whose worst case fits in ``available`` USD.

    Returns:
        The cap (never above the model's published maximum), or ``None`` when
        not even the prompt fits or the model cannot be priced.
    """
    base = _worst_cost(catalog, model, input_tokens, cache_write_tokens, 0)
    if base is None or base > available:
        return None
    one = _worst_cost(catalog, model, input_tokens, cache_write_tokens, 1)
    if one is None:
        return None
    per_token = one - base
    published = output_cap_for(catalog, model, None, MAX_TOKENS_PER_CALL)
    if per_token <= 0:
        return published
    fitted = int((available - base) / per_token)
    # Tiers switch on the prompt size, so cost is linear in output: no search needed,
    # but confirm against the catalog in case of rounding.
    while fitted > 0:
        cost = _worst_cost(catalog, model, input_tokens, cache_write_tokens, fitted)
        if cost is not None and cost <= available:
            break
        fitted -= 1
    return min(fitted, published) if fitted > 0 else None
