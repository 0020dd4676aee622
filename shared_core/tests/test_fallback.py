"""FallbackChain: retries, fallbacks by error class, breakers, health, bounds, spans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from faremeter.errors import BudgetExceeded
from faremeter.fallback import (
    Attempt,
    BreakerState,
    CircuitBreaker,
    FallbackChain,
    FallbackExhausted,
    HealthTracker,
    RetryPolicy,
    attempts_of,
)
from faremeter.pricing import ModelPrice, PriceCatalog
from faremeter.routing import Router, RouteRequest
from faremeter.spans import SpanKind, SpanStatus
from faremeter.testing import make_test_meter, recorded_spans

# --------------------------------------------------------------- test doubles


class FakeTime:
    """A monotonic clock that only moves when the chain sleeps (or a call takes time)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


# Provider-shaped errors: classified by class name and status, like the SDKs'.
class RateLimitError(Exception):
    status_code = 429

    def __init__(self, message: str = "rate limited", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.headers = {} if retry_after is None else {"retry-after": str(retry_after)}


class InternalServerError(Exception):
    status_code = 500


class ContextWindowExceededError(Exception):
    pass


class ContentPolicyViolationError(Exception):
    pass


class BadRequestError(Exception):
    status_code = 400


class Provider:
    """Scripted models: each model raises its queued errors, then answers."""

    def __init__(self, time: FakeTime | None = None, latency: float = 0.0) -> None:
        self.script: dict[str, list[BaseException | None]] = {}
        self.down: dict[str, Callable[[], BaseException]] = {}
        self.calls: list[str] = []
        self.time = time
        self.latency = latency

    def __call__(self, model: str) -> str:
        self.calls.append(model)
        if self.time is not None:
            self.time.now += self.latency
        if model in self.down:
            raise self.down[model]()
        queue = self.script.get(model, [])
        if queue:
            error = queue.pop(0)
            if error is not None:
                raise error
        return f"answer from {model}"

    async def acall(self, model: str) -> str:
        return self(model)


def chain_for(models: Any, t: FakeTime, **kw: Any) -> FallbackChain:
    kw.setdefault("retry", RetryPolicy(jitter_s=0.0, initial_backoff_s=1.0))
    return FallbackChain(models, clock=t.clock, sleep=t.sleep, asleep=t.asleep, **kw)


# ------------------------------------------------------------------ retries


def test_rate_limit_twice_then_success_one_call_span_three_attempt_spans() -> None:
    t = FakeTime()
    meter = make_test_meter()
    p = Provider()
    p.script["gpt-4o"] = [RateLimitError(retry_after=2), RateLimitError(retry_after=3)]
    seen: list[Attempt] = []
    chain = chain_for(["gpt-4o", "gpt-4o-mini"], t, meter=meter, on_attempt=seen.append)

    with meter.trace("task"):
        assert chain.call(p) == "answer from gpt-4o"

    assert p.calls == ["gpt-4o"] * 3
    assert t.sleeps == [2.0, 3.0]  # Retry-After honoured, not the 1s/2s backoff
    assert [a.outcome for a in seen] == ["retry", "retry", "ok"]
    assert [a.wait_s for a in seen] == [2.0, 3.0, None]
    spans = recorded_spans(meter)
    (call,) = [s for s in spans if s.name == "fallback"]
    attempts = [s for s in spans if s.name.startswith("attempt:")]
    assert len(attempts) == 3
    assert all(a.parent_span_id == call.span_id for a in attempts)
    assert [a.status for a in attempts] == [SpanStatus.ERROR, SpanStatus.ERROR, SpanStatus.OK]
    assert [a.attributes["attempt"] for a in attempts] == [1, 2, 3]
    assert [a.attributes["attempt.outcome"] for a in attempts] == ["retry", "retry", "ok"]
    assert attempts[0].attributes["fallback_reason"] == "rate_limit"
    assert attempts[0].attributes["retry_wait_s"] == 2.0
    assert attempts[0].error_class == "rate_limit"
    assert call.status is SpanStatus.OK and call.kind is SpanKind.CHAIN
    assert call.attributes["fallback.attempts"] == 3
    assert call.attributes["fallback.model"] == "gpt-4o"
    assert call.attributes["fallback.used"] is False


def test_exponential_backoff_without_retry_after() -> None:
    t = FakeTime()
    p = Provider()
    p.script["a"] = [InternalServerError("boom"), InternalServerError("boom")]
    chain = chain_for(["a"], t)
    assert chain.call(p) == "answer from a"
    assert t.sleeps == [1.0, 2.0]


def test_jitter_stays_within_bounds() -> None:
    t = FakeTime()
    p = Provider()
    p.script["a"] = [InternalServerError(), InternalServerError()]
    chain = chain_for(["a"], t, retry=RetryPolicy(initial_backoff_s=1.0, jitter_s=0.5))
    chain.call(p)
    assert 1.0 <= t.sleeps[0] <= 1.5 and 2.0 <= t.sleeps[1] <= 2.5


def test_too_long_retry_after_moves_on_instead_of_waiting() -> None:
    t = FakeTime()
    p = Provider()
    p.script["a"] = [RateLimitError(retry_after=600)]
    seen: list[Attempt] = []
    chain = chain_for(["a", "b"], t, on_attempt=seen.append)
    assert chain.call(p) == "answer from b"
    assert t.sleeps == []
    assert [(a.model, a.outcome) for a in seen] == [("a", "fallback"), ("b", "ok")]


async def test_acall_retries_with_async_sleep() -> None:
    t = FakeTime()
    meter = make_test_meter()
    p = Provider()
    p.script["a"] = [RateLimitError(retry_after=1.5), RateLimitError(retry_after=1.5)]
    chain = chain_for(["a", "b"], t, meter=meter)
    assert await chain.acall(p.acall) == "answer from a"
    assert t.sleeps == [1.5, 1.5]
    spans = recorded_spans(meter)
    assert len([s for s in spans if s.name == "fallback"]) == 1
    assert len([s for s in spans if s.name.startswith("attempt:")]) == 3


# ------------------------------------------------------- moving on by class


def test_primary_down_falls_to_next_and_breaker_opens_then_one_probe() -> None:
    t = FakeTime()
    breaker = CircuitBreaker(failure_threshold=2, window_s=60, cooldown_s=30, clock=t.clock)
    policy = RetryPolicy(retries={}, jitter_s=0.0)  # no same-model retries: count per call
    p = Provider()
    p.down["primary"] = lambda: InternalServerError("down")
    chain = chain_for(["primary", "backup"], t, breaker=breaker, retry=policy)

    assert chain.call(p) == "answer from backup"
    assert chain.call(p) == "answer from backup"
    assert p.calls == ["primary", "backup", "primary", "backup"]
    assert breaker.state("primary") is BreakerState.OPEN

    p.calls.clear()
    seen: list[Attempt] = []
    chain.on_attempt = seen.append
    for _ in range(3):
        assert chain.call(p) == "answer from backup"
    assert p.calls == ["backup"] * 3  # skipped without trying
    assert seen[0].outcome == "skipped" and seen[0].reason == "circuit_open"

    t.now += 30  # cooldown over: exactly one probe goes through
    assert breaker.allow("primary") is True
    assert breaker.allow("primary") is False  # a second caller is not a probe
    breaker.record_failure("primary")  # that probe failed: open again
    p.calls.clear()
    chain.call(p)
    assert p.calls == ["backup"]

    t.now += 30
    del p.down["primary"]  # primary recovered
    p.calls.clear()
    assert chain.call(p) == "answer from primary"  # the probe, through the chain
    assert breaker.state("primary") is BreakerState.CLOSED
    assert chain.call(p) == "answer from primary"
    assert p.calls == ["primary", "primary"]


def test_failed_probe_through_the_chain_reopens() -> None:
    t = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=t.clock)
    p = Provider()
    p.down["a"] = lambda: InternalServerError()
    chain = chain_for(["a", "b"], t, breaker=breaker, retry=RetryPolicy(retries={}))
    chain.call(p)
    assert breaker.state("a") is BreakerState.OPEN
    t.now += 10
    p.calls.clear()
    chain.call(p)
    assert p.calls == ["a", "b"]  # one probe, failed
    p.calls.clear()
    chain.call(p)
    assert p.calls == ["b"]


