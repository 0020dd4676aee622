"""Offline stand-ins for a provider: a chat model that reports planned usage, and two tools.

The model is a real LangChain ``BaseChatModel`` — callbacks, run tree, usage
metadata and errors flow exactly as with ``ChatOpenAI`` — that answers
without a network. It reports the usage it is told to (the task's step plan)
under its own model name, and can answer a 429 the way providers do.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, tool

__all__ = ["DemoChatModel", "RateLimitError", "make_tools", "prompt_text"]

_WORD = "cost "
_FILLER = _WORD * 40_000


def prompt_text(tokens: int) -> str:
    """Conversation text of about ``tokens`` tokens (one per word).

    The budget reserves a call from its counted prompt, so the prompt must be
    as long as the usage the model will report.
    """
    return _FILLER[: len(_WORD) * max(0, min(tokens, 40_000))]


class RateLimitError(Exception):
    """What a provider's SDK raises on HTTP 429 (classified ``rate_limit``)."""

    status_code = 429

    def __init__(self, model: str) -> None:
        super().__init__(f"429 Too Many Requests: rate limit reached for {model}")


class DemoChatModel(BaseChatModel):
    """A chat model that answers offline with the usage it was given.

    Attributes:
        model: Model name reported to LangChain and in the response.
        max_tokens: The call's output cap (what a budget reserves against).
        input_tokens: Prompt tokens to report.
        output_tokens: Completion tokens to report.
        rate_limited: Answer with :class:`RateLimitError` instead.
        content: The reply text.
    """

    model: str
    max_tokens: int
    input_tokens: int
    output_tokens: int
    rate_limited: bool = False
    content: str = "ok"

    @property
    def _llm_type(self) -> str:
        return "faremeter-demo"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens}

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        params = super()._get_invocation_params(stop=stop, **kwargs)
        return {**params, "model": self.model, "max_tokens": self.max_tokens}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.rate_limited:
            raise RateLimitError(self.model)
        message = AIMessage(
            content=self.content,
            usage_metadata={
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            response_metadata={"model_name": self.model},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def make_tools() -> dict[str, BaseTool]:
    """``web_search`` and ``read_page``: deterministic offline results."""

    @tool
    def web_search(query: str) -> list[str]:
        """Search the web and return result titles."""
        return [f"{query}: result {i}" for i in range(1, 4)]

    @tool
    def read_page(url: str) -> str:
        """Fetch a page and return its text."""
        return f"text of {url}"

    return {"web_search": web_search, "read_page": read_page}
