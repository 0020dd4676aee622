"""The state between LiteLLM's "call starts" and "call ended" hooks.

LiteLLM fires ``log_pre_api_call`` inline, in the caller's thread and
context (for ``acompletion`` too: it runs in an executor with a copied
context), but its success/failure hooks later, on a logging thread (sync) or
a logging-worker task (async), where a sync stream's context is already lost.
So the span is *started* in the pre-call hook — parent and attribution come
from the caller — and *ended* by whichever final hook arrives, keyed by
``litellm_call_id``. A call that never fired the pre-call hook (a cache hit)
is started at its end, from the context the hook runs in.

Router attempts share a ``litellm_trace_id``: the first attempt opens a
logical call span and every attempt (retry or fallback) becomes its child.
A success closes the call; a call whose attempts all failed has no "final"
hook in the SDK, so it is closed by :meth:`Recorder.close_idle_calls` after
``router_grace_s`` without a new attempt (and by every flush).

No LiteLLM import here: the recorder is driven by plain dicts, which keeps it
fuzzable and cheap to import.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from faremeter.context import current_span
from faremeter.cost import Cost
from faremeter.meter import Meter, get_meter
from faremeter.open_span import OpenSpan
from faremeter.spans import SpanKind, SpanStatus
from faremeter_litellm import _translate as tr

__all__ = ["Recorder"]

logger = logging.getLogger("faremeter.litellm")

_EMBEDDING_CALLS = frozenset({"embedding", "aembedding"})
_DONE_MEMORY = 50_000


@dataclass(slots=True)
class _Call:
    """One Router call: the logical span and what its attempts did so far."""

    span: OpenSpan
    open_attempts: int = 0
    attempts: int = 0
    last_error_class: str | None = None
    last_change: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Attempt:
    span: OpenSpan
    call_key: str | None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}  # pyright: ignore[reportUnknownVariableType]


def _ns(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class Recorder:
    """Turns LiteLLM hook payloads into faremeter spans (thread-safe).

    Args:
        meter: Where to record; ``None`` means :func:`faremeter.get_meter` at use.
        attributes: Attribution stamped on every span this logger records.
        max_open: Bound on calls started but never finished (an abandoned
            stream); the oldest are ended as ``error`` beyond it.
        router_grace_s: How long a Router call whose attempts all failed waits
            for another attempt before it is closed as ``error``.
    """

    def __init__(
        self,
        meter: Meter | None = None,
        attributes: Mapping[str, Any] | None = None,
        *,
        max_open: int = 10_000,
        router_grace_s: float = 30.0,
    ) -> None:
        self._meter = meter
        self.attributes = dict(attributes or {})
        self.max_open = max_open
        self.router_grace_s = router_grace_s
        self._attempts: OrderedDict[str, _Attempt] = OrderedDict()
        self._calls: dict[str, _Call] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._last_sweep = time.monotonic()
        self._busy = 0  # hooks between claiming an attempt and recording it

    @property
    def meter(self) -> Meter:
        """The meter spans go to."""
        return self._meter or get_meter()

    # -- hooks ------------------------------------------------------------------
    def start(self, kwargs: Mapping[str, Any]) -> None:
        """A call is about to reach the provider (``log_pre_api_call``)."""
        cid = tr.call_id(kwargs)
        if cid is None:
            return
        with self._lock:
            if cid in self._attempts or cid in self._done:
                return
        attempt = self._open(kwargs, start_ns=None, end_ts=None, start_ts=None)
        evicted: list[_Attempt] = []
        with self._lock:
            if cid in self._attempts:  # a concurrent duplicate hook won the race
                evicted.append(attempt)
            else:
                self._attempts[cid] = attempt
                while len(self._attempts) > self.max_open:
                    evicted.append(self._attempts.popitem(last=False)[1])
        for stale in evicted:
            stale.span.end(
                status=SpanStatus.ERROR,
                error="call never finished (abandoned stream?)",
                cost=Cost.unpriced("never finished"),
            )
            self._attempt_done(stale, None, ok=False)

    def success(
        self, kwargs: Mapping[str, Any], response: Any, start_time: Any, end_time: Any
    ) -> None:
        """A call succeeded (``log_success_event`` / ``async_log_success_event``)."""
        if kwargs.get("stream") is True:
            final = kwargs.get("complete_streaming_response") or kwargs.get(
                "async_complete_streaming_response"
            )
            if final is None:
                if type(response).__name__ == "ModelResponseStream":
                    return  # a per-chunk event, not the end of the stream
            else:
                response = final
        attempt = self._claim(kwargs, start_time, end_time)
        if attempt is None:
            return
        try:
            self._succeed(attempt, kwargs, response)
        finally:
            self._release()

    def _succeed(self, attempt: _Attempt, kwargs: Mapping[str, Any], response: Any) -> None:
        span = attempt.span
        model = span.model or tr.metadata(kwargs).get("deployment") or ""
        price_model = self._price_name(kwargs, str(model)) if model else None
        usage = tr.usage_of(kwargs, response, str(model) or None)
        attrs: dict[str, Any] = {}
        theirs = tr.litellm_cost(kwargs)
        if theirs is not None:
            attrs["litellm_response_cost"] = theirs
        response_model = getattr(response, "model", None)
        if isinstance(response_model, str) and response_model and response_model != model:
            attrs["response_model"] = response_model[:200]
        content = self._content(kwargs, response)
        if kwargs.get("cache_hit") is True:
            saved: Decimal | None = None
            if usage is not None and price_model:
                saved = self.meter.price(price_model, usage).total
            span.end(
                status=SpanStatus.CACHED,
                usage=usage,
                cost=Cost(),
                saved=saved,
                attributes=attrs,
                content=content,
            )
        else:
            if usage is None:
                cost = Cost.unpriced("no usage reported")
            elif price_model:
                cost = self.meter.price(price_model, usage)
            else:
                cost = Cost.unpriced("no model name reported")
            span.end(usage=usage, cost=cost, attributes=attrs, content=content)
        self._attempt_done(attempt, None, ok=True, kwargs=kwargs)

    def failure(
        self, kwargs: Mapping[str, Any], response: Any, start_time: Any, end_time: Any
    ) -> None:
        """A call failed (``log_failure_event`` / ``async_log_failure_event``).

        A failure is not free when the provider billed it (a stream cut short
        after tokens were generated): LiteLLM then leaves the consumed usage in
        ``combined_usage_object``, which is priced here.
        """
        attempt = self._claim(kwargs, start_time, end_time)
        if attempt is None:
            return
        try:
            self._fail(attempt, kwargs)
        finally:
            self._release()

    def _fail(self, attempt: _Attempt, kwargs: Mapping[str, Any]) -> None:
        error = kwargs.get("exception")
        if not isinstance(error, BaseException):
            error = str(kwargs.get("traceback_exception") or "LiteLLM call failed")[:500]
        error_class = tr.classify_error(error)
        billed = kwargs.get("combined_usage_object")
        model = attempt.span.model
        usage = None
        if billed is not None:
            usage = tr.usage_of({"combined_usage_object": billed}, None, model)
        cost = Cost()  # a failed request is not billed ...
        if usage is not None:  # ... unless tokens were consumed before it failed
            cost = self.meter.price(self._price_name(kwargs, model), usage) if model else Cost()
        attempt.span.end(
            status=SpanStatus.ERROR,
            error=error,
            error_class=error_class,
            usage=usage,
            cost=cost,
        )
        self._attempt_done(attempt, error_class, ok=False)

    # -- internals ----------------------------------------------------------------
    def _claim(self, kwargs: Mapping[str, Any], start_time: Any, end_time: Any) -> _Attempt | None:
        """The open attempt for this call, removed so it ends exactly once."""
        cid = tr.call_id(kwargs)
        with self._lock:
            if cid is not None:
                if cid in self._done:
                    return None  # sync and async hooks both fired, or a duplicate
                self._done[cid] = None
                if len(self._done) > _DONE_MEMORY:
                    self._done.popitem(last=False)
                attempt = self._attempts.pop(cid, None)
                if attempt is not None:
                    self._busy += 1
                    return attempt
            self._busy += 1
        self._maybe_sweep()
        start_ts, end_ts = _ns(start_time), _ns(end_time)
        try:
            return self._open(kwargs, start_ns=None, start_ts=start_ts, end_ts=end_ts)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        with self._lock:
            self._busy -= 1
            self._idle.notify_all()

    def _open(
        self,
        kwargs: Mapping[str, Any],
        *,
        start_ns: int | None,
        start_ts: float | None,
        end_ts: float | None,
    ) -> _Attempt:
        meter = self.meter
        if start_ns is None and start_ts is not None and end_ts is not None and end_ts >= start_ts:
            start_ns = meter.clock() - int((end_ts - start_ts) * 1e9)
        params = _mapping(kwargs.get("litellm_params"))
        model = kwargs.get("model")
        model = model if isinstance(model, str) and model else None
        provider: Any = kwargs.get("custom_llm_provider") or params.get("custom_llm_provider")
        provider = provider if isinstance(provider, str) and provider else None
        attrs: dict[str, Any] = dict(self.attributes)
        attrs.update(tr.attribution(kwargs))
        cid = tr.call_id(kwargs)
        if cid:
            attrs["litellm_call_id"] = cid
        parent = current_span()
        call_key: str | None = None
        router = tr.router_info(kwargs)
        if router is not None:
            call_key, parent = self._router_call(router, attrs, parent, start_ns)
            attrs.update(
                model_group=router["model_group"],
                deployment=router["deployment"],
                model_id=router["model_id"],
                attempted_retries=router["attempted_retries"],
                attempted_fallbacks=router["attempted_fallbacks"],
            )
        kind = SpanKind.EMBEDDING if kwargs.get("call_type") in _EMBEDDING_CALLS else SpanKind.LLM
        span = meter.start_span(
            model or "litellm",
            kind=kind,
            parent=parent,
            attributes=attrs,
            model=model,
            provider=provider,
            start_ns=start_ns,
        )
        return _Attempt(span=span, call_key=call_key)

    def _router_call(
        self,
        router: Mapping[str, Any],
        attrs: Mapping[str, Any],
        parent: OpenSpan | None,
        start_ns: int | None,
    ) -> tuple[str | None, OpenSpan | None]:
        trace = router["trace"]
        if trace is None:
            return None, parent
        key = f"{trace}:{router['original_model_group']}"
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                span = self.meter.start_span(
                    f"litellm.router:{router['original_model_group']}",
                    kind=SpanKind.CHAIN,
                    parent=parent,
                    attributes={**attrs, "model_group": router["original_model_group"]},
                    start_ns=start_ns,
                )
                call = self._calls[key] = _Call(span=span)
            call.open_attempts += 1
            call.attempts += 1
            call.last_change = time.monotonic()
            return key, call.span

    def _attempt_done(
        self,
        attempt: _Attempt,
        error_class: str | None,
        *,
        ok: bool,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        key = attempt.call_key
        if key is None:
            return
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                return
            call.open_attempts -= 1
            call.last_change = time.monotonic()
            if not ok:
                call.last_error_class = error_class or "error"
                return
            del self._calls[key]
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

    def close_idle_calls(self, grace_s: float | None = None) -> int:
        """End Router calls whose attempts all failed and saw nothing new for ``grace_s``.

        The SDK has no hook for "the Router gave up"; the error reached the
        caller, and the logical span records it as ``error`` here.

        Returns:
            How many calls were closed.
        """
        grace = self.router_grace_s if grace_s is None else grace_s
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

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if self._calls and now - self._last_sweep > 1.0:
            self._last_sweep = now
            self.close_idle_calls()

    def _price_name(self, kwargs: Mapping[str, Any], model: str) -> str:
        """The catalog name to price ``model`` as.

        A deployment's ``base_model`` wins (an Azure deployment name is not a
        model); otherwise ``provider/model``, so the catalog can tell Gemini
        API from Vertex prices and never guesses across providers from a
        bare name (it strips the prefix itself where prices are shared).
        """
        params = _mapping(kwargs.get("litellm_params"))
        base = params.get("base_model") or _mapping(params.get("model_info")).get("base_model")
        if isinstance(base, str) and base:
            return base
        provider = kwargs.get("custom_llm_provider") or params.get("custom_llm_provider")
        if isinstance(provider, str) and provider and not model.startswith(provider + "/"):
            return f"{provider}/{model}"
        return model

    def _content(self, kwargs: Mapping[str, Any], response: Any) -> dict[str, Any] | None:
        if not self.meter.store_content:
            return None
        return {
            "messages": str(kwargs.get("messages") or kwargs.get("input") or ""),
            "response": tr._completion_text(response),  # pyright: ignore[reportPrivateUsage]
        }

    # -- waiting ------------------------------------------------------------------
    def pending(self) -> int:
        """Calls started (pre-call hook seen) and not yet finished."""
        with self._lock:
            return len(self._attempts) + self._busy

    def wait(self, timeout: float = 5.0) -> bool:
        """Block until every started call has finished; True if none is left."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._attempts or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    async def await_idle(self, timeout: float = 5.0) -> bool:
        """:meth:`wait` for async code: polls without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.002)
        return True
