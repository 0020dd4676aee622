"""One classification of provider and framework errors, for every adapter.

The fallback chain decides what to do next from the class (retry a
``rate_limit``, move a ``context_window`` to a larger model, move ``budget``
down a tier), and reports group failures by it, so the same provider error
must get the same class whichever framework raised it. Classes are matched by
exception *name* along the MRO — no import of openai, anthropic, httpx,
litellm or google — then by HTTP status, then by well-known message phrases
(providers signal an oversized prompt as a plain 400).
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["ERROR_CLASSES", "classify_error", "retry_after"]

ERROR_CLASSES: Final = (
    "rate_limit",
    "timeout",
    "server_error",
    "connection",
    "context_window",
    "content_policy",
    "auth",
    "bad_request",
    "not_found",
    "budget",
)
"""Every class :func:`classify_error` returns."""

# Most specific first: LiteLLM's ContextWindowExceededError is a BadRequestError,
# openai's APITimeoutError an APIConnectionError, httpx's ConnectTimeout a TimeoutException.
_BY_NAME: Final = (
    ("BudgetExceeded", "budget"),
    ("BudgetExceededError", "budget"),
    ("ContextWindowExceededError", "context_window"),
    ("ContentPolicyViolationError", "content_policy"),
    ("RateLimitError", "rate_limit"),
    ("ResourceExhausted", "rate_limit"),  # google.api_core
    ("TooManyRequests", "rate_limit"),
    ("APITimeoutError", "timeout"),
    ("Timeout", "timeout"),  # litellm
    ("TimeoutException", "timeout"),  # httpx
    ("DeadlineExceeded", "timeout"),  # google.api_core
    ("TimeoutError", "timeout"),  # builtin and asyncio
    ("APIConnectionError", "connection"),
    ("ConnectError", "connection"),  # httpx
    ("NetworkError", "connection"),  # httpx
    ("ConnectionError", "connection"),  # builtin
    ("OverloadedError", "server_error"),  # anthropic 529
    ("ServiceUnavailableError", "server_error"),
    ("ServiceUnavailable", "server_error"),  # google.api_core
    ("InternalServerError", "server_error"),
    ("BadGatewayError", "server_error"),
    ("ServerError", "server_error"),  # google.genai
    ("AuthenticationError", "auth"),
    ("PermissionDeniedError", "auth"),
    ("Unauthenticated", "auth"),  # google.api_core
    ("PermissionDenied", "auth"),  # google.api_core
    ("NotFoundError", "not_found"),
    ("NotFound", "not_found"),  # google.api_core
    ("UnprocessableEntityError", "bad_request"),
    ("InvalidArgument", "bad_request"),  # google.api_core
    ("BadRequestError", "bad_request"),
)

# Phrases providers use for an oversized prompt or a safety refusal inside a
# generic 400 (lower-cased substring match on the message).
_CONTEXT_PHRASES: Final = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "input is too long",
    "exceeds the maximum number of tokens",
)
_POLICY_PHRASES: Final = (
    "content_policy",
    "content management policy",
    "content_filter",
    "responsibleaipolicyviolation",
    "safety system",
)
_REFINABLE: Final = frozenset({"bad_request", None})


def _status(error: BaseException) -> int | None:
    for source in (error, getattr(error, "response", None)):
        for attr in ("status_code", "status", "code"):
            value = getattr(source, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    return None


def _by_status(status: int) -> str | None:
    if status == 429:
        return "rate_limit"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status in (400, 413, 422):
        return "bad_request"
    return None


def _by_message(error: BaseException) -> str | None:
    try:
        text = str(error).lower()
    except Exception:  # a broken __str__ must not break classification
        return None
    if any(p in text for p in _CONTEXT_PHRASES):
        return "context_window"
    if any(p in text for p in _POLICY_PHRASES):
        return "content_policy"
    return None


def classify_error(error: object) -> str | None:
    """Normalise an exception from any provider SDK or framework to one class.

    Returns:
        One of :data:`ERROR_CLASSES`, or ``None`` when nothing matches (an
        application error, not a provider failure).
    """
    if not isinstance(error, BaseException):
        return None
    names = {cls.__name__ for cls in type(error).__mro__}
    found: str | None = None
    for name, klass in _BY_NAME:
        if name in names:
            found = klass
            break
    if found is None:
        status = _status(error)
        if status is not None:
            found = _by_status(status)
    if found in _REFINABLE:
        found = _by_message(error) or found
    return found


def _headers(error: BaseException) -> Mapping[str, Any] | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        headers = getattr(error, "headers", None) or getattr(
            error, "litellm_response_headers", None
        )
    if headers is None or not hasattr(headers, "get"):
        return None
    return headers  # pyright: ignore[reportUnknownVariableType]


def retry_after(error: object, *, now: dt.datetime | None = None) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After`` / ``retry-after-ms``).

    Honouring it beats any backoff formula: retrying earlier only earns another
    429. Accepts seconds or an HTTP date; ``None`` when absent or unreadable.
    """
    if not isinstance(error, BaseException):
        return None
    headers = _headers(error)
    if headers is None:
        value = getattr(error, "retry_after", None)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        raw = headers.get("retry-after")
        if raw is None:
            return None
        text = str(raw).strip()
        try:
            return max(0.0, float(text))
        except ValueError:
            when = email.utils.parsedate_to_datetime(text)
            now = now or dt.datetime.now(dt.UTC)
            return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None