def test_breaker_counts_failures_in_a_rolling_window() -> None:
    t = FakeTime()
    breaker = CircuitBreaker(failure_threshold=3, window_s=10, cooldown_s=5, clock=t.clock)
    breaker.record_failure("m")
    t.now += 6
    breaker.record_failure("m")
    t.now += 6  # the first failure left the window
    breaker.record_failure("m")
    assert breaker.state("m") is BreakerState.CLOSED
    breaker.record_failure("m")
    assert breaker.state("m") is BreakerState.OPEN
    assert breaker.allow("m") is False
    breaker.record_failure("m")  # late report while open: ignored
    t.now += 5
    assert breaker.allow("m") is True
    assert breaker.state("m") is BreakerState.HALF_OPEN
    t.now += 5  # the probe never reported back: its lease expired
    assert breaker.allow("m") is True
    breaker.record_success("m")
    assert breaker.state("m") is BreakerState.CLOSED


def test_request_errors_do_not_count_towards_the_breaker() -> None:
    t = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, clock=t.clock)
    p = Provider()
    p.down["a"] = lambda: ContextWindowExceededError("too long")
    chain = chain_for(["a"], t, breaker=breaker)
    with pytest.raises(ContextWindowExceededError):
        chain.call(p)
    assert breaker.state("a") is BreakerState.CLOSED


