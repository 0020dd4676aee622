"""LiteLLM Router attempts grouped under one logical call span.

Every attempt of one Router call (a retry or a fallback) shares a
``litellm_trace_id``: the first attempt opens a ``litellm.router:<group>`` chain
span and each attempt becomes its child. A success closes the call (status
``fallback`` when another model group answered); a call whose attempts all
failed has no "final" hook in the SDK, so it is closed by :meth:`close_idle`
after a grace period without a new attempt (and by every flush).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faremeter.cost import Cost
from faremeter.meter import Meter
from faremeter.open_span import OpenSpan
from faremeter.spans import SpanKind, SpanStatus
from faremeter_litellm import _translate as tr

__all__ = ["RouterCalls"]


@dataclass(slots=True)
class _RouterCall:
    """One Router call: the logical span and what its attempts did so far."""

    span: OpenSpan
    open_attempts: int = 0
    attempts: int = 0
    last_error_class: str | None = None
    last_change: float = field(default_factory=time.monotonic)


class RouterCalls:
    """Open Router calls and which attempt belongs to which (thread-safe).

    Args:
        meter: Where the logical call spans go (resolved per call).
        grace_s: How long a call whose attempts all failed waits for another.
    """

    def __init__(self, meter: Callable[[], Meter], grace_s: float) -> None:
        self._meter = meter
        self.grace_s = grace_s
        self._calls: dict[str, _RouterCall] = {}
        self._attempt_call: dict[str, str] = {}  # attempt id -> router call key
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._calls)

    def attempt(
        self,
        cid: str,
        router: Mapping[str, Any],
        attrs: Mapping[str, Any],
        parent: OpenSpan | None,
        start_ns: int | None,
    ) -> OpenSpan | None:
        """Register attempt ``cid``; returns the span it nests under (the call's)."""
        trace = router["trace"]
        if trace is None:
            return parent
        key = f"{trace}:{router['original_model_group']}"
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                span = self._meter().start_span(
                    f"litellm.router:{router['original_model_group']}",
                    kind=SpanKind.CHAIN,
                    parent=parent,
                    attributes={**attrs, "model_group": router["original_model_group"]},
                    start_ns=start_ns,
                )
                call = self._calls[key] = _RouterCall(span=span)
            call.open_attempts += 1
            call.attempts += 1
            call.last_change = time.monotonic()
            self._attempt_call[cid] = key
            return call.span

    def attempt_done(
        self,
        cid: str,
        error_class: str | None,
        *,
        ok: bool,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        """Attempt ``cid`` ended; a success closes its call."""
        with self._lock:
            key = self._attempt_call.pop(cid, None)
            call = self._calls.get(key) if key is not None else None
            if call is None:
                return
            call.open_attempts -= 1
            call.last_change = time.monotonic()
            if not ok:
                call.last_error_class = error_class or "error"
                return
            del self._calls[key]  # pyright: ignore[reportArgumentType]
        router = tr.router_info(kwargs or {}) or {}
        fell_back = bool(router.get("attempted_fallbacks")) or (
            router.get("model_group") != router.get("original_model_group")
        )
        call.span.end(
            status=SpanStatus.FALLBACK if fell_back else SpanStatus.OK,
            cost=Cost(),
            attributes={
                "served_model_group": router.get("model_group"),
                "deployment": router.get("deployment"),
                "model_id": router.get("model_id"),
                "attempts": call.attempts,
                "fallback_reason": call.last_error_class,
            },
        )

    def close_idle(self, grace_s: float | None = None) -> int:
        """End calls whose attempts all failed and saw nothing new for ``grace_s``.

        The SDK has no hook for "the Router gave up"; the error reached the
        caller, and the logical span records it as ``error`` here.

        Returns:
            How many calls were closed.
        """
        grace = self.grace_s if grace_s is None else grace_s
        now = time.monotonic()
        with self._lock:
            stale = [
                (k, c)
                for k, c in self._calls.items()
                if c.open_attempts <= 0 and now - c.last_change >= grace
            ]
            for key, _ in stale:
                del self._calls[key]
        for _, call in stale:
            call.span.end(
                status=SpanStatus.ERROR,
                cost=Cost(),
                error=f"every attempt failed (last: {call.last_error_class})",
                error_class=call.last_error_class,
                attributes={"attempts": call.attempts, "fallback_reason": call.last_error_class},
            )
        return len(stale)
