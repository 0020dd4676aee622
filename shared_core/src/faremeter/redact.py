"""Error text fit for a ledger: no credentials, no prompt content by default.

Provider SDKs put surprising things in exception messages: the request URL
with credentials, an echoed ``Authorization`` header, a key prefix, the
offending prompt. A ledger is read by more people than the app's secrets are,
so error spans keep the exception class and a message with those removed.
The patterns are deliberately broad; a redacted word too many costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_ERROR_CHARS", "describe_error", "redact"]

MAX_ERROR_CHARS: Final = 500
"""Longest error text a span keeps."""

_MIN_PROMPT_CHARS: Final = 12  # shorter prompt fragments are too common to be content
_REDACTED: Final = "[redacted]"

_SECRET_PATTERNS: Final = (
    # Authorization / api-key headers or parameters, whatever the quoting.
    re.compile(
        r"(?i)\b(authorization|proxy-authorization|x-api-key|api[-_]?key|access[-_]?token|"
        r"secret|password|passwd|token)(\"?\s*[:=]\s*\"?)(bearer\s+|basic\s+)?[^\s\"',;}&]+"
    ),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    # Provider key shapes: OpenAI/Anthropic (sk-...), Google (AIza...), AWS, Slack, GitHub, HF.
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    # JWTs.
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
)
_URL_CREDENTIALS: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+(:[^/\s@]*)?@")
_QUERY_SECRET: Final = re.compile(r"(?i)([?&](?:key|api_key|apikey|token|sig|signature)=)[^&\s]+")


def _secret_sub(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) >= 2 and groups[0] is not None and groups[1] is not None:
        return f"{groups[0]}{groups[1]}{_REDACTED}"  # keep the key name: it says what was there
    return _REDACTED


def redact(text: str, *, prompts: Iterable[str] = ()) -> str:
    """``text`` with credentials, and any of ``prompts`` quoted in it, removed."""
    out = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{_REDACTED}@", text)
    out = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{_REDACTED}", out)
    for pattern in _SECRET_PATTERNS:
        out = pattern.sub(_secret_sub, out)
    for prompt in prompts:
        if len(prompt) >= _MIN_PROMPT_CHARS and prompt in out:
            out = out.replace(prompt, "[prompt redacted]")
    return out


def describe_error(
    error: BaseException | str | None,
    *,
    prompts: Iterable[str] = (),
    keep_content: bool = False,
) -> str | None:
    """``ExceptionType: message`` for an error span, redacted and bounded.

    Args:
        error: The exception, or a description an adapter built.
        prompts: Prompt texts of the failed call: removed from the message
            unless ``keep_content`` (the meter stores content) says otherwise.
        keep_content: Keep prompt text (credentials are removed regardless).
    """
    if error is None:
        return None
    if isinstance(error, str):
        text = error
    else:
        try:
            message = str(error)
        except Exception:  # a broken __str__ must not lose the span
            message = "<unprintable>"
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    text = redact(text, prompts=() if keep_content else prompts)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text