def _window_catalog() -> PriceCatalog:
    return PriceCatalog(
        models={
            "small": ModelPrice(input_per_mtok=1, output_per_mtok=1, max_input_tokens=8_000),
            "medium": ModelPrice(input_per_mtok=2, output_per_mtok=2, max_input_tokens=32_000),
            "large": ModelPrice(input_per_mtok=3, output_per_mtok=3, max_input_tokens=200_000),
        }
    )


def test_over_long_prompt_never_goes_to_a_window_that_cannot_take_it() -> None:
    t = FakeTime()
    p = Provider()
    seen: list[Attempt] = []
    chain = chain_for(
        ["small", "medium", "large"], t, catalog=_window_catalog(), on_attempt=seen.append
    )
    assert chain.call(p, input_tokens=50_000) == "answer from large"
    assert p.calls == ["large"]
    assert [(a.model, a.outcome, a.reason) for a in seen[:2]] == [
        ("small", "skipped", "context_window"),
        ("medium", "skipped", "context_window"),
    ]


def test_context_window_error_moves_to_a_larger_known_window() -> None:
    t = FakeTime()
    p = Provider()
    p.script["medium"] = [ContextWindowExceededError("maximum context length exceeded")]
    seen: list[Attempt] = []
    chain = chain_for(
        ["medium", "small", "unknown-window", "large"],
        t,
        catalog=_window_catalog(),
        on_attempt=seen.append,
    )
    assert chain.call(p) == "answer from large"
    assert p.calls == ["medium", "large"]  # never the smaller or the unknown window
    skipped = {a.model for a in seen if a.outcome == "skipped"}
    assert skipped == {"small", "unknown-window"}


def test_content_policy_goes_to_the_configured_alternative() -> None:
    t = FakeTime()
    p = Provider()
    p.down["a"] = lambda: ContentPolicyViolationError("flagged")
    chain = chain_for(["a", "b"], t, content_policy_fallbacks=["safe-model"])
    assert chain.call(p) == "answer from safe-model"
    assert p.calls == ["a", "safe-model"]  # not "b": same policy, same refusal
    bare = chain_for(["a", "b"], t)
    with pytest.raises(ContentPolicyViolationError):
        bare.call(p)


