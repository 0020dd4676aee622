"""Is a LiteLLM call running on this stack? (imports LiteLLM; loaded lazily).

A provider SDK that another OpenTelemetry instrumentation traces (OpenAI's
``opentelemetry-instrumentation-openai-v2``, OpenLLMetry) makes its span
inside LiteLLM's call, and faremeter's GenAI span processor must not price it
again: the LiteLLM adapter records that request. The processor's usual test,
"a faremeter model call is the current span", cannot be used here: LiteLLM
does not call ``log_post_api_call`` on every path (mock responses, some
providers), so a call span made current could not reliably be undone and
would parent the caller's later calls.

The stack can: every LiteLLM SDK call (``completion``, ``acompletion``,
``embedding``, ... and every Router attempt) runs inside the ``wrapper`` /
``wrapper_async`` closure of ``litellm.utils.client``. A frame of one of those
is on the stack exactly while a call runs — through ``await`` chains too —
on every path, and is gone when the call returns or raises: nothing to undo.

Not covered: a provider request LiteLLM hands to another thread (that
thread's stack does not hold the wrapper); such a span is priced by the
processor and LiteLLM's call by the adapter.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from types import CodeType, FrameType

__all__ = [
    "call_wrapper_codes",
    "inside_litellm_call",
    "litellm_call_probe",
    "mark_call_set_up",
]

_WRAPPERS = frozenset({"wrapper", "wrapper_async"})


def call_wrapper_codes() -> tuple[CodeType, ...]:
    """The code objects of the closures ``litellm.utils.client`` wraps every SDK call in.

    Every decorated function's wrapper shares its closure's code object, so
    two code objects cover every LiteLLM SDK call. Empty if a LiteLLM release
    renames them (the adapter's own test pins that they are found).
    """
    import litellm.utils

    client: object = getattr(litellm.utils, "client", None)
    code = getattr(client, "__code__", None)
    if not isinstance(code, CodeType):
        return ()
    return tuple(c for c in code.co_consts if isinstance(c, CodeType) and c.co_name in _WRAPPERS)


_CODES = call_wrapper_codes()
if len(_CODES) != len(_WRAPPERS):
    logging.getLogger("faremeter.litellm").warning(
        "faremeter: this LiteLLM's call wrappers were not found; a provider SDK span that "
        "another OpenTelemetry instrumentation makes inside a LiteLLM call may be priced twice "
        "by faremeter's GenAI span processor"
    )
# Compared by identity (hashing a code object hashes its constants every time);
# padded with None, which no frame's code is, if a LiteLLM release lacks one.
_WRAPPER, _WRAPPER_ASYNC = (*_CODES, None, None)[:2]

# Set, in the caller's context, where LiteLLM sets a call up (inside its
# wrapper, before any request): a context that never made a LiteLLM call is
# answered without walking the stack.
_seen: ContextVar[bool] = ContextVar("faremeter_litellm_call_seen", default=False)


def mark_call_set_up() -> None:
    """Note that a LiteLLM call runs in this context (from the ``function_setup`` hook)."""
    if not _seen.get():
        _seen.set(True)


def inside_litellm_call() -> bool:
    """True while a LiteLLM SDK call is running on the caller's stack (or await chain)."""
    sync, coro = _WRAPPER, _WRAPPER_ASYNC
    frame: FrameType | None = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]
    while frame is not None:
        code = frame.f_code
        if code is sync or code is coro:
            return True
        frame = frame.f_back
    return False


def litellm_call_probe() -> bool:
    """:func:`inside_litellm_call`, skipped where no LiteLLM call was ever set up.

    The probe registered with :mod:`faremeter.call_probes` while the adapter
    is instrumented: it runs at the start of every span other
    instrumentations make, and a stack walk costs microseconds.
    """
    return _seen.get() and inside_litellm_call()
