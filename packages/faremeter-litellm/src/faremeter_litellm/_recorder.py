"""LiteLLM hook payloads → core call-lifecycle calls.

LiteLLM fires ``log_pre_api_call`` inline, in the caller's context, but its
success/failure hooks later, on a logging thread (sync) or a logging-worker
task (async), where the caller's context is often gone (a sync cache hit is
logged from an executor with an empty context). So:

* :meth:`Recorder.setup` runs where LiteLLM builds its logging object for a
  call (``function_setup``, for every SDK call, cache hits and custom
  providers included) and remembers the caller's span and attribution by
  ``litellm_call_id``; ``meter.flush()`` then knows the call is in flight;
* the span is started at ``log_pre_api_call`` (or, for a call that never
  fires it, at its end) under that remembered caller;
* whichever final hook arrives ends it through the core's
  :class:`~faremeter.calls.CallTracker`, which prices, estimates, classifies
  and redacts.

Router attempts share a ``litellm_trace_id``: the first attempt opens a
logical call span and every attempt (retry or fallback) becomes its child. A
call whose attempts all failed has no "final" hook in the SDK, so it is closed
by :meth:`Recorder.close_idle_calls` after ``router_grace_s`` without a new
attempt (and by every flush).

No LiteLLM import here: the recorder is driven by plain dicts, which keeps it
fuzzable and cheap to import.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faremeter.calls import CallTracker
from faremeter.context import current_attributes, current_span
from faremeter.meter import Meter
from faremeter.open_span import OpenSpan
from faremeter.spans import SpanKind
from faremeter_litellm import _translate as tr
from faremeter_litellm._router_calls import RouterCalls

__all__ = ["Recorder"]

_EMBEDDING_CALLS = frozenset({"embedding", "aembedding"})
_MEMORY = 50_000  # call ids remembered (callers, finished calls)


@dataclass(slots=True, frozen=True)
class _Caller:
    span: OpenSpan | None
    attributes: Mapping[str, Any]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}  # pyright: ignore[reportUnknownVariableType]


def _seconds(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    if len(store) > _MEMORY:
        store.popitem(last=False)


class Recorder:
    """Turns LiteLLM hook payloads into faremeter spans (thread-safe).

    Args:
        meter: Where to record; ``None`` means :func:`faremeter.get_meter` at use.
        attributes: Attribution stamped on every span this logger records.
        max_open: Bound on calls started but never finished (an abandoned
            stream); the oldest are recorded as never finished beyond it.
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
        self.calls = CallTracker(
            meter,
            attributes=attributes,
            where="litellm",
            max_open=max_open,
            waits_on_flush=True,
            drain=self._drain,
        )
        self.router_calls = RouterCalls(lambda: self.meter, router_grace_s)
        self._callers: OrderedDict[str, _Caller] = OrderedDict()
        self._expected: OrderedDict[str, float] = OrderedDict()  # set up, not yet ended
        self._done: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()
        # True while this recorder sees every call LiteLLM sets up (instrument()):
        # a final hook for a call it never saw set up belongs to a call made
        # before it was installed (another meter's), and is not recorded here.
        self.watching = False

    @property
    def router_grace_s(self) -> float:
        """How long a Router call whose attempts all failed waits for another attempt."""
        return self.router_calls.grace_s

    @router_grace_s.setter
    def router_grace_s(self, value: float) -> None:
        self.router_calls.grace_s = value

    @property
    def meter(self) -> Meter:
        """The meter spans go to."""
        return self.calls.meter

    @property
    def attributes(self) -> Mapping[str, Any]:
        """Attribution stamped on every span."""
        return self.calls.attributes

    # -- hooks ------------------------------------------------------------------
    def setup(self, call_id: str | None, *, expect: bool = True) -> None:
        """LiteLLM is setting up a call in the caller's context: remember the caller.

        ``expect``: ``meter.flush()`` should wait for this call's log (not for
        a stream, which ends when its consumer drains it).
        """
        if not call_id:
            return
        caller = _Caller(current_span(), current_attributes())
        with self._lock:
            _remember(self._callers, call_id, caller)
            if expect:
                _remember(self._expected, call_id, time.monotonic())

    def start(self, kwargs: Mapping[str, Any]) -> None:
        """A call is about to reach the provider (``log_pre_api_call``)."""
        cid = tr.call_id(kwargs)
        if cid is None or cid in self.calls:
            return
        with self._lock:
            if cid in self._done:
                return
        # Not made the current span: LiteLLM does not call log_post_api_call on
        # every path (mock responses, some providers), and a span left current in
        # the caller's context would parent the caller's next calls until
        # LiteLLM's logging thread ends it.
        self._open(cid, kwargs, None)

    def request_done(self, kwargs: Mapping[str, Any]) -> None:
        """The provider answered (``log_post_api_call``): stop being the current span."""
        cid = tr.call_id(kwargs)
        if cid is not None:
            self.calls.leave_context(cid)

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
        cid = self._claim(kwargs, start_time, end_time)
        if cid is None:
            return
        try:
            self._succeed(cid, kwargs, response)
        finally:
            self._logged(cid)

    def _logged(self, cid: str) -> None:
        with self._lock:
            self._expected.pop(cid, None)

    def _succeed(self, cid: str, kwargs: Mapping[str, Any], response: Any) -> None:
        span = self.calls.span(cid)
        model = span.model if span is not None else None
        model = model or str(tr.metadata(kwargs).get("deployment") or "") or None
        attrs: dict[str, Any] = {}
        theirs = tr.litellm_cost(kwargs)
        if theirs is not None:
            attrs["litellm_response_cost"] = theirs
        response_model = getattr(response, "model", None)
        if isinstance(response_model, str) and response_model and response_model != model:
            attrs["response_model"] = response_model[:200]
        self.calls.end(
            cid,
            usage=tr.reported_usage(kwargs, response),
            completion=tr.completion_text(response),
            cached=kwargs.get("cache_hit") is True,
            price_as=self._price_name(kwargs, model) if model else None,
            attributes=attrs,
        )
        self._attempt_done(cid, None, ok=True, kwargs=kwargs)

    def failure(
        self, kwargs: Mapping[str, Any], response: Any, start_time: Any, end_time: Any
    ) -> None:
        """A call failed (``log_failure_event`` / ``async_log_failure_event``).

        A failure is not free when the provider billed it (a stream cut short
        after tokens were generated): LiteLLM then leaves the consumed usage in
        ``combined_usage_object``, which is priced.
        """
        cid = self._claim(kwargs, start_time, end_time)
        if cid is None:
            return
        try:
            self._fail(cid, kwargs)
        finally:
            self._logged(cid)

    def _fail(self, cid: str, kwargs: Mapping[str, Any]) -> None:
        error = kwargs.get("exception")
        if not isinstance(error, BaseException):
            error = str(kwargs.get("traceback_exception") or "LiteLLM call failed")
        billed = kwargs.get("combined_usage_object")
        usage = tr.reported_usage({"combined_usage_object": billed}, None) if billed else None
        span = self.calls.span(cid)
        model = span.model if span is not None else None
        record = self.calls.fail(
            cid, error, usage=usage, price_as=self._price_name(kwargs, model) if model else None
        )
        self._attempt_done(cid, record.error_class if record else None, ok=False)

    # -- internals ----------------------------------------------------------------
    def _claim(self, kwargs: Mapping[str, Any], start_time: Any, end_time: Any) -> str | None:
        """The open call for this hook (started now if it never was), or None if ended."""
        cid = tr.call_id(kwargs)
        if cid is None:
            cid = f"anonymous-{id(kwargs)}-{time.monotonic_ns()}"
        with self._lock:
            if cid in self._done:
                return None  # sync and async hooks both fired, or a duplicate
            if self.watching and cid not in self._callers and cid not in self.calls:
                # LiteLLM's logging worker delivering a call made before this
                # logger was installed (e.g. under a previous meter): not ours.
                return None
            _remember(self._done, cid, None)
        self._maybe_sweep()
        if cid not in self.calls:
            start_ns = None
            start_s, end_s = _seconds(start_time), _seconds(end_time)
            if start_s is not None and end_s is not None and end_s >= start_s:
                start_ns = self.meter.clock() - int((end_s - start_s) * 1e9)
            self._open(cid, kwargs, start_ns)
        return cid

    def _open(
        self, cid: str, kwargs: Mapping[str, Any], start_ns: int | None, activate: bool = False
    ) -> None:
        params = _mapping(kwargs.get("litellm_params"))
        model = kwargs.get("model")
        model = model if isinstance(model, str) and model else None
        provider: Any = kwargs.get("custom_llm_provider") or params.get("custom_llm_provider")
        with self._lock:
            caller = self._callers.pop(cid, None)
        parent = caller.span if caller is not None else current_span()
        attrs: dict[str, Any] = dict(caller.attributes) if caller is not None else {}
        attrs.update(tr.attribution(kwargs))
        attrs["litellm_call_id"] = cid
        router = tr.router_info(kwargs)
        if router is not None:
            parent = self.router_calls.attempt(cid, router, attrs, parent, start_ns)
            attrs.update(
                model_group=router["model_group"],
                deployment=router["deployment"],
                model_id=router["model_id"],
                attempted_retries=router["attempted_retries"],
                attempted_fallbacks=router["attempted_fallbacks"],
            )
        kind = SpanKind.EMBEDDING if kwargs.get("call_type") in _EMBEDDING_CALLS else SpanKind.LLM
        optional = _mapping(kwargs.get("optional_params"))
        max_tokens = optional.get("max_tokens") or optional.get("max_completion_tokens")
        self.calls.start(
            cid,
            name=model or "litellm",
            kind=kind,
            parent=parent,
            model=model,
            provider=provider if isinstance(provider, str) and provider else None,
            attributes=attrs,
            prompt=tr.prompt_texts(kwargs.get("messages") or kwargs.get("input")),
            max_tokens=max_tokens if type(max_tokens) is int else None,
            start_ns=start_ns,
            activate=activate,
        )

    def close_idle_calls(self, grace_s: float | None = None) -> int:
        """End Router calls whose attempts all failed and saw nothing new for ``grace_s``.

        Returns:
            How many calls were closed.
        """
        return self.router_calls.close_idle(grace_s)

    def _attempt_done(
        self,
        cid: str,
        error_class: str | None,
        *,
        ok: bool,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.router_calls.attempt_done(cid, error_class, ok=ok, kwargs=kwargs)

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if self.router_calls and now - self._last_sweep > 1.0:
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

    # -- waiting ------------------------------------------------------------------
    def pending(self) -> int:
        """Calls set up or started and not yet finished."""
        with self._lock:
            expected = len(self._expected)
        return max(expected, self.calls.in_flight())

    def _drain(self, deadline: float) -> None:
        """Wait (until ``deadline``) for calls LiteLLM set up but has not logged yet.

        Covers calls that never fire ``log_pre_api_call`` (cache hits, custom
        providers): the tracker cannot see them, this does.
        """
        while True:
            with self._lock:
                now = time.monotonic()
                # A call set up long ago and never logged (LiteLLM dropped the
                # log task, or the call raised before logging): stop waiting.
                while self._expected and next(iter(self._expected.values())) < now - 60:
                    self._expected.popitem(last=False)
                if not self._expected:
                    break
            if now >= deadline:
                return
            time.sleep(0.002)
        self.close_idle_calls(0)

    def wait(self, timeout: float = 5.0) -> bool:
        """Block until every set-up or started call has finished; True if none is left."""
        deadline = time.monotonic() + timeout
        self._drain(deadline)
        return self.calls.wait_idle(deadline) and not self._expected