def test_budget_moves_down_a_tier() -> None:
    t = FakeTime()
    p = Provider()
    p.down["premium-1"] = lambda: BudgetExceeded("over budget")
    tiers = {"premium": ["premium-1", "premium-2"], "standard": ["std-1"], "economy": ["eco-1"]}
    seen: list[Attempt] = []
    chain = chain_for(tiers, t, on_attempt=seen.append)
    assert chain.call(p) == "answer from std-1"
    assert p.calls == ["premium-1", "std-1"]
    assert ("premium-2", "skipped", "budget") in [(a.model, a.outcome, a.reason) for a in seen]
    p.down["std-1"] = lambda: BudgetExceeded("over budget")
    p.down["eco-1"] = lambda: BudgetExceeded("over budget")
    with pytest.raises(BudgetExceeded) as info:
        chain.call(p)
    assert [a.model for a in attempts_of(info.value) if a.number] == ["premium-1", "std-1", "eco-1"]


def test_application_errors_and_bad_requests_surface_unchanged() -> None:
    t = FakeTime()
    p = Provider()
    bug = ValueError("my parser broke")
    p.script["a"] = [bug]
    chain = chain_for(["a", "b"], t)
    with pytest.raises(ValueError) as info:
        chain.call(p)
    assert info.value is bug
    assert p.calls == ["a"]
    p.script["a"] = [BadRequestError("invalid param")]
    p.calls.clear()
    with pytest.raises(BadRequestError):
        chain.call(p)
    assert p.calls == ["a"]


# ---------------------------------------------------------------- bounds


def test_attempt_cap_holds_when_everything_fails() -> None:
    t = FakeTime()
    meter = make_test_meter()
    p = Provider()
    for m in ("a", "b", "c"):
        p.down[m] = lambda: RateLimitError(retry_after=1)
    chain = chain_for(["a", "b", "c"], t, max_attempts=4, meter=meter)
    with meter.trace("task"), pytest.raises(RateLimitError) as info:
        chain.call(p)
    assert len(p.calls) == 4
    history = attempts_of(info.value)
    assert [a.number for a in history] == [1, 2, 3, 4]
    assert history[-1].outcome == "raise" and history[-1].reason == "max_attempts"
    assert "faremeter fallback (4 attempt(s))" in "".join(info.value.__notes__)
    spans = recorded_spans(meter)
    (call,) = [s for s in spans if s.name == "fallback"]
    assert call.status is SpanStatus.ERROR and call.attributes["fallback.stopped"] == "max_attempts"
    assert len([s for s in spans if s.name.startswith("attempt:")]) == 4


def test_deadline_holds_when_everything_fails() -> None:
    t = FakeTime()
    p = Provider(time=t, latency=4.0)  # every call takes 4s of clock
    for m in ("a", "b", "c", "d"):
        p.down[m] = lambda: InternalServerError()
    chain = chain_for(["a", "b", "c", "d"], t, deadline_s=10, max_attempts=100)
    with pytest.raises(InternalServerError) as info:
        chain.call(p)
    # a: 1000-1004 fails, waits 1s, 1005-1009 fails; a 2s wait would cross
    # 1010, so b starts at once (1009); b's retry wait would cross it too and
    # the deadline has passed: stop. No attempt or wait starts past 1010.
    assert p.calls == ["a", "a", "b"]
    assert t.sleeps == [1.0]
    assert all(a.started_at < 1_010.0 for a in attempts_of(info.value) if a.number)
    assert attempts_of(info.value)[-1].reason == "deadline"


