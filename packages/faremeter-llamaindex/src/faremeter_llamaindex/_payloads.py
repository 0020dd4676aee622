"""Reading LlamaIndex payloads: which spans matter, and what responses report.

Pure translation with no state of its own beyond a per-class cache: the kind
of a span (from the instance's class and the method), the model an LLM object
is configured with, the usage a response reports wherever the provider put it,
and the texts of prompts and replies (for the core's usage-honesty check).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from faremeter.estimate import Texts
from faremeter.normalize import safe_parse_usage
from faremeter.spans import SpanKind
from faremeter.usage import Usage

__all__ = [
    "Kinds",
    "get",
    "model_of",
    "prompt_texts",
    "reply_text",
    "reply_texts",
    "tool_args_digest",
    "usage_of",
]

_WHERE = "llamaindex"
_USAGE_KEYS = ("usage", "usage_metadata", "usageMetadata")
_MODEL_KEYS = ("model", "model_name", "deployment_name")
_LLM_METHODS = frozenset(
    {"chat", "achat", "stream_chat", "astream_chat"}
    | {"complete", "acomplete", "stream_complete", "astream_complete"}
)
_ASYNC_STREAMS = frozenset({"astream_chat", "astream_complete"})
_EMBED_METHODS = frozenset(
    {"get_query_embedding", "aget_query_embedding", "get_text_embedding"}
    | {"aget_text_embedding", "get_text_embedding_batch", "aget_text_embedding_batch"}
)


def get(obj: Any, key: str) -> Any:
    """``obj[key]`` or ``obj.key``, or None.

    Pydantic models keep fields in ``__dict__``; reading a *missing* attribute
    through ``getattr`` costs an exception inside pydantic's ``__getattr__``
    (microseconds, on every call), so fields are looked up directly.
    """
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(key)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    fields: Any = getattr(obj, "__dict__", None)
    if type(fields) is dict:
        if key in fields:
            return fields[key]  # pyright: ignore[reportUnknownVariableType]
        if isinstance(obj, BaseModel):
            return None
    elif isinstance(obj, Mapping):
        return obj.get(key)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return getattr(obj, key, None)


def message_text(message: Any) -> str:
    """The text of a ChatMessage-like object, including tool-call requests."""
    parts: list[str] = []
    content = getattr(message, "content", None)  # a property of ChatMessage
    if isinstance(content, str):
        parts.append(content)
    for block in get(message, "blocks") or ():
        name = get(block, "tool_name")
        if isinstance(name, str):
            parts.append(f"{name}({get(block, 'tool_kwargs')})")
    return " ".join(parts) if parts else str(message)


def prompt_texts(arguments: Mapping[str, Any]) -> Texts:
    """The prompt of an LLM call from its bound arguments, read only if the core needs it.

    Most calls report usage, so their prompt text is never needed: the core
    calls this back only to estimate or to check a zero count.
    """
    messages = arguments.get("messages")
    if type(messages) is list or (isinstance(messages, Sequence) and not isinstance(messages, str)):
        return lambda: [message_text(m) for m in messages]  # pyright: ignore[reportUnknownVariableType]
    prompt = arguments.get("prompt")
    return prompt if isinstance(prompt, str) else None


def tool_args_digest(instance: Any, arguments: Mapping[str, Any] | None) -> str:
    """``tool_args_hash`` of a tool call from its bound arguments (never the arguments).

    A ``FunctionAgent`` calls ``tool.acall(**tool_kwargs)``: the digest is of
    that keyword dict, canonicalised like the tool cache and the LangChain
    adapter do, so the same call hashes the same in both frameworks. The
    workflow ``Context`` a tool may be handed is not an argument; positional
    arguments (a direct ``tool("x")``) are kept apart from keywords.
    """
    from faremeter.analytics import tool_args_hash

    arguments = arguments or {}
    args: Any = arguments.get("args") or ()
    named: dict[str, Any] = dict(arguments.get("kwargs") or {})
    for key, value in arguments.items():  # BaseTool.call(input): named parameters
        if key not in ("args", "kwargs"):
            named[key] = value
    ctx = getattr(instance, "ctx_param_name", None)
    if isinstance(ctx, str):
        named.pop(ctx, None)
    value: Any = {"args": list(args), "kwargs": named} if args else named  # pyright: ignore[reportUnknownArgumentType]
    try:
        return tool_args_hash(value)
    except (TypeError, ValueError):  # arguments with no canonical form: hash their text
        return tool_args_hash(str(value))


def model_of(fields: Any) -> str | None:
    """The model named by an LLM's fields (or an event's ``model_dict``)."""
    if type(fields) is dict or isinstance(fields, Mapping):
        for key in _MODEL_KEYS:
            value = fields.get(key)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            if isinstance(value, str) and value and value != "unknown":
                return value
    return None


def reply_text(response: Any) -> str | None:
    """The generated text of a ChatResponse / CompletionResponse (a stream's last chunk)."""
    message = get(response, "message")
    if message is not None:
        return message_text(message)
    text = get(response, "text")
    return text if isinstance(text, str) else None


def reply_texts(response: Any) -> Texts:
    """The reply's text, read only if the core needs it (see :func:`prompt_texts`)."""
    if response is None:
        return None
    return lambda: reply_text(response) or ""


def _fields(obj: Any) -> dict[str, Any] | None:
    found: Any = getattr(obj, "__dict__", None)  # a pydantic model keeps its fields here
    return found if type(found) is dict else None  # pyright: ignore[reportUnknownVariableType]


def usage_of(response: Any, *, chunk: bool = False) -> Usage | None:
    """Reported usage of a response, wherever the provider put it.

    ``raw`` (OpenAI's ``usage``, Gemini's ``usage_metadata`` …) first; a
    complete response may instead carry it in ``additional_kwargs`` (of the
    response or its message). Stream chunks only count ``raw``.
    """
    if response is None:
        return None
    fields = _fields(response)
    if fields is None:  # not a pydantic response: look fields up one by one
        fields = {k: get(response, k) for k in ("raw", "additional_kwargs", "message")}
    raw: Any = fields.get("raw")
    if raw is not None:
        for key in _USAGE_KEYS:
            payload = get(raw, key)
            if payload is not None:
                return safe_parse_usage(payload, where=_WHERE)
    if chunk:
        return None
    kwargs: Any = fields.get("additional_kwargs")
    if kwargs and isinstance(kwargs, Mapping):
        usage = safe_parse_usage(kwargs, where=_WHERE)
        if usage is not None:
            return usage
    message: Any = fields.get("message")
    if message is not None:
        kwargs = get(message, "additional_kwargs")
        if kwargs and isinstance(kwargs, Mapping):
            return safe_parse_usage(kwargs, where=_WHERE)
    return None


class Kinds:
    """Which LlamaIndex spans become faremeter spans, cached per class and method."""

    def __init__(self) -> None:
        from llama_index.core.agent.workflow import AgentWorkflow, BaseWorkflowAgent
        from llama_index.core.base.base_query_engine import BaseQueryEngine
        from llama_index.core.base.base_retriever import BaseRetriever
        from llama_index.core.base.embeddings.base import BaseEmbedding
        from llama_index.core.base.llms.base import BaseLLM
        from llama_index.core.chat_engine.types import BaseChatEngine
        from llama_index.core.tools.types import BaseTool
        from llama_index.core.workflow import Workflow

        chat_engine = frozenset({"chat", "achat", "stream_chat", "astream_chat"})
        self._rules: tuple[tuple[type, frozenset[str], SpanKind], ...] = (
            (BaseLLM, _LLM_METHODS, SpanKind.LLM),
            (BaseEmbedding, _EMBED_METHODS, SpanKind.EMBEDDING),
            (BaseRetriever, frozenset({"retrieve", "aretrieve"}), SpanKind.RETRIEVAL),
            (BaseTool, frozenset({"call", "acall", "__call__"}), SpanKind.TOOL),
            (BaseWorkflowAgent, frozenset({"run"}), SpanKind.AGENT),
            (AgentWorkflow, frozenset({"run"}), SpanKind.AGENT),
            (Workflow, frozenset({"run"}), SpanKind.CHAIN),
            (BaseQueryEngine, frozenset({"query", "aquery"}), SpanKind.CHAIN),
            (BaseChatEngine, chat_engine, SpanKind.CHAIN),
        )
        self.workflow_type: type = Workflow
        # (class, "Class.method") -> (kind or None, is a Workflow, is an async stream).
        self.cache: dict[tuple[type, str], tuple[SpanKind | None, bool, bool]] = {}

    def classify(self, instance: Any, label: str) -> tuple[SpanKind | None, bool, bool]:
        """``(kind, is a Workflow, is an async stream)`` of ``instance``'s span ``label``.

        ``label`` is ``"Class.method"``. An async stream (``astream_chat``,
        ``astream_complete``) of a ``CustomLLM`` iterates the same instance's
        sync stream later, outside its own span.
        """
        key = (instance.__class__, label)
        entry = self.cache.get(key)
        if entry is None:
            method = label.rpartition(".")[2]
            kind = None
            for cls, methods, rule_kind in self._rules:
                if method in methods and isinstance(instance, cls):
                    kind = rule_kind
                    break
            is_stream = kind is SpanKind.LLM and method in _ASYNC_STREAMS
            entry = (kind, isinstance(instance, self.workflow_type), is_stream)
            self.cache[key] = entry
        return entry

    def name(self, kind: SpanKind, instance: Any, label: str, is_workflow: bool) -> str:
        """Tools by their tool name (what tool prices key on), agents and workflows by name."""
        if kind is SpanKind.TOOL:
            name = getattr(getattr(instance, "metadata", None), "name", None)
            return name if isinstance(name, str) and name else label
        if kind is SpanKind.AGENT:
            name = getattr(instance, "name", None)
            return name if isinstance(name, str) and name else type(instance).__name__
        return type(instance).__name__ if is_workflow else label
