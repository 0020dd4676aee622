"""One classification for every provider's exceptions (real SDK classes)."""

from __future__ import annotations

import datetime as dt

import httpx
import openai
import pytest

from faremeter.error_classes import ERROR_CLASSES, classify_error, retry_after
from faremeter.errors import BudgetExceeded

REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat/completions")


def status_error(
    cls: type[openai.APIStatusError], status: int, message: str = "boom", **headers: str
):
    response = httpx.Response(status, request=REQUEST, headers=headers)
    return cls(message, response=response, body=None)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (status_error(openai.RateLimitError, 429), "rate_limit"),
        (status_error(openai.InternalServerError, 500), "server_error"),
        (status_error(openai.AuthenticationError, 401), "auth"),
        (status_error(openai.PermissionDeniedError, 403), "auth"),
        (status_error(openai.NotFoundError, 404), "not_found"),
        (status_error(openai.BadRequestError, 400), "bad_request"),
        (
            status_error(
                openai.BadRequestError,
                400,
                "This model's maximum context length is 128000 tokens (context_length_exceeded)",
            ),
            "context_window",
        ),
        (
            status_error(openai.BadRequestError, 400, "flagged by our content_filter"),
            "content_policy",
        ),
        (openai.APITimeoutError(REQUEST), "timeout"),
        (openai.APIConnectionError(request=REQUEST), "connection"),
        (httpx.ReadTimeout("slow", request=REQUEST), "timeout"),
        (httpx.ConnectError("refused", request=REQUEST), "connection"),
        (TimeoutError(), "timeout"),
        (ConnectionResetError(), "connection"),
        (BudgetExceeded("over"), "budget"),
        (ValueError("an application bug"), None),
    ],
)
def test_real_sdk_exceptions(error: BaseException, expected: str | None) -> None:
    assert classify_error(error) == expected
    assert expected is None or expected in ERROR_CLASSES


def test_unknown_exception_with_http_status() -> None:
    class Weird(Exception):
        status_code = 503

    class Throttled(Exception):
        status_code = 429

    assert classify_error(Weird()) == "server_error"
    assert classify_error(Throttled()) == "rate_limit"
    assert classify_error("not an exception") is None


def test_httpx_status_error_reads_the_response() -> None:
    response = httpx.Response(429, request=REQUEST)
    error = httpx.HTTPStatusError("too many", request=REQUEST, response=response)
    assert classify_error(error) == "rate_limit"


def test_retry_after_seconds_ms_and_http_date() -> None:
    assert retry_after(status_error(openai.RateLimitError, 429, **{"retry-after": "7"})) == 7.0
    assert (
        retry_after(status_error(openai.RateLimitError, 429, **{"retry-after-ms": "1500"})) == 1.5
    )
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    date = "Thu, 01 Jan 2026 12:00:30 GMT"
    error = status_error(openai.RateLimitError, 429, **{"retry-after": date})
    assert retry_after(error, now=now) == 30.0
    assert retry_after(status_error(openai.RateLimitError, 429)) is None
    assert retry_after(status_error(openai.RateLimitError, 429, **{"retry-after": "soon"})) is None
    assert retry_after(ValueError()) is None
