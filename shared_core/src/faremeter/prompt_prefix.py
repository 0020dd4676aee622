"""Which model calls share a prompt prefix the provider's prompt cache would serve.

Providers cache prompt *prefixes*. OpenAI does it automatically once a prompt
is at least 1,024 tokens long, reusing the longest prefix it has seen (from
1,024 tokens on, in 128-token steps); Anthropic caches up to an explicit
breakpoint with the same 1,024-token minimum on most models (some need
2,048 or 4,096); Gemini's implicit cache has a similar floor. A second
request is served from the cache only if its first 1,024 tokens are identical
to an earlier one's, so that is the unit faremeter compares:

* **the prefix** is the first :data:`PREFIX_CHARS` characters (1,024 tokens at
  ~4 characters a token, the estimator's heuristic for English text) of the
  call's prompt texts in order — system message first, then the leading
  messages, exactly the order providers match on — joined with a separator so
  ``["ab", "c"]`` and ``["a", "bc"]`` differ. A call whose prompt has less
  text than that is not stamped: most of its cached tokens would be what
  faremeter cannot see (tool definitions, images), and a hash of the varying
  rest would group nothing. (Dense non-Latin text holds more than 1,024
  tokens in 4,096 characters, so such prompts are stamped only from 4,096
  characters on: an undercount, never a false match);
* ``prompt_prefix_hash`` is its BLAKE2b-64 digest (16 hex digits; the text is
  never stored) and ``prompt_prefix_tokens`` is :data:`PROMPT_CACHE_MIN_TOKENS`.

Calls sharing a hash would have had at least those 1,024 tokens billed at the
cache-read rate, which is what the ``prompt_cache`` suggestion
(:func:`faremeter.analytics.suggest`) prices: a lower bound, since a longer
shared prefix caches more. Stamped only on model calls that reached the
provider with at least :data:`PROMPT_CACHE_MIN_TOKENS` input tokens and read
nothing from its cache yet (a call that did already has the saving).

:class:`~faremeter.calls.CallTracker` stamps it for every adapter; code
recording calls itself passes :func:`prompt_prefix_attributes` to
``meter.record_llm``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import MutableMapping
from typing import Any

from faremeter.estimate import Texts
from faremeter.spans import SpanKind
from faremeter.usage import Usage

__all__ = [
    "HASH_ATTRIBUTE",
    "PREFIX_CHARS",
    "PROMPT_CACHE_MIN_TOKENS",
    "TOKENS_ATTRIBUTE",
    "prompt_prefix_attributes",
    "prompt_prefix_hash",
    "stamp_prompt_prefix",
]

logger = logging.getLogger("faremeter")

PROMPT_CACHE_MIN_TOKENS = 1024
"""The shortest prompt (input tokens) providers cache: OpenAI's and Anthropic's usual minimum."""

PREFIX_CHARS = 4 * PROMPT_CACHE_MIN_TOKENS
"""Characters of prompt text hashed: :data:`PROMPT_CACHE_MIN_TOKENS` at ~4 characters a token."""

HASH_ATTRIBUTE = "prompt_prefix_hash"
"""Span attribute holding the digest of a call's prompt prefix."""

TOKENS_ATTRIBUTE = "prompt_prefix_tokens"
"""Span attribute holding how many tokens that prefix stands for."""

_SEPARATOR = "\x1e"  # ASCII record separator: message boundaries are part of the prefix


def prompt_prefix_hash(prompt: Texts) -> str | None:
    """The digest of ``prompt``'s first :data:`PREFIX_CHARS` characters (``None``: no text).

    Args:
        prompt: The call's prompt texts in order (a string, a sequence of
            message texts, or a callable producing either — called here).
    """
    return _prefix_hash(prompt, 1)


