"""A scripted function-calling LLM that reports usage, for offline tests and examples.

LlamaIndex's own ``MockFunctionCallingLLM`` reports no token usage, so it can
only exercise estimation. :class:`ScriptedLLM` replays a script of replies (text
or tool calls) and reports each reply's usage the way OpenAI does, in
``ChatResponse.raw["usage"]`` (streamed: on the final chunk only), so a real
``FunctionAgent`` run can be priced exactly without a network.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import uuid4

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.llms import callbacks as _callbacks
from llama_index.core.llms.mock import MockFunctionCallingLLM
from pydantic import PrivateAttr

from faremeter import Usage

__all__ = ["Reply", "ScriptedLLM", "openai_usage"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _chat_callback() -> Callable[[_F], _F]:
    """LlamaIndex's (untyped) ``llm_chat_callback``, typed for pyright."""
    return _callbacks.llm_chat_callback()  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType]


def openai_usage(usage: Usage) -> dict[str, Any]:
    """``usage`` as an OpenAI Chat Completions ``usage`` object."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


@dataclass(frozen=True)
class Reply:
    """One scripted model turn.

    Attributes:
        text: The assistant's text.
        tool_calls: ``(tool_name, kwargs)`` pairs the model asks for.
        usage: Reported usage (a :class:`~faremeter.Usage` or a raw provider
            dict put verbatim in ``raw["usage"]``); ``None`` reports nothing.
        error: Raised instead of replying.
    """

    text: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    usage: Usage | Mapping[str, Any] | None = None
    error: BaseException | None = None
    extra: Mapping[str, Any] = field(default_factory=dict[str, Any])


class ScriptedLLM(MockFunctionCallingLLM):
    """A function-calling LLM replaying :class:`Reply` objects in order.

    When the script runs out it answers ``"done"`` with no usage.
    """

    model: str = "gpt-4o-mini"
    _script: list[Reply] = PrivateAttr(default_factory=list[Reply])
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, script: Sequence[Reply] = (), model: str = "gpt-4o-mini", **kw: Any) -> None:
        super().__init__(**kw)
        self.model = model
        self._script = list(script)

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "ScriptedLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """Metadata naming the model, as real integrations do (``model_name``)."""
        return LLMMetadata(
            model_name=self.model, is_function_calling_model=True, is_chat_model=True
        )

    def _next(self) -> Reply:
        with self._lock:
            return self._script.pop(0) if self._script else Reply(text="done")

    @staticmethod
    def _message(reply: Reply) -> ChatMessage:
        if reply.tool_calls:
            blocks: list[Any] = [
                ToolCallBlock(
                    tool_call_id=f"call-{uuid4().hex[:8]}", tool_name=n, tool_kwargs=dict(kw)
                )
                for n, kw in reply.tool_calls
            ]
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)
        return ChatMessage(role=MessageRole.ASSISTANT, content=reply.text)

    @staticmethod
    def _raw(reply: Reply) -> dict[str, Any]:
        raw: dict[str, Any] = {"model": None, **reply.extra}
        if isinstance(reply.usage, Usage):
            raw["usage"] = openai_usage(reply.usage)
        elif reply.usage is not None:
            raw["usage"] = dict(reply.usage)
        if raw["model"] is None:
            del raw["model"]
        return raw

    @_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Reply with the next scripted turn."""
        reply = self._next()
        if reply.error is not None:
            raise reply.error
        message = self._message(reply)
        return ChatResponse(message=message, delta=message.content, raw=self._raw(reply))

    @_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Like :meth:`chat` (which it calls, as many real integrations do)."""
        return self.chat(messages, **kwargs)

    def _chunks(self, reply: Reply) -> Generator[ChatResponse, None, None]:
        message = self._message(reply)
        if reply.text:
            half = len(reply.text) // 2
            first = ChatMessage(role=MessageRole.ASSISTANT, content=reply.text[:half])
            yield ChatResponse(message=first, delta=reply.text[:half])
        # The final chunk carries the usage, as OpenAI's include_usage does.
        rest = reply.text[len(reply.text) // 2 :]
        yield ChatResponse(message=message, delta=rest, raw=self._raw(reply))

    @_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the next scripted turn in two chunks."""
        reply = self._next()

        def gen() -> Generator[ChatResponse, None, None]:
            if reply.error is not None:
                raise reply.error
            yield from self._chunks(reply)

        return gen()

    @_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""
        reply = self._next()

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            if reply.error is not None:
                raise reply.error
            for chunk in self._chunks(reply):
                yield chunk

        return gen()
