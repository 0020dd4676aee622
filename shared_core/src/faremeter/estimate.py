"""Token estimates for calls whose provider reported no usage.

Streams without ``include_usage``, custom base URLs and some framework paths
arrive with no counts. Recording zero would hide real spend, so faremeter
estimates and marks the usage ``estimated``. OpenAI-family models use
tiktoken's encoding for that family when tiktoken is installed *and* its
encoding files load. tiktoken downloads them on first use; offline, faremeter
points it at the copies llama-index-core or litellm ship, when installed
(located without importing either). Otherwise a heuristic: one token per 4 bytes of ASCII text and
one per non-ASCII character (CJK text tokenises near one token per character),
which tracks BPE tokenizers within ~15% on English prose.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from faremeter.usage import Usage

__all__ = ["Texts", "count_tokens", "estimate_usage", "reconcile_usage"]

logger = logging.getLogger("faremeter")

Texts = str | Sequence[str] | Callable[[], str | Sequence[str]] | None
"""Texts of a call, or a callable producing them when (and only when) needed."""

MESSAGE_OVERHEAD_TOKENS = 4
"""Per-message framing tokens chat APIs add (role markers, separators)."""

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")


def _encoding_name(model: str | None) -> str | None:
    if not model:
        return None
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


_BUNDLED_TIKTOKEN_CACHES = (
    ("llama_index.core", "_static/tiktoken_cache"),
    ("litellm", "litellm_core_utils/tokenizers"),
)
_env_lock = threading.Lock()


def _bundled_tiktoken_cache() -> str | None:
    """A directory of tiktoken encoding files shipped by an installed package."""
    for package, subdir in _BUNDLED_TIKTOKEN_CACHES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        locations = list(spec.submodule_search_locations or []) if spec else []
        for location in locations:
            path = Path(location) / subdir
            if path.is_dir():
                return str(path)
    return None


@functools.cache
def _encoder(encoding: str) -> Callable[[str], int] | None:
    """A token counter for ``encoding``, or None when it cannot load (cached either way)."""
    try:
        import tiktoken

        with _env_lock:
            bundled = None if "TIKTOKEN_CACHE_DIR" in os.environ else _bundled_tiktoken_cache()
            if bundled is not None:
                os.environ["TIKTOKEN_CACHE_DIR"] = bundled
            try:
                enc = tiktoken.get_encoding(encoding)
            finally:
                if bundled is not None:
                    del os.environ["TIKTOKEN_CACHE_DIR"]
    except Exception as exc:
        logger.info("faremeter: tiktoken %s unavailable (%s); using the heuristic", encoding, exc)
        return None
    return lambda text: len(enc.encode(text, disallowed_special=()))


def _heuristic(text: str) -> int:
    if text.isascii():
        return math.ceil(len(text) / 4)
    ascii_bytes = 0
    other = 0
    for ch in text:
        if ch < "\x80":
            ascii_bytes += 1
        else:
            other += 1
    return math.ceil(ascii_bytes / 4) + other


def count_tokens(text: str, model: str | None = None) -> int:
    """Estimate how many tokens ``text`` is for ``model``."""
    if not text:
        return 0
    encoding = _encoding_name(model)
    if encoding is not None:
        encoder = _encoder(encoding)
        if encoder is not None:
            return encoder(text)
    return _heuristic(text)


def estimate_usage(
    model: str | None, prompt: str | Sequence[str], completion: str | Sequence[str]
) -> Usage:
    """Estimated usage of one call from its prompt messages and completion text.

    Args:
        model: The model, to pick its tokenizer family.
        prompt: The prompt, or one string per message (each adds framing tokens).
        completion: The generated text (or its pieces, e.g. stream chunks).
    """
    if isinstance(prompt, str):
        input_tokens = count_tokens(prompt, model)
    else:
        input_tokens = sum(count_tokens(p, model) + MESSAGE_OVERHEAD_TOKENS for p in prompt)
    text = completion if isinstance(completion, str) else "".join(completion)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=count_tokens(text, model),
        source="estimated",
    )


def _has_text(parts: str | Sequence[str] | None) -> bool:
    if not parts:
        return False
    if isinstance(parts, str):
        return not parts.isspace()
    return any(p and not p.isspace() for p in parts)


def reconcile_usage(
    usage: Usage | None,
    *,
    model: str | None,
    prompt: Texts,
    completion: Texts,
) -> Usage | None:
    """The usage to charge: reported counts unless the response contradicts them.

    Every adapter ends its calls through this one rule, so the same payload
    is charged the same whichever framework carried it:

    * no usage at all, but text went in or came out → estimated from the text;
    * reported usage with 0 output tokens for a non-empty reply (a stream
      without ``include_usage``, a proxy that zeroes counts) → the output is
      estimated and the usage marked ``mixed``; the same for 0 input tokens
      with a non-empty prompt;
    * otherwise the reported usage, untouched.

    Never a reported $0 for a call that visibly did work. ``prompt`` and
    ``completion`` may be callables returning the texts: they are only read
    when the reported counts need checking, which keeps the common case (a
    provider that reported both counts) free of text extraction.
    """
    if usage is not None and (
        usage.source != "reported" or (usage.input_tokens and usage.output_tokens)
    ):
        return usage
    if callable(prompt):
        prompt = prompt()
    if callable(completion):
        completion = completion()
    has_prompt = _has_text(prompt)
    has_reply = _has_text(completion)
    if usage is None:
        if not (has_prompt or has_reply):
            return None
        return estimate_usage(model, prompt or (), completion or ())
    if usage.source != "reported":
        return usage
    missing_output = has_reply and usage.output_tokens == 0
    missing_input = has_prompt and usage.input_tokens == 0
    if not (missing_output or missing_input):
        return usage
    guess = estimate_usage(model, prompt or (), completion or ())
    if (missing_input or not has_prompt) and (missing_output or not has_reply):
        return guess  # nothing reported is believable: all estimated
    fixed = usage
    if missing_input:
        fixed = dataclasses.replace(
            fixed,
            input_tokens=guess.input_tokens,
            cache_read_tokens=0,
            cache_write_tokens=0,
            cache_write_1h_tokens=0,
            audio_input_tokens=0,
            image_input_tokens=0,
        )
    if missing_output:
        fixed = dataclasses.replace(
            fixed, output_tokens=guess.output_tokens, reasoning_tokens=0, audio_output_tokens=0
        )
    return dataclasses.replace(fixed, source="mixed")
