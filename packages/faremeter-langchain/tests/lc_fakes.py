# pyright: basic
"""Test doubles built on LangChain's own fakes (shared by the adapter's tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from faremeter import Usage


def usage_metadata(usage: Usage) -> dict[str, Any]:
    """LangChain's ``UsageMetadata`` for a faremeter ``Usage``."""
    out: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cache_read_tokens or usage.cache_write_tokens:
        out["input_token_details"] = {
            "cache_read": usage.cache_read_tokens,
            "cache_creation": usage.cache_write_tokens,
        }
    if usage.reasoning_tokens:
        out["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return out


def ai(
    usage: Usage | None,
    model: str | None = "gpt-4o-mini",
    content: str = "",
    tool: str | None = None,
    args: dict[str, Any] | None = None,
    call_id: str = "call-1",
) -> AIMessage:
    """An assistant message reporting ``usage`` on ``model``, optionally calling ``tool``."""
    return AIMessage(
        content=content,
        tool_calls=[{"name": tool, "args": args or {"query": "q"}, "id": call_id}] if tool else [],
        usage_metadata=usage_metadata(usage) if usage is not None else None,
        response_metadata={"model_name": model} if model else {},
    )


class ToolFake(GenericFakeChatModel):
    """GenericFakeChatModel that accepts ``bind_tools`` (it just replays its messages)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolFake:  # type: ignore[override]
        return self


class NamedFake(ToolFake):
    """A fake that declares its model, so LangChain sets ``ls_model_name``."""

    model: str = "gpt-4o-mini"


class StreamingFake(ToolFake):
    """Streams its message's text, then a last chunk carrying usage (like ``stream_usage``)."""

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        message = next(self.messages)
        assert isinstance(message, AIMessage)
        for word in str(message.content).split(" "):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )


def scripted(*items: AIMessage | BaseException | Callable[[], AIMessage]) -> Iterator[AIMessage]:
    """Messages for a fake model; an exception item is raised when reached."""
    for item in items:
        if isinstance(item, BaseException):
            raise item
        yield item() if callable(item) else item


def make_agent(model: Any, tools: Iterable[BaseTool], *, name: str | None = None) -> Any:
    """A hand-built LangGraph ReAct loop: ``model`` node ⇄ ``tools`` node."""
    tools = list(tools)
    bound = model.bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def acall_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", RunnableLambda(call_model, afunc=acall_model, name="model"))
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    return graph.compile(name=name or "agent")
