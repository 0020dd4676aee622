"""The call lifecycle: "a call is about to start" and "it ended", once, for every adapter.

Frameworks report a model or tool call as two callbacks keyed by their own ids
(LangChain's ``run_id``, LlamaIndex's span ids, LiteLLM's ``litellm_call_id``).
A :class:`CallTracker` holds what happens between the two, so an adapter only
translates payloads into :meth:`CallTracker.start`, :meth:`~CallTracker.end`
and :meth:`~CallTracker.fail`. Everything else lives here, the same for all:

* parents: by the framework's parent key, else the enclosing faremeter span
  of the caller's context (so frameworks nest inside each other);
* budgets: the call's worst case is reserved before it starts and settled to
  its real cost when it ends (released when it fails);
* usage honesty: reported usage that contradicts the response is estimated
  (:func:`faremeter.estimate.reconcile_usage`);
* pricing, cache hits (``cached``, $0, ``saved``), error class and redacted
  error text;
* streams: a call whose framework span closed before the stream was drained is
  *deferred* and ended by its last event, or swept after ``stream_ttl_s``;
* bounds: at most ``max_open`` calls are held; the oldest beyond are recorded
  as never finished rather than kept forever;
* flush: ``meter.flush()`` waits for calls that end on their own (LiteLLM ends
  sync calls on a logging thread) through :func:`drain_calls`.

The one-charge rule for a request two layers see is the meter's (see
:meth:`faremeter.Meter.start_span`): the call closest to the provider is
priced, enclosing model calls become $0 wrappers.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from faremeter.context import activate as activate_span
from faremeter.context import clean_attributes, current_span, deactivate
from faremeter.cost import Cost
from faremeter.default_meter import get_meter
from faremeter.error_classes import classify_error
from faremeter.errors import BudgetExceeded
from faremeter.estimate import Texts, reconcile_usage
from faremeter.prompt_prefix import PROMPT_CACHE_MIN_TOKENS, stamp_prompt_prefix
from faremeter.redact import describe_error
from faremeter.spans import SpanKind, SpanRecord, SpanStatus
from faremeter.usage import Usage

if TYPE_CHECKING:
    from faremeter.meter import Meter
    from faremeter.open_span import OpenSpan

__all__ = ["ADOPTS_ADMISSIONS", "CallTracker", "drain_calls", "log_fault", "safe_hook"]

ADOPTS_ADMISSIONS = True
"""Model calls adopt the reservation of an enclosing routed call (see ``routing.admission``)."""

logger = logging.getLogger("faremeter")

F = TypeVar("F", bound=Callable[..., Any])

_PRICED = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})
_trackers: weakref.WeakSet[CallTracker] = weakref.WeakSet()
_trackers_lock = threading.Lock()

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def log_fault(where: str, hook: str, exc: BaseException) -> None:
    """Log one of faremeter's own faults in a framework hook: first of a kind loudly, then quietly.

    For hot hooks that catch inline instead of paying :func:`safe_hook`'s wrapper.
    """
    _log_fault(where, hook, exc)


def _log_fault(where: str, hook: str, exc: BaseException) -> None:
    key = (where, f"{hook}:{type(exc).__name__}")
    with _warned_lock:
        first = key not in _warned
        _warned.add(key)
    # The first fault of a kind with its traceback; repeats at debug level, so a
    # faremeter bug costs the app's logs one traceback, not one per call.
    logger.log(
        logging.ERROR if first else logging.DEBUG,
        "faremeter: %s hook %s failed",
        where,
        hook,
        exc_info=exc,
    )


def safe_hook(
    where: str, *, allow: tuple[type[BaseException], ...] = (BudgetExceeded,)
) -> Callable[[F], F]:
    """Make a framework hook never raise into the host app (sync or async).

    Only ``allow`` exceptions — a budget denial, by default — propagate; any
    other fault is logged (once per kind with a traceback) and swallowed.

    Args:
        where: The adapter's name, for the log line.
        allow: Exceptions that must reach the framework (and the caller).
    """

    def decorate(fn: F) -> F:
        name = fn.__name__
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except allow:
                    raise
                except Exception as exc:
                    _log_fault(where, name, exc)
                    return None

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except allow:
                raise
            except Exception as exc:
                _log_fault(where, name, exc)
                return None

        return wrapper  # type: ignore[return-value]

    return decorate


class _Call:
    """What the tracker holds for one open span."""

    __slots__ = (
        "completion",
        "deadline",
        "model",
        "owned",
        "prompt",
        "reservation",
        "span",
        "token",
        "usage",
    )

    def __init__(self, span: OpenSpan, owned: bool) -> None:
        self.span = span
        self.owned = owned  # False: an alias standing for its parent's span
        self.token: contextvars.Token[OpenSpan | None] | None = None
        self.prompt: Texts = None
        self.completion: list[str] | None = None  # streamed text seen so far
        self.usage: Usage | None = None  # usage noted before the end (last stream chunk)
        self.model: str | None = None
        self.reservation: Any = None
        self.deadline = 0.0  # > 0: deferred (a stream) until then


def _text_parts(value: Texts) -> list[str]:
    if callable(value):
        value = value()
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if v]


class CallTracker:
    """Open calls of one adapter instance, keyed by the framework's ids (thread-safe).

    Args:
        meter: Where spans go; the process default meter (resolved per call)
            when ``None``.
        attributes: Default attribution of every span this tracker starts;
            attribution from the enclosing trace, the context and the call
            itself wins over it for the same key.
        where: The adapter's name, for logs.
        max_open: Bound on calls held; beyond it the oldest are recorded as
            never finished.
        stream_ttl_s: How long a deferred stream may stay undrained before it
            is recorded with what was seen.
        waits_on_flush: ``meter.flush()`` waits for this tracker's open calls
            (for frameworks that end calls on their own thread, after the
            caller already got its answer).
        drain: Called by ``meter.flush()`` with the deadline (monotonic
            seconds) before waiting: the adapter's way to push its framework's
            own pending work through (e.g. LiteLLM's logging executor).
        monotonic: Clock for deadlines; injectable for tests.
    """

    def __init__(
        self,
        meter: Meter | None = None,
        *,
        attributes: Mapping[str, Any] | None = None,
        where: str = "adapter",
        max_open: int = 10_000,
        stream_ttl_s: float = 600.0,
        waits_on_flush: bool = False,
        drain: Callable[[float], object] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._meter = meter
        self.attributes = clean_attributes(attributes or {})
        self.where = where
        self.max_open = max_open
        self.stream_ttl_s = stream_ttl_s
        self.waits_on_flush = waits_on_flush
        self.drain = drain
        self.monotonic = monotonic
        self._calls: OrderedDict[Hashable, _Call] = OrderedDict()
        self._deferred = 0
        self._recording = 0  # calls taken out of the map and not yet recorded
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        with _trackers_lock:
            _trackers.add(self)

    # -- parts ----------------------------------------------------------------------
    @property
    def meter(self) -> Meter:
        """The meter new spans go to."""
        return self._meter or get_meter()

    @meter.setter
    def meter(self, meter: Meter | None) -> None:
        self._meter = meter

    @property
    def open_calls(self) -> int:
        """Spans started and not yet ended (0 when idle: nothing accumulates)."""
        return len(self._calls)

    def span(self, key: Hashable) -> OpenSpan | None:
        """The open span registered under ``key`` (an alias resolves to its parent's)."""
        call = self._calls.get(key)
        return call.span if call is not None else None

    def __contains__(self, key: object) -> bool:
        return key in self._calls

    # -- start ------------------------------------------------------------------------
    def start(
        self,
        key: Hashable,
        *,
        name: str,
        kind: SpanKind = SpanKind.LLM,
        parent_key: Hashable | None = None,
        parent: OpenSpan | None = None,
        model: str | None = None,
        provider: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tags: tuple[str, ...] = (),
        prompt: Texts = None,
        max_tokens: int | None = None,
        start_ns: int | None = None,
        activate: bool = False,
        reserve: Decimal | None = None,
        enforce: bool = True,
    ) -> OpenSpan:
        """A call (or a chain/agent/tool step) is about to start.

        Its parent is the span registered under ``parent_key``, else
        ``parent``, else the caller's current span. Model calls reserve their
        estimated worst case (``prompt`` and ``max_tokens``) against the
        meter's budgets; tool calls reserve ``reserve`` when their price is
        known.

        Args:
            key: The framework's id of the call (run id, span id, call id).
            name: The span's name.
            kind: llm, embedding, tool, chain, agent or retrieval.
            parent_key: The framework's id of the parent, if registered here.
            parent: An explicit parent span (else the caller's current span).
            model: The model requested.
            provider: The provider, when known.
            attributes: Attribution of this call (wins over inherited keys).
            tags: Free-form labels.
            prompt: Prompt texts (or a callable producing them), for estimates
                and redaction; read only when needed.
            max_tokens: The call's output cap, bounding its budget reservation.
            start_ns: Start time; defaults to now.
            activate: Make the span the caller's current span until it ends.
            reserve: A tool's known price to reserve.
            enforce: ``False`` for frameworks that cannot stop a call from a
                callback (LlamaIndex swallows handler exceptions): a refused
                reservation then marks the span ``budget_exceeded`` and the call
                is recorded and priced as it runs, instead of a ``denied`` span
                for a call that happened anyway.

        Raises:
            BudgetExceeded: A ``deny`` budget would be crossed (with
                ``enforce``). The span is recorded as ``denied``; the adapter
                lets the exception reach the caller wherever its framework allows.
        """
        if parent_key is not None:
            found = self._calls.get(parent_key)
            if found is not None:
                parent = found.span
        if parent is None:
            parent = current_span()
        meter = self._meter
        if meter is None:
            meter = parent.meter if parent is not None else get_meter()
        # The parent is resolved: open directly (start_span would look it up again).
        span = meter._open(  # pyright: ignore[reportPrivateUsage]
            name, kind, parent, False, attributes, model, provider, tags, start_ns
        )
        if self.attributes:
            for k, v in self.attributes.items():
                span.attributes.setdefault(k, v)
        if parent is None:
            span.trace.root = span  # a fresh trace: this span is its root
        call = _Call(span, True)
        call.prompt = prompt
        if meter.budgets is not None and (kind in _PRICED or kind is SpanKind.TOOL):
            amount = reserve
            if kind in _PRICED and amount is None:
                amount = self._estimate(meter, model, prompt, max_tokens)
            elif amount is None:
                # A tool reserves only a price known before it runs (per call);
                # tools nobody priced are free to faremeter, not "unpriced".
                amount = meter.catalog.tool_cost(name).total
            if amount is not None or kind in _PRICED:
                call.reservation = self._reserve(meter, span, amount, enforce)
        if activate:
            call.token = activate_span(span)
        calls = self._calls
        calls[key] = call  # a single dict operation: atomic, no lock on the hot path
        if len(calls) > self.max_open:
            evicted: list[_Call] = []
            with self._lock:
                while len(calls) > self.max_open:
                    evicted.append(calls.popitem(last=False)[1])
            for stale in evicted:
                self._abandon(stale)
        return span

    @staticmethod
    def _reserve(meter: Meter, span: OpenSpan, amount: Decimal | None, enforce: bool) -> Any:
        if span.kind in _PRICED:
            # A routed model already reserved this request before routing it:
            # adopt that reservation instead of reserving the same money twice.
            from faremeter.routing.admission import take_admission

            adopted = take_admission()
            if adopted is not None:
                return adopted
        try:
            return meter.reserve_call(span, amount)
        except BudgetExceeded as exc:
            if not enforce:
                # The framework runs the call anyway: mark it, and commit its
                # real cost when it ends so the budget still sees the money.
                span.attributes["budget_exceeded"] = exc.budget or True
                return meter.unreserved_call(span)
            span.end(status=SpanStatus.DENIED, error=exc, error_class="budget", cost=Cost())
            raise

    @staticmethod
    def _estimate(
        meter: Meter, model: str | None, prompt: Texts, max_tokens: int | None
    ) -> Decimal | None:
        if not model:
            return None
        try:
            from faremeter.budgets.estimate import estimate_call_cost

            return estimate_call_cost(meter.catalog, model, _text_parts(prompt), max_tokens)
        except Exception:  # unpriced: the budget's unpriced policy decides
            logger.debug("faremeter: estimating %s failed", model, exc_info=True)
            return None

    def alias(self, key: Hashable, parent_key: Hashable | None) -> None:
        """Register ``key`` as standing for its parent's span (a collapsed step).

        Children of ``key`` then nest under that span; ending ``key`` records
        nothing.
        """
        parent = self._calls.get(parent_key) if parent_key is not None else None
        if parent is not None:
            self._calls[key] = _Call(parent.span, False)

    # -- progress ---------------------------------------------------------------------
    def note(
        self,
        key: Hashable,
        *,
        usage: Usage | None = None,
        text: str | None = None,
        model: str | None = None,
    ) -> None:
        """Remember what a stream showed so far (its usage chunk, text, answering model)."""
        call = self._calls.get(key)
        if call is None or not call.owned:
            return
        if usage is not None:
            call.usage = usage
        if text:
            if call.completion is None:
                call.completion = [text]
            else:
                call.completion.append(text)
        if model:
            call.model = model

    def leave_context(self, key: Hashable) -> None:
        """Stop being the current span (started with ``activate=True``) without ending.

        For frameworks whose call returns before its end is reported (LiteLLM
        logs on a thread): the span is current only while the request runs.
        """
        call = self._calls.get(key)
        if call is not None and call.token is not None:
            token, call.token = call.token, None
            deactivate(token)

    def defer(self, key: Hashable) -> None:
        """The framework's span closed while its stream is still open: wait for the end."""
        call = self._calls.get(key)
        if call is None or not call.owned or call.deadline:
            return
        if call.token is not None:
            deactivate(call.token)
            call.token = None
        with self._lock:
            call.deadline = self.monotonic() + self.stream_ttl_s
            self._deferred += 1
        self.sweep()

    def deferred(self, key: Hashable) -> bool:
        """Whether the call under ``key`` waits for its stream to end."""
        call = self._calls.get(key)
        return call is not None and call.deadline > 0

    # -- end ---------------------------------------------------------------------------
    def _pop(self, key: Hashable) -> _Call | None:
        """Take ``key``'s call out; a caller that gets one must call :meth:`_recorded`."""
        if self.waits_on_flush:
            # Flush must never see a call that is neither open nor counted as recording.
            with self._lock:
                call = self._calls.pop(key, None)
                if call is not None and call.owned:
                    self._recording += 1
        else:
            call = self._calls.pop(key, None)  # atomic; nothing waits on this tracker
        if call is None:
            return None
        if call.deadline:
            with self._lock:
                self._deferred -= 1
        if not call.owned:
            return None
        if call.token is not None:
            deactivate(call.token)
            call.token = None
        return call

    def _recorded(self) -> None:
        if self.waits_on_flush:
            with self._lock:
                self._recording -= 1
                self._idle.notify_all()

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` without recording anything (an alias, or a run never started)."""
        self._pop(key)

    def end(
        self,
        key: Hashable,
        *,
        usage: Usage | None = None,
        completion: Texts = None,
        cached: bool = False,
        model: str | None = None,
        price_as: str | None = None,
        provider: str | None = None,
        cost: Cost | None = None,
        saved: Decimal | None = None,
        status: SpanStatus | None = None,
        attributes: Mapping[str, Any] | None = None,
        content: Mapping[str, Any] | None = None,
        end_ns: int | None = None,
    ) -> SpanRecord | None:
        """The call ended: price it (unless ``cost`` is given) and record it.

        Args:
            key: The framework's id of the call.
            usage: Reported usage, if any (checked against the texts).
            completion: The generated text (or pieces), for usage honesty.
            cached: A cache hit: recorded ``cached`` at $0 with ``saved`` = what
                the call would have cost.
            model: The model that answered (e.g. a resolved snapshot name).
            price_as: The catalog name to price by, when it differs from the
                model shown (an Azure deployment's base model).
            provider: The provider, if learned at the end.
            cost: A cost known by other means (a tool's own report).
            saved: What a hit saved, when the caller knows it better.
            status: Override the status (e.g. ``fallback`` for a routed call).
            attributes: Attribution learned at the end.
            content: Prompt/response to store (only if the meter stores content);
                built from ``prompt`` and ``completion`` when omitted.
            end_ns: End time; defaults to now.

        Returns:
            The record, or ``None`` if nothing was open under ``key``.
        """
        call = self._pop(key)
        if call is None:
            return None
        try:
            return self._record_call(
                call,
                usage,
                completion,
                cached,
                model,
                price_as,
                provider,
                cost,
                saved,
                status,
                attributes,
                content,
                end_ns,
            )
        finally:
            if self.waits_on_flush:
                self._recorded()

    def _record_call(
        self,
        call: _Call,
        usage: Usage | None,
        completion: Texts,
        cached: bool,
        model: str | None,
        price_as: str | None,
        provider: str | None,
        cost: Cost | None,
        saved: Decimal | None,
        status: SpanStatus | None,
        attributes: Mapping[str, Any] | None,
        content: Mapping[str, Any] | None,
        end_ns: int | None,
    ) -> SpanRecord | None:
        span = call.span
        meter = span.meter
        model = model or call.model or span.model
        usage = usage or call.usage
        if completion is None and call.completion is not None:
            completion = call.completion
        if span.kind is SpanKind.LLM and (
            usage is None
            or (usage.source == "reported" and not (usage.input_tokens and usage.output_tokens))
        ):
            # Only counts that may contradict the texts need checking (reconcile_usage
            # returns anything else untouched).
            usage = reconcile_usage(usage, model=model, prompt=call.prompt, completion=completion)
        if status is None:
            status = SpanStatus.CACHED if cached else SpanStatus.OK
        elif type(status) is not SpanStatus:
            status = SpanStatus(status)
        if cost is None and span.kind in _PRICED:
            name = price_as or model
            if cached:
                cost = Cost()
                if saved is None and name and usage is not None:
                    saved = meter.price(name, usage).total
            elif usage is not None:
                cost = meter.price(name, usage) if name else Cost.unpriced("no model name reported")
        if content is None and meter.store_content and span.kind in _PRICED:
            content = {
                "prompts": _text_parts(call.prompt),
                "completions": _text_parts(completion),
            }
        if usage is not None and usage.input_tokens >= PROMPT_CACHE_MIN_TOKENS and not cached:
            stamp_prompt_prefix(span.kind, span.attributes, call.prompt, usage)  # prompt_cache data
        if call.reservation is not None:
            meter.settle_call(call.reservation, cost)
        return span._end_as(  # pyright: ignore[reportPrivateUsage]
            status, usage, model, provider, cost, saved, None, None, end_ns, content, attributes
        )

    def fail(
        self,
        key: Hashable,
        error: BaseException | str,
        *,
        usage: Usage | None = None,
        model: str | None = None,
        price_as: str | None = None,
        cost: Cost | None = None,
        error_class: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        end_ns: int | None = None,
    ) -> SpanRecord | None:
        """The call failed: record an ``error`` (or ``denied``) span.

        A failed request is not billed unless tokens were consumed before it
        failed (a stream cut short): pass that ``usage`` and it is priced.
        The stored error text is the exception class and its message with
        credentials and the call's prompt removed.
        """
        call = self._pop(key)
        if call is None:
            return None
        try:
            return self._fail_call(
                call, error, usage, model, price_as, cost, error_class, attributes, end_ns
            )
        finally:
            if self.waits_on_flush:
                self._recorded()

    def _fail_call(
        self,
        call: _Call,
        error: BaseException | str,
        usage: Usage | None,
        model: str | None,
        price_as: str | None,
        cost: Cost | None,
        error_class: str | None,
        attributes: Mapping[str, Any] | None,
        end_ns: int | None,
    ) -> SpanRecord | None:
        span = call.span
        meter = span.meter
        model = model or call.model or span.model
        usage = usage or call.usage
        denied = isinstance(error, BudgetExceeded)
        if cost is None:
            name = price_as or model
            if usage is not None and name and span.kind in _PRICED:
                cost = meter.price(name, usage)
            else:
                cost = Cost()
        if cost.total:
            meter.settle_call(call.reservation, cost)
        else:
            meter.settle_call(call.reservation, None, failed=True)
        text = describe_error(
            error, prompts=_text_parts(call.prompt), keep_content=meter.store_content
        )
        return span.end(
            status=SpanStatus.DENIED if denied else SpanStatus.ERROR,
            usage=usage,
            model=model,
            cost=cost,
            error=text,
            error_class="budget" if denied else (error_class or classify_error(error)),
            attributes=attributes,
            end_ns=end_ns,
        )

    # -- bounds ----------------------------------------------------------------------
    def _abandon(self, call: _Call) -> None:
        """Record a call that will never end by itself, with what it showed."""
        if call.token is not None:
            deactivate(call.token)
            call.token = None
        if not call.owned or call.span.ended:
            return
        if call.usage is None and call.completion is None:
            meter = call.span.meter
            meter.settle_call(call.reservation, None, failed=True)
            call.span.end(
                status=SpanStatus.ERROR,
                error="call never finished (abandoned stream?)",
                cost=Cost.unpriced("never finished") if call.span.kind in _PRICED else Cost(),
                attributes={"abandoned": True},
            )
            return
        self._record_call(
            call,
            usage=None,
            completion=None,
            cached=False,
            model=None,
            price_as=None,
            provider=None,
            cost=None,
            saved=None,
            status=None,
            attributes={"abandoned": True},
            content=None,
            end_ns=None,
        )

    def sweep(self, *, everything: bool = False) -> int:
        """Record deferred streams past their deadline (all of them with ``everything``).

        Returns:
            How many calls were recorded.
        """
        if not self._deferred and not everything:
            return 0
        now = self.monotonic()
        with self._lock:
            due = [
                (k, c)
                for k, c in self._calls.items()
                if (everything and c.owned) or (c.deadline and c.deadline <= now)
            ]
            for k, c in due:
                del self._calls[k]
                if c.deadline:
                    self._deferred -= 1
            if due:
                self._idle.notify_all()
        for _, call in due:
            self._abandon(call)
        return len(due)

    # -- flush ------------------------------------------------------------------------
    def in_flight(self) -> int:
        """Calls ``meter.flush()`` waits for (open, not deferred streams) — 0 unless waited on."""
        if not self.waits_on_flush:
            return 0
        with self._lock:
            return sum(1 for c in self._calls.values() if c.owned and not c.deadline)

    def wait_idle(self, deadline: float) -> bool:
        """Block until no call :meth:`in_flight` is left, or ``deadline`` (monotonic) passes."""
        if self.drain is not None:
            try:
                self.drain(deadline)
            except Exception as exc:  # an adapter's drain must not break flush
                _log_fault(self.where, "drain", exc)
        if not self.waits_on_flush:
            return True
        with self._idle:
            while self._recording > 0 or any(
                c.owned and not c.deadline for c in self._calls.values()
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Record everything still open (streams with what they showed) and forget it."""
        self.sweep(everything=True)
        with self._lock:
            self._calls.clear()
            self._deferred = 0
        with _trackers_lock:
            _trackers.discard(self)


def drain_calls(meter: Meter, deadline: float) -> bool:
    """Wait for every tracker's self-ending calls (``meter.flush()`` calls this).

    Returns:
        True when none is left in flight by ``deadline``.
    """
    with _trackers_lock:
        trackers = list(_trackers)
    ok = True
    for tracker in trackers:
        if tracker._meter is not None and tracker._meter is not meter:  # pyright: ignore[reportPrivateUsage]
            continue
        if not tracker.wait_idle(deadline):
            ok = False
    return ok