def test_breakers_all_open_raise_fallback_exhausted_with_history() -> None:
    t = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60, clock=t.clock)
    for m in ("a", "b"):
        breaker.record_failure(m)
    chain = chain_for(["a", "b"], t, breaker=breaker)
    with pytest.raises(FallbackExhausted) as info:
        chain.call(Provider())
    assert [(a.model, a.reason) for a in info.value.attempts] == [
        ("a", "circuit_open"),
        ("b", "circuit_open"),
    ]
    assert attempts_of(info.value) == info.value.attempts


def test_last_resort_answers_when_all_fail() -> None:
    t = FakeTime()
    meter = make_test_meter()
    p = Provider()
    p.down["a"] = lambda: InternalServerError()
    chain = chain_for(["a"], t, meter=meter, last_resort=lambda: "cached answer")
    with meter.trace("task"):
        assert chain.call(p) == "cached answer"
    (call,) = [s for s in recorded_spans(meter) if s.name == "fallback"]
    assert call.status is SpanStatus.CACHED
    empty = chain_for(["a"], t, last_resort=lambda: None)
    with pytest.raises(InternalServerError):
        empty.call(p)


async def test_async_last_resort() -> None:
    t = FakeTime()
    p = Provider()
    p.down["a"] = lambda: InternalServerError()

    async def lookup() -> str:
        return "cached"

    chain = chain_for(["a"], t, last_resort=lookup)
    assert await chain.acall(p.acall) == "cached"


# ------------------------------------------------------------- health


def test_health_demotes_a_struggling_model_before_its_breaker_opens() -> None:
    t = FakeTime()
    health = HealthTracker(window=10, min_samples=4, max_error_rate=0.4, max_p95_latency_s=None)
    for ok in (True, False, False, True):
        health.record("a", ok=ok, latency_s=1.0)
    assert health.degraded("a") == "error_rate 0.50 > 0.4"
    p = Provider()
    chain = chain_for(["a", "b"], t, health=health)
    assert chain.call(p) == "answer from b"
    assert p.calls == ["b"]
    report = health.report("a")
    assert report.degraded and report.samples == 4


def test_health_latency_p95() -> None:
    health = HealthTracker(window=20, min_samples=5, max_error_rate=None, max_p95_latency_s=5.0)
    for latency in (1, 1, 1, 1, 9):
        health.record("slow", ok=True, latency_s=latency)
    assert health.degraded("slow") == "p95 9s > 5s"
    assert health.report("slow").p95_latency_s == 9
    assert health.degraded("unknown") is None


def test_chain_feeds_health_latency_from_its_clock() -> None:
    t = FakeTime()
    health = HealthTracker(window=5, min_samples=1, max_error_rate=None, max_p95_latency_s=2.0)
    chain = chain_for(["a"], t, health=health)
    chain.call(Provider(time=t, latency=3.0))
    assert health.report("a").p95_latency_s == 3.0
    assert health.degraded("a") is not None


# ------------------------------------------------------------- streams


def test_stream_falls_back_only_before_the_first_chunk() -> None:
    t = FakeTime()

    def opens(model: str) -> Iterator[str]:
        if model == "a":
            raise InternalServerError("down before the first token")
        yield "x"
        yield "y"

    chain = chain_for(["a", "b"], t, retry=RetryPolicy(retries={}))
    assert list(chain.stream(opens)) == ["x", "y"]

    def breaks_midway(model: str) -> Iterator[str]:
        yield f"{model}-1"
        raise InternalServerError("dropped after the first token")

    calls: list[str] = []

    def tracked(model: str) -> Iterator[str]:
        calls.append(model)
        return breaks_midway(model)

    out: list[str] = []
    with pytest.raises(InternalServerError, match="after the first token"):
        out.extend(chain.stream(tracked))
    assert out == ["a-1"] and calls == ["a"]


async def test_astream_falls_back_before_the_first_chunk() -> None:
    t = FakeTime()

    async def opens(model: str) -> AsyncIterator[str]:
        if model == "a":
            raise RateLimitError(retry_after=100)
        yield "z"

    chain = chain_for(["a", "b"], t, retry=RetryPolicy(retries={}))
    assert [c async for c in chain.astream(opens)] == ["z"]


