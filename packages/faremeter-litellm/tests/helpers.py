from __future__ import annotations

from typing import Any

import litellm

from faremeter.usage import Usage


def mock(usage: Usage, *, model: str = "gpt-4o-mini", text: str = "ok") -> Any:
    """A ModelResponse reporting exactly ``usage`` (LiteLLM's string mock always says 10/20)."""
    details: dict[str, int] = {}
    if usage.cache_read_tokens:
        details["cached_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        details["cache_creation_tokens"] = usage.cache_write_tokens
    return litellm.ModelResponse(
        model=model,
        choices=[{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        usage=litellm.Usage(
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            prompt_tokens_details=details or None,
            completion_tokens_details=(
                {"reasoning_tokens": usage.reasoning_tokens} if usage.reasoning_tokens else None
            ),
        ),
    )


MESSAGES = [{"role": "user", "content": "hello"}]
