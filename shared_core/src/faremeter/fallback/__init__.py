"""Fallback chains: retries, fallbacks between models, circuit breakers, health.

``FallbackChain(["gpt-4o", "gpt-4o-mini"]).call(lambda model: ...)`` tries the
candidates in order with per-error-class retries (tenacity backoff, jitter,
``Retry-After``), moves on by error class, skips models whose breaker is
open, and stops at an attempt cap and a deadline. See ``docs/fallback.md``.
:class:`RedisCircuitBreaker` (fleet-wide breakers) lives in
:mod:`faremeter.fallback.redis_breaker` and needs ``faremeter[redis]``.
"""

from __future__ import annotations

from faremeter.fallback.attempts import (
    ATTEMPTS_ATTRIBUTE,
    Attempt,
    AttemptOutcome,
    FallbackExhausted,
    attempts_of,
    describe_attempts,
)
from faremeter.fallback.breaker import Breaker, BreakerState, CircuitBreaker
from faremeter.fallback.chain import FallbackChain
from faremeter.fallback.health import HealthReport, HealthTracker
from faremeter.fallback.policy import (
    BREAKER_CLASSES,
    DEFAULT_ACTIONS,
    DEFAULT_RETRIES,
    FallbackAction,
    RetryPolicy,
)

__all__ = [
    "ATTEMPTS_ATTRIBUTE",
    "BREAKER_CLASSES",
    "DEFAULT_ACTIONS",
    "DEFAULT_RETRIES",
    "Attempt",
    "AttemptOutcome",
    "Breaker",
    "BreakerState",
    "CircuitBreaker",
    "FallbackAction",
    "FallbackChain",
    "FallbackExhausted",
    "HealthReport",
    "HealthTracker",
    "RetryPolicy",
    "attempts_of",
    "describe_attempts",
]
