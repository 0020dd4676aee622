"""`FallbackChain`: try ordered candidate models until one answers, within bounds.

For each candidate, the error of a failed attempt is classified once
(:func:`faremeter.error_classes.classify_error`) and the chain's
:class:`~faremeter.fallback.policy.RetryPolicy` decides: retry the same model
(tenacity drives the loop: exponential backoff with jitter, ``Retry-After``
honoured, injectable ``sleep``), or move on — to the next candidate, to one
whose context window is known to take the prompt, to the content-policy
alternatives, or down a tier — or stop and re-raise.

Bounds that hold even when every candidate fails: at most ``max_attempts``
real attempts, and no attempt or wait starts past ``deadline_s`` (a call
already running is not interrupted: give your client a timeout). Circuit
breakers skip models that keep failing without trying them; the health
tracker tries struggling models last.

Every attempt is a span (kind ``chain``, child of one call span) whose
attributes say its outcome and why the chain did what it did next, and the
caller's framework spans nest under the attempt that made them. When the
chain gives up, the caller gets the last provider error unchanged, with the
history attached (see :mod:`faremeter.fallback.attempts`).

Streams fall back only before the first chunk: :meth:`FallbackChain.stream`
retries and moves on while opening a stream and waiting for its first chunk;
once a chunk has reached the caller, a later error surfaces unchanged (the
caller has shown partial output; replaying it from another model would
duplicate or contradict it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from faremeter.error_classes import classify_error, retry_after
from faremeter.fallback.attempts import (
    ATTEMPTS_ATTRIBUTE,
    Attempt,
    AttemptOutcome,
    FallbackExhausted,
    describe_attempts,
)
from faremeter.fallback.breaker import BreakerState
from faremeter.fallback.policy import RetryPolicy
from faremeter.routing.candidates import Candidate
from faremeter.spans import SpanKind, SpanStatus

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from faremeter.fallback.breaker import Breaker
    from faremeter.fallback.health import HealthTracker
    from faremeter.meter import Meter
    from faremeter.open_span import OpenSpan
    from faremeter.pricing import PriceCatalog
    from faremeter.routing.decision import RouteDecision
    from faremeter.routing.router import Router

__all__ = ["FallbackChain"]

logger = logging.getLogger("faremeter")

T = TypeVar("T")

_STATUS: dict[AttemptOutcome, SpanStatus] = {
    "ok": SpanStatus.OK,
    "retry": SpanStatus.ERROR,
    "fallback": SpanStatus.FALLBACK,
    "raise": SpanStatus.ERROR,
    "cached": SpanStatus.CACHED,
    "skipped": SpanStatus.DENIED,
}


@dataclass(slots=True)
class _Open:
    """The attempt in flight (between its failure and the chain's verdict)."""

    cand: Candidate
    number: int
    try_no: int
    started: float
    span: OpenSpan | None
    error: BaseException | None = None
    error_class: str | None = None
    retry_after: float | None = None
    ended: float = 0.0


class FallbackChain:
    """Ordered candidate models with retries, fallbacks, breakers and bounds.

    Example:
        >>> chain = FallbackChain(["gpt-4o", "claude-sonnet-4-5", "gpt-4o-mini"], meter=meter)
        >>> reply = chain.call(lambda model: client.chat(model=model, messages=msgs))

    Args:
        candidates: Models in the order to try them: names, router
            :class:`~faremeter.routing.Candidate` values (tier, window), or a
            tier → models mapping **best tier first** (the try order).
        retry: Retries, backoff and next step per error class.
        breaker: Circuit breaker per model (in-process or Redis).
        health: Rolling health per model; demoted models are tried last.
        max_attempts: Real attempts per call, across all candidates and retries.
        deadline_s: No attempt or wait starts later than this after the call
            began (``None``: no deadline).
        clock: Monotonic seconds (inject a fake clock in tests).
        sleep: Sync sleep used between retries (tenacity's ``sleep``).
        asleep: Async sleep used by :meth:`acall`.
        on_attempt: Called with every :class:`Attempt` (and skip) as it is decided.
        meter: Records one call span and one span per attempt.
        name: The call span's name.
        content_policy_fallbacks: Models to try after a ``content_policy`` error.
        last_resort: Called when every candidate failed; a non-``None`` result
            (e.g. a response-cache lookup) is returned instead of the error.
        catalog: Fills in context windows of candidates given by name.
    """

    def __init__(
        self,
        candidates: Sequence[str | Candidate] | Mapping[str, Sequence[str | Candidate]],
        *,
        retry: RetryPolicy | None = None,
        breaker: Breaker | None = None,
        health: HealthTracker | None = None,
        max_attempts: int = 6,
        deadline_s: float | None = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_attempt: Callable[[Attempt], None] | None = None,
        meter: Meter | None = None,
        name: str = "fallback",
        content_policy_fallbacks: Sequence[str | Candidate] = (),
        last_resort: Callable[[], Any] | None = None,
        catalog: PriceCatalog | None = None,
    ) -> None:
        if type(max_attempts) is not int or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        if deadline_s is not None and deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0 or None, got {deadline_s!r}")
        self.catalog = catalog
        self.candidates: tuple[Candidate, ...] = self._build(candidates)
        if not self.candidates:
            raise ValueError("a fallback chain needs at least one candidate")
        self.content_policy_fallbacks = tuple(self._one(c) for c in content_policy_fallbacks)
        self.retry = retry or RetryPolicy()
        self.breaker = breaker
        self.health = health
        self.max_attempts = max_attempts
        self.deadline_s = deadline_s
        self.clock = clock
        self.sleep = sleep
        self.asleep = asleep
        self.on_attempt = on_attempt
        self.meter = meter
        self.name = name
        self.last_resort = last_resort

    @classmethod
    def from_decision(cls, decision: RouteDecision, router: Router, **kwargs: Any) -> FallbackChain:
        """A chain over a route decision's model and alternatives, with their tiers and windows."""
        kwargs.setdefault("catalog", router.catalog)
        return cls(router.candidates_for(decision), **kwargs)

    # ------------------------------------------------------------------ building

    def _one(self, item: str | Candidate, tier: str = "", rank: int = 0) -> Candidate:
        if isinstance(item, Candidate):
            return item
        if not isinstance(item, str) or not item:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(f"a candidate is a model name or a Candidate, got {item!r}")
        if self.catalog is not None:
            try:
                return Candidate.from_catalog(item, self.catalog, tier=tier, rank=rank)
            except LookupError:
                pass  # unpriced models can still be called; their window is unknown
        return Candidate(model=item, tier=tier, rank=rank)

    def _build(
        self, items: Sequence[str | Candidate] | Mapping[str, Sequence[str | Candidate]]
    ) -> tuple[Candidate, ...]:
        if isinstance(items, Mapping):
            n = len(items)
            out: list[Candidate] = []
            for i, (tier, models) in enumerate(items.items()):
                for m in models:
                    cand = self._one(m, tier, n - 1 - i)
                    if isinstance(m, Candidate):
                        cand = dataclasses.replace(cand, tier=tier, rank=n - 1 - i)
                    out.append(cand)
            return tuple(out)
        if isinstance(items, str):
            items = (items,)
        return tuple(self._one(m) for m in items)

    # ------------------------------------------------------------------- calling

    def call(
        self,
        fn: Callable[[str], T],
        *,
        input_tokens: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> T:
        """Call ``fn(model)`` down the chain until one answers.

        Args:
            fn: Makes the call with the given model name.
            input_tokens: Prompt size, when known: candidates whose window
                cannot take it are skipped, and a ``context_window`` error
                moves only to a window known to fit.
            attributes: Added to the call span (e.g. ``decision.as_attributes()``).

        Returns:
            The first successful result (or the last resort's).

        Raises:
            BaseException: The last provider error, unchanged, with the history
                in ``.faremeter_attempts``; :class:`FallbackExhausted` when no
                candidate could be tried at all.
        """
        from tenacity import Retrying

        run = _Run(self, input_tokens, attributes)
        with run.activated():
            while (cand := run.next_candidate()) is not None:
                retrying = Retrying(sleep=self.sleep, reraise=True, **run.tenacity_kwargs())
                try:
                    result = retrying(run.attempt, cand, fn)
                except BaseException as exc:
                    verdict = run.after_failure(exc)
                    if verdict == "next":
                        continue
                    if verdict == "exhausted":
                        break
                    run.finalize_error(exc)
                    raise
                run.succeeded()
                return result
            return run.exhausted()

    async def acall(
        self,
        fn: Callable[[str], Awaitable[T]],
        *,
        input_tokens: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> T:
        """:meth:`call` for coroutines: ``await chain.acall(lambda m: client.achat(model=m))``."""
        from tenacity import AsyncRetrying

        run = _Run(self, input_tokens, attributes)
        with run.activated():
            while (cand := run.next_candidate()) is not None:
                retrying = AsyncRetrying(sleep=self.asleep, reraise=True, **run.tenacity_kwargs())
                try:
                    result: T = await retrying(run.aattempt, cand, fn)  # pyright: ignore[reportUnknownVariableType]
                except BaseException as exc:
                    verdict = run.after_failure(exc)
                    if verdict == "next":
                        continue
                    if verdict == "exhausted":
                        break
                    run.finalize_error(exc)
                    raise
                run.succeeded()
                return result
            value: Any = run.exhausted(defer=True)
            if inspect.isawaitable(value):
                value = await value
            return run.deliver_last_resort(value)

    def stream(
        self,
        fn: Callable[[str], Iterable[T]],
        *,
        input_tokens: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[T]:
        """Stream from the first candidate that yields a first chunk.

        Errors while opening the stream or before its first chunk fall back
        like :meth:`call`; after the first chunk they surface unchanged.
        """

        def first(model: str) -> tuple[Iterator[T], list[T]]:
            it = iter(fn(model))
            for head in it:
                return it, [head]
            return it, []

        it, head = self.call(first, input_tokens=input_tokens, attributes=attributes)
        yield from head
        yield from it

    async def astream(
        self,
        fn: Callable[[str], AsyncIterable[T]],
        *,
        input_tokens: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[T]:
        """Async :meth:`stream`: fall back only before the first chunk."""

        async def first(model: str) -> tuple[AsyncIterator[T], list[T]]:
            it = aiter(fn(model))
            async for head in it:
                return it, [head]
            return it, []

        it, head = await self.acall(first, input_tokens=input_tokens, attributes=attributes)
        for item in head:
            yield item
        async for item in it:
            yield item

    def __repr__(self) -> str:
        return (
            f"FallbackChain({[c.model for c in self.candidates]}, max_attempts={self.max_attempts})"
        )


class _Run:
    """The state of one chain call: queue, history, bounds and spans."""

    def __init__(
        self, chain: FallbackChain, input_tokens: int | None, attributes: Mapping[str, Any] | None
    ) -> None:
        self.chain = chain
        self.policy = chain.retry
        self.input_tokens = input_tokens
        self.history: list[Attempt] = []
        self.n = 0
        self.tries: dict[str, int] = {}
        self.start = chain.clock()
        self.deadline = None if chain.deadline_s is None else self.start + chain.deadline_s
        self.stop_reason: str | None = None
        self.last_error: BaseException | None = None
        self.current: _Open | None = None
        self.winner: Candidate | None = None
        self.tried: set[str] = set()
        self.queue: list[Candidate] = self._initial_order()
        self.call_span: OpenSpan | None = None
        if chain.meter is not None:
            try:
                self.call_span = chain.meter.start_span(
                    chain.name,
                    kind=SpanKind.CHAIN,
                    attributes={
                        **(attributes or {}),
                        "fallback.candidates": ",".join(c.model for c in chain.candidates),
                    },
                )
            except Exception:  # recording must never break the call
                logger.exception("faremeter: could not start the fallback call span")
        self._backoff: Any = None

    # -------------------------------------------------------------- bookkeeping

    def _initial_order(self) -> list[Candidate]:
        health = self.chain.health
        if health is None:
            return list(self.chain.candidates)
        healthy = [c for c in self.chain.candidates if health.degraded(c.model) is None]
        demoted = [c for c in self.chain.candidates if health.degraded(c.model) is not None]
        return healthy + demoted

    def activated(self) -> _Activation:
        return _Activation(self.call_span)

    def _emit(self, attempt: Attempt) -> None:
        self.history.append(attempt)
        hook = self.chain.on_attempt
        if hook is not None:
            try:
                hook(attempt)
            except Exception:
                logger.exception("faremeter: on_attempt hook %r failed", hook)

    def _skip(self, cand: Candidate, reason: str) -> None:
        now = self.chain.clock()
        self._emit(
            Attempt(
                number=0,
                model=cand.model,
                outcome="skipped",
                reason=reason,
                started_at=now,
                ended_at=now,
            )
        )

    def next_candidate(self) -> Candidate | None:
        """The next candidate that may be tried now, recording every skip."""
        chain = self.chain
        while self.queue:
            if self.n >= chain.max_attempts:
                self.stop_reason = "max_attempts"
                return None
            if self.deadline is not None and chain.clock() >= self.deadline:
                self.stop_reason = "deadline"
                return None
            cand = self.queue.pop(0)
            if self.input_tokens is not None and not cand.fits(self.input_tokens):
                self._skip(cand, "context_window")
                continue
            if chain.breaker is not None and not self._allowed(cand.model):
                self._skip(cand, "circuit_open")
                continue
            return cand
        return None

    def _allowed(self, model: str) -> bool:
        try:
            return self.chain.breaker.allow(model)  # pyright: ignore[reportOptionalMemberAccess]
        except Exception:  # a broken breaker must not block the call
            logger.exception("faremeter: circuit breaker failed; letting the call through")
            return True

    def _start_attempt_span(self, cand: Candidate, number: int, try_no: int) -> OpenSpan | None:
        meter = self.chain.meter
        if meter is None:
            return None
        try:
            return meter.start_span(
                f"attempt:{cand.model}",
                kind=SpanKind.CHAIN,
                parent=self.call_span,
                model=cand.model,
                attributes={"attempt": number, "attempt.try": try_no},
            )
        except Exception:
            logger.exception("faremeter: could not start an attempt span")
            return None

    def _begin(self, cand: Candidate) -> _Open:
        self.n += 1
        self.tried.add(cand.model)
        try_no = self.tries.get(cand.model, 0) + 1
        self.tries[cand.model] = try_no
        span = self._start_attempt_span(cand, self.n, try_no)
        self.current = _Open(
            cand=cand, number=self.n, try_no=try_no, started=self.chain.clock(), span=span
        )
        return self.current

    def _record_outcome(self, o: _Open) -> None:
        """Tell the breaker and the health tracker, as soon as the outcome is known."""
        chain = self.chain
        cls = o.error_class
        model = o.cand.model
        unhealthy = o.error is not None and cls in self.policy.breaker_classes
        # A request error (context window, policy, budget) means the model answered.
        answered = o.error is None or (cls is not None and not unhealthy)
        if chain.breaker is not None and (unhealthy or answered):
            try:
                if unhealthy:
                    chain.breaker.record_failure(model)
                else:
                    chain.breaker.record_success(model)
            except Exception:
                logger.exception("faremeter: circuit breaker failed to record an outcome")
        if chain.health is not None and (unhealthy or answered):
            chain.health.record(model, ok=not unhealthy, latency_s=o.ended - o.started)

    def _failed(self, o: _Open, exc: BaseException) -> None:
        o.ended = self.chain.clock()
        o.error = exc
        o.error_class = classify_error(exc)
        o.retry_after = retry_after(exc) if o.error_class is not None else None
        self._record_outcome(o)

    def attempt(self, cand: Candidate, fn: Callable[[str], T]) -> T:
        o = self._begin(cand)
        token = _activate(o.span)
        try:
            result = fn(cand.model)
        except BaseException as exc:
            self._failed(o, exc)
            raise
        finally:
            _deactivate(token)
        o.ended = self.chain.clock()
        self._record_outcome(o)
        self._conclude(o, "ok")
        self.winner = cand
        return result

    async def aattempt(self, cand: Candidate, fn: Callable[[str], Awaitable[T]]) -> T:
        o = self._begin(cand)
        token = _activate(o.span)
        try:
            result = await fn(cand.model)
        except BaseException as exc:
            self._failed(o, exc)
            raise
        finally:
            _deactivate(token)
        o.ended = self.chain.clock()
        self._record_outcome(o)
        self._conclude(o, "ok")
        self.winner = cand
        return result

    def _conclude(
        self,
        o: _Open,
        outcome: AttemptOutcome,
        *,
        reason: str | None = None,
        wait_s: float | None = None,
    ) -> None:
        """Record an attempt's verdict: breaker, health, span, history."""
        chain = self.chain
        if not o.ended:
            o.ended = chain.clock()
        cls = o.error_class
        model = o.cand.model
        error_text = None if o.error is None else f"{type(o.error).__name__}: {o.error}"
        if o.span is not None:
            attrs: dict[str, Any] = {"attempt.outcome": outcome}
            if cls is not None and outcome in ("fallback", "retry", "raise"):
                attrs["fallback_reason"] = cls
            if reason is not None:
                attrs["attempt.reason"] = reason
            if wait_s is not None:
                attrs["retry_wait_s"] = round(wait_s, 6)
            try:
                o.span.end(
                    status=_STATUS[outcome],
                    error=o.error,
                    error_class=cls,
                    attributes=attrs,
                )
            except Exception:
                logger.exception("faremeter: could not end an attempt span")
        self._emit(
            Attempt(
                number=o.number,
                model=model,
                outcome=outcome,
                error_class=cls,
                error=error_text,
                reason=reason if reason is not None else cls,
                wait_s=wait_s,
                started_at=o.started,
                ended_at=o.ended,
            )
        )
        if o is self.current:
            self.current = None

    # ------------------------------------------------------ tenacity callbacks

    def tenacity_kwargs(self) -> dict[str, Any]:
        from tenacity import retry_if_exception, wait_exponential_jitter

        if self._backoff is None:
            p = self.policy
            # tenacity 9 renamed ``initial`` to ``multiplier`` (8.x only has ``initial``).
            first = (
                "multiplier"
                if "multiplier" in inspect.signature(wait_exponential_jitter).parameters
                else "initial"
            )
            self._backoff = wait_exponential_jitter(
                **{first: p.initial_backoff_s}, max=p.max_backoff_s, jitter=p.jitter_s
            )
        return {
            "retry": retry_if_exception(self._retryable),
            "stop": self._stop,
            "wait": self._wait,
            "before_sleep": self._before_sleep,
        }

    def _retryable(self, exc: BaseException) -> bool:
        o = self.current
        return (
            isinstance(exc, Exception)
            and o is not None
            and self.policy.retries_for(o.error_class) > 0
        )

    def _wait(self, rs: RetryCallState) -> float:
        o = self.current
        if o is not None and o.retry_after is not None:
            return o.retry_after
        return float(self._backoff(rs))

    def _stop(self, rs: RetryCallState) -> bool:
        o = self.current
        if o is None:
            return True
        if rs.attempt_number > self.policy.retries_for(o.error_class):
            return True
        if self.n >= self.chain.max_attempts:
            self.stop_reason = "max_attempts"
            return True
        if o.error_class in self.policy.breaker_classes and self._breaker_tripped(o.cand.model):
            return True  # this failure opened the breaker: stop retrying the model
        wait = rs.upcoming_sleep
        if o.retry_after is not None and o.retry_after > self.policy.max_retry_after_s:
            return True
        # No time left to wait for this model: the next one may still start now.
        return self.deadline is not None and self.chain.clock() + wait >= self.deadline

    def _breaker_tripped(self, model: str) -> bool:
        breaker = self.chain.breaker
        if breaker is None:
            return False
        try:
            return breaker.state(model) is not BreakerState.CLOSED
        except Exception:
            logger.exception("faremeter: circuit breaker failed to report its state")
            return False

    def _before_sleep(self, rs: RetryCallState) -> None:
        o = self.current
        if o is not None:
            self._conclude(o, "retry", wait_s=rs.upcoming_sleep)

    # ------------------------------------------------------------ after failure

    def after_failure(self, exc: BaseException) -> Literal["next", "exhausted", "raise"]:
        """Decide what follows a candidate's final failure.

        ``next``: try the next candidate. ``exhausted``: the error is worth a
        fallback but nothing is left (or a bound was hit): last resort, else
        re-raise. ``raise``: re-raise now (request error, interrupt).
        """
        o = self.current
        if o is None or o.error is not exc:
            # Not an attempt's error (tenacity or faremeter itself): surface it.
            return "raise"
        if not isinstance(exc, Exception):  # KeyboardInterrupt, CancelledError ...
            self._conclude(o, "raise", reason="interrupted")
            return "raise"
        cls = o.error_class
        action = self.policy.action_for(cls)
        if action == "raise":
            self._conclude(o, "raise")
            return "raise"
        self.last_error = exc
        if action == "larger_window":
            self._keep_larger_windows(o.cand)
        elif action == "alternative":
            self.queue = [
                c for c in self.chain.content_policy_fallbacks if c.model not in self.tried
            ]
        elif action == "down_tier":
            lower = [c for c in self.queue if c.rank < o.cand.rank]
            for c in self.queue:
                if c.rank >= o.cand.rank:
                    self._skip(c, "budget")
            self.queue = lower
        if self.stop_reason is None:
            if self.n >= self.chain.max_attempts:
                self.stop_reason = "max_attempts"
            elif self.deadline is not None and self.chain.clock() >= self.deadline:
                self.stop_reason = "deadline"
            elif not self.queue:
                self.stop_reason = "no_candidate_left"
        if self.stop_reason is not None:
            outcome: AttemptOutcome = "fallback" if self.chain.last_resort is not None else "raise"
            self._conclude(o, outcome, reason=self.stop_reason)
            return "exhausted"
        self._conclude(o, "fallback")
        return "next"

    def _keep_larger_windows(self, failed: Candidate) -> None:
        window = failed.max_input_tokens
        keep: list[Candidate] = []
        for c in self.queue:
            larger = c.max_input_tokens is not None and (
                window is None or c.max_input_tokens > window
            )
            if larger and c.can_surely_take(self.input_tokens):
                keep.append(c)
            else:
                self._skip(c, "context_window")
        self.queue = keep

    def _attach(self, exc: BaseException) -> None:
        history = tuple(self.history)
        with contextlib.suppress(AttributeError, TypeError):  # __slots__ / frozen errors
            setattr(exc, ATTEMPTS_ATTRIBUTE, history)
        with contextlib.suppress(Exception):
            exc.add_note(f"faremeter fallback ({self.n} attempt(s)):\n{describe_attempts(history)}")

    def _end_call(self, status: SpanStatus, error: BaseException | None = None) -> None:
        span = self.call_span
        if span is None:
            return
        attrs: dict[str, Any] = {
            "fallback.attempts": self.n,
            "fallback.path": ">".join(a.model for a in self.history if a.outcome != "skipped"),
        }
        skipped = [f"{a.model}:{a.reason}" for a in self.history if a.outcome == "skipped"]
        if skipped:
            attrs["fallback.skipped"] = ",".join(skipped)
        if self.winner is not None:
            attrs["fallback.model"] = self.winner.model
            attrs["fallback.used"] = self.winner.model != self.chain.candidates[0].model
        if self.stop_reason is not None:
            attrs["fallback.stopped"] = self.stop_reason
        try:
            span.end(
                status=status,
                model=self.winner.model if self.winner is not None else None,
                error=error,
                error_class=classify_error(error) if error is not None else None,
                attributes=attrs,
            )
        except Exception:
            logger.exception("faremeter: could not end the fallback call span")

    def succeeded(self) -> None:
        self._end_call(SpanStatus.OK)

    def finalize_error(self, exc: BaseException) -> None:
        if self.current is not None and self.current.error is exc:
            self._conclude(self.current, "raise")
        self._attach(exc)
        self._end_call(SpanStatus.ERROR, exc)

    def exhausted(self, *, defer: bool = False) -> Any:
        """Every candidate failed or was skipped: the last resort, else the error."""
        resort = self.chain.last_resort
        if resort is not None:
            try:
                value = resort()
            except Exception:
                logger.exception("faremeter: the last-resort callable failed")
                value = None
            if defer:
                return value
            return self.deliver_last_resort(value)
        return self.deliver_last_resort(None)

    def deliver_last_resort(self, value: Any) -> Any:
        if value is not None:
            now = self.chain.clock()
            self._emit(
                Attempt(
                    number=0,
                    model="last_resort",
                    outcome="cached",
                    reason=self.stop_reason,
                    started_at=now,
                    ended_at=now,
                )
            )
            self.winner = Candidate(model="last_resort")
            self._end_call(SpanStatus.CACHED)
            return value
        if self.last_error is not None:
            exc = self.last_error
            self._attach(exc)
            self._end_call(SpanStatus.ERROR, exc)
            raise exc
        reasons = ", ".join(f"{a.model}: {a.reason}" for a in self.history) or "no candidates"
        error = FallbackExhausted(
            f"no candidate could be tried ({self.stop_reason or reasons})", self.history
        )
        self._end_call(SpanStatus.ERROR, error)
        raise error


class _Activation:
    """Make the call span current for the duration of the call (spans nest under it)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: OpenSpan | None) -> None:
        self._span = span
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = _activate(self._span)

    def __exit__(self, *exc: object) -> None:
        _deactivate(self._token)


def _activate(span: OpenSpan | None) -> Any:
    if span is None:
        return None
    from faremeter.context import activate

    return activate(span)


def _deactivate(token: Any) -> None:
    if token is None:
        return
    from faremeter.context import deactivate

    deactivate(token)
