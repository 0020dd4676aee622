"""Attribution and the current span, carried by :mod:`contextvars`.

Context variables are what make one tree out of a LangGraph agent that calls a
LlamaIndex query engine that calls LiteLLM: every adapter asks the same
variables for the enclosing span and attributes, whichever framework opened
them. asyncio tasks copy the context when created, so a child task inherits its
parent's attribution and sibling tasks never see each other's. Threads do not
copy it: wrap the callable with :func:`bind` when handing work to a thread.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from faremeter.spans import AttributeValue, validate_attribute_name

if TYPE_CHECKING:
    from faremeter.open_span import OpenSpan

__all__ = [
    "add_activation_hook",
    "attributes",
    "bind",
    "current_attributes",
    "current_span",
]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("faremeter")

_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})
_MAX_CACHED_NAMES = 4096
_valid_names: set[str] = set()  # names already validated: skips the regex on the hot path
_attributes: contextvars.ContextVar[Mapping[str, AttributeValue]] = contextvars.ContextVar(
    "faremeter_attributes", default=_EMPTY
)
_span: contextvars.ContextVar[OpenSpan | None] = contextvars.ContextVar(
    "faremeter_span", default=None
)


def clean_attributes(attrs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Validate names and coerce values to what spans can hold.

    ``None`` values are dropped (a missing attribute, not the string "None");
    other non-scalar values are stringified so nothing unserialisable reaches
    the ledger.
    """
    out: dict[str, AttributeValue] = {}
    for key, value in attrs.items():
        if key not in _valid_names:
            validate_attribute_name(key)
            if len(_valid_names) < _MAX_CACHED_NAMES:
                _valid_names.add(key)
        if value is None:
            continue
        if isinstance(value, str | int | float | bool):
            out[key] = value
        else:
            out[key] = str(value)
    return out


def current_attributes() -> Mapping[str, AttributeValue]:
    """The attribution in force here (read-only)."""
    return _attributes.get()


def current_span() -> OpenSpan | None:
    """The innermost *open* span of this context, from any framework.

    A span can end in another context than the one it was activated in
    (LangChain shields async end callbacks into a copied context), leaving it
    set here after its end. Ended spans are skipped, walking up to the nearest
    open ancestor, so such a leak can never parent new spans to a closed one.
    """
    span = _span.get()
    while span is not None and span.ended:
        span = span.parent
    return span


@contextmanager
def attributes(**attrs: Any) -> Generator[Mapping[str, AttributeValue]]:
    """Attribute everything recorded inside the block.

    Works in sync and async code alike (``with``, not ``async with``): the
    values live in a context variable, so they follow ``await`` and are
    inherited by tasks created inside the block.

    Example:
        >>> with faremeter.attributes(step="plan", user_id="u1"):
        ...     agent.invoke(...)

    Raises:
        ValueError: For an attribute name that is not a safe identifier.
    """
    merged = MappingProxyType({**_attributes.get(), **clean_attributes(attrs)})
    token = _attributes.set(merged)
    try:
        yield merged
    finally:
        _attributes.reset(token)


ActivationHook = tuple[Callable[["OpenSpan | None"], None], Callable[[], None]]
_hooks: tuple[ActivationHook, ...] = ()
_hooks_lock = threading.Lock()


def add_activation_hook(
    on_activate: Callable[[OpenSpan | None], None], on_deactivate: Callable[[], None]
) -> Callable[[], None]:
    """Call ``on_activate(span)`` after every :func:`activate`, ``on_deactivate()`` after each undo.

    Returns the remover.

    For context bridges (OpenTelemetry: make the current faremeter span the
    current OTel span). Register at startup: hooks see activations from then on.
    Hook exceptions are logged, never raised.
    """
    global _hooks
    pair: ActivationHook = (on_activate, on_deactivate)
    with _hooks_lock:
        _hooks = (*_hooks, pair)

    def remove() -> None:
        global _hooks
        with _hooks_lock:
            _hooks = tuple(h for h in _hooks if h is not pair)

    return remove


def activate(span: OpenSpan | None) -> contextvars.Token[OpenSpan | None]:
    """Make ``span`` the current span; pass the token to :func:`deactivate`."""
    token = _span.set(span)
    if _hooks:
        for on_activate, _ in _hooks:
            try:
                on_activate(span)
            except Exception:
                logger.exception("faremeter: activation hook %r failed", on_activate)
    return token


def deactivate(token: contextvars.Token[OpenSpan | None]) -> None:
    """Undo :func:`activate`, tolerating a token from another context."""
    try:
        _span.reset(token)
    except ValueError:
        # Reset from a different context (e.g. a callback on another thread):
        # fall back to restoring the previous value rather than failing the app.
        _span.set(token.old_value if token.old_value is not contextvars.Token.MISSING else None)
    if _hooks:
        for _, on_deactivate in reversed(_hooks):
            try:
                on_deactivate()
            except Exception:
                logger.exception("faremeter: deactivation hook %r failed", on_deactivate)


def bind(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` in a copy of the current context, e.g. on a worker thread.

    ``threading.Thread`` and ``ThreadPoolExecutor`` start with an empty context,
    so spans recorded there would start new traces; binding keeps them in the
    caller's trace with its attribution.
    """
    ctx = contextvars.copy_context()

    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(fn, *args, **kwargs)

    return bound