# ------------------------------------------------------ router integration


def test_chain_from_route_decision() -> None:
    catalog = _window_catalog()
    router = Router(
        {"economy": ["small"], "standard": ["medium"], "premium": ["large"]},
        catalog=catalog,
        complexity=False,
    )
    decision = router.route(RouteRequest(input_tokens=20_000, max_tokens=100))
    assert decision.candidates == ("medium", "large")
    t = FakeTime()
    meter = make_test_meter(catalog=catalog)
    p = Provider()
    p.down["medium"] = lambda: InternalServerError()
    chain = FallbackChain.from_decision(
        decision, router, clock=t.clock, sleep=t.sleep, meter=meter, retry=RetryPolicy(retries={})
    )
    with meter.trace("task"):
        assert chain.call(p, attributes=decision.as_attributes()) == "answer from large"
    (call,) = [s for s in recorded_spans(meter) if s.name == "fallback"]
    assert call.attributes["route.model"] == "medium"
    assert call.attributes["fallback.model"] == "large"
    assert call.attributes["fallback.used"] is True
    assert call.attributes["fallback.path"] == "medium>large"


def test_framework_spans_nest_under_the_attempt() -> None:
    t = FakeTime()
    meter = make_test_meter()

    def call(model: str) -> str:
        span = meter.start_span("llm", kind=SpanKind.LLM, model=model)
        span.end(status=SpanStatus.ERROR, error="x")
        return "ok"

    chain = chain_for(["gpt-4o"], t, meter=meter)
    with meter.trace("task"):
        chain.call(call)
    spans = {s.name: s for s in recorded_spans(meter)}
    assert spans["llm"].parent_span_id == spans["attempt:gpt-4o"].span_id


def test_hook_failure_does_not_break_the_call(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()

    def bad_hook(attempt: Attempt) -> None:
        raise RuntimeError("hook bug")

    chain = chain_for(["a"], t, on_attempt=bad_hook)
    assert chain.call(Provider()) == "answer from a"
    assert "on_attempt hook" in caplog.text


def test_validation() -> None:
    with pytest.raises(ValueError, match="at least one candidate"):
        FallbackChain([])
    with pytest.raises(ValueError, match="max_attempts"):
        FallbackChain(["a"], max_attempts=0)
    with pytest.raises(ValueError, match="deadline_s"):
        FallbackChain(["a"], deadline_s=0)
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries={"rate_limit": -1})
    with pytest.raises(ValueError, match="actions"):
        RetryPolicy(actions={"rate_limit": "pray"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="min_samples"):
        HealthTracker(window=5, min_samples=6)


def test_retries_stop_once_the_failure_opens_the_breaker() -> None:
    t = FakeTime()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30, clock=t.clock)
    p = Provider()
    p.down["a"] = lambda: InternalServerError()
    chain = chain_for(["a", "b"], t, breaker=breaker)  # server_error: 2 retries by default
    assert chain.call(p) == "answer from b"
    assert p.calls == ["a", "a", "b"]  # the second failure opened it: no third try
    assert breaker.state("a") is BreakerState.OPEN


def test_interrupts_propagate_at_once_and_close_the_spans() -> None:
    t = FakeTime()
    meter = make_test_meter()
    p = Provider()
    p.script["a"] = [KeyboardInterrupt()]
    chain = chain_for(["a", "b"], t, meter=meter)
    with meter.trace("task"), pytest.raises(KeyboardInterrupt):
        chain.call(p)
    assert p.calls == ["a"]
    spans = {s.name: s for s in recorded_spans(meter)}
    assert spans["attempt:a"].attributes["attempt.reason"] == "interrupted"
    assert spans["fallback"].status is SpanStatus.ERROR


def test_empty_stream_is_a_successful_empty_answer() -> None:
    t = FakeTime()
    chain = chain_for(["a"], t)
    assert list(chain.stream(lambda model: iter([]))) == []