def _prefix_hash(prompt: Texts, min_chars: int) -> str | None:
    """:func:`prompt_prefix_hash`, or ``None`` when the texts hold fewer than ``min_chars``."""
    texts: Any = prompt() if callable(prompt) else prompt
    if not texts:
        return None
    if isinstance(texts, str):
        texts = (texts,)
    # The leading texts that cover the prefix: agents resend the same system
    # prompt on every call, so their digest is remembered (a str caches its
    # own hash, so a repeat costs a dict lookup, not a digest of 4 KB).
    lead: list[str] = []
    covered = 0
    for text in texts:
        if isinstance(text, str) and text:
            lead.append(text)
            covered += len(text) + 1
            if covered > PREFIX_CHARS:
                break
    if covered < min_chars:
        return None
    key = tuple(lead)
    found = _memo.get(key)
    if found is None:
        found = _digest(key)
        if found is not None:
            _remember(key, found, covered)
    return found


_memo: dict[tuple[str, ...], str] = {}
_memo_chars = 0
_MEMO_MAX_CHARS = 4_000_000
"""Characters of prompt text the memo may keep alive before it starts over."""


def _remember(key: tuple[str, ...], digest: str, chars: int) -> None:
    global _memo_chars
    if _memo_chars + chars > _MEMO_MAX_CHARS:
        _memo.clear()
        _memo_chars = 0
    _memo[key] = digest
    _memo_chars += chars


def _digest(texts: tuple[str, ...]) -> str | None:
    parts: list[str] = []
    left = PREFIX_CHARS
    for text in texts:
        if not text:
            continue
        if parts:
            parts.append(_SEPARATOR)
            left -= 1
            if left <= 0:
                break
        parts.append(text[:left])
        left -= len(parts[-1])
        if left <= 0:
            break
    if not parts:
        return None
    data = "".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _worth_stamping(usage: Usage) -> bool:
    return usage.input_tokens >= PROMPT_CACHE_MIN_TOKENS and not usage.cache_read_tokens


def prompt_prefix_attributes(prompt: Texts, usage: Usage) -> dict[str, Any]:
    """The ``prompt_prefix_*`` attributes for a call, or ``{}`` when its prefix cannot be cached.

    For calls recorded by hand::

        meter.record_llm("gpt-4o", usage, **prompt_prefix_attributes(messages, usage))

    Args:
        prompt: The call's prompt texts in order (or a callable producing them).
        usage: The call's usage: below :data:`PROMPT_CACHE_MIN_TOKENS` input
            tokens, or with tokens already read from the provider's cache,
            nothing is stamped.
    """
    if not _worth_stamping(usage):
        return {}
    # Only a prompt whose text fills the prefix is stamped: with less, most of
    # the cached tokens are what faremeter cannot see (tool definitions,
    # images), and a hash of the varying rest would group nothing.
    digest = _prefix_hash(prompt, PREFIX_CHARS)
    if digest is None:
        return {}
    return {HASH_ATTRIBUTE: digest, TOKENS_ATTRIBUTE: PROMPT_CACHE_MIN_TOKENS}


def stamp_prompt_prefix(
    kind: SpanKind,
    attributes: MutableMapping[str, Any],
    prompt: Texts,
    usage: Usage,
) -> None:
    """Add the ``prompt_prefix_*`` attributes to an ending model call's span.

    The call lifecycle calls this only for calls with at least
    :data:`PROMPT_CACHE_MIN_TOKENS` input tokens, so small calls never read
    their prompt. Never raises: a prompt that cannot be read (a framework's
    lazy callable failing) leaves the span unstamped, the call still recorded.
    """
    if kind is not SpanKind.LLM or HASH_ATTRIBUTE in attributes or not _worth_stamping(usage):
        return
    try:
        # prompt_prefix_attributes inlined: this runs for every large model call.
        digest = _prefix_hash(prompt, PREFIX_CHARS)
    except Exception:
        logger.debug("faremeter: hashing a prompt prefix failed", exc_info=True)
        return
    if digest is not None:
        attributes[HASH_ATTRIBUTE] = digest
        attributes[TOKENS_ATTRIBUTE] = PROMPT_CACHE_MIN_TOKENS
