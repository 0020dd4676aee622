"""Fallback tiers offline: retries with Retry-After, a dead primary, a circuit breaker.

Run: uv run python docs/examples/fallback_chain.py   (offline: a fake provider)
"""

from __future__ import annotations

import faremeter
from faremeter.fallback import CircuitBreaker, FallbackChain, RetryPolicy, attempts_of


class RateLimitError(Exception):
    """Shaped like the SDKs' 429: faremeter classifies it by name and reads Retry-After."""

    status_code = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__("rate limited")
        self.headers = {"retry-after": str(retry_after)}


class InternalServerError(Exception):
    status_code = 500


class FakeProvider:
    def __init__(self) -> None:
        self.rate_limits = {"gpt-4o": 2}  # two 429s, then it answers
        self.down: set[str] = set()

    def chat(self, model: str) -> str:
        if model in self.down:
            raise InternalServerError(f"{model} is down")
        if self.rate_limits.get(model, 0) > 0:
            self.rate_limits[model] -= 1
            raise RateLimitError(retry_after=1.5)
        return f"answer from {model}"


class DemoClock:
    """Waits are recorded instead of slept, so the demo runs instantly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        print(f"  (waiting {seconds}s)")
        self.now += seconds


meter = faremeter.Meter(ledger="memory")
clock = DemoClock()
provider = FakeProvider()
breaker = CircuitBreaker(failure_threshold=3, cooldown_s=30, clock=clock)
chain = FallbackChain(
    {"standard": ["gpt-4o", "claude-sonnet-4-5"], "economy": ["gpt-4o-mini"]},
    retry=RetryPolicy(jitter_s=0),
    breaker=breaker,
    max_attempts=5,
    deadline_s=60,
    meter=meter,
    clock=clock,
    sleep=clock.sleep,
)

print("1. rate limited twice, then it answers:")
with meter.trace("task-1") as t:
    print("  ", chain.call(provider.chat))
for depth, node in t.tree().walk():
    span = node.span
    outcome = span.attributes.get("attempt.outcome", "")
    print(f"   {'  ' * depth}{span.name:22} {span.status.value:6} {outcome}")

print("2. gpt-4o down for good: the chain falls to the next candidate")
provider.down.add("gpt-4o")
for _ in range(2):
    print("  ", chain.call(provider.chat))
print("   breaker for gpt-4o:", breaker.state("gpt-4o").value)
print("3. while open, gpt-4o is skipped without being tried:")
print("  ", chain.call(provider.chat))

print("4. everything down: the last error, with the attempt history attached")
provider.down.update({"claude-sonnet-4-5", "gpt-4o-mini"})
try:
    chain.call(provider.chat)
except InternalServerError as error:
    for attempt in attempts_of(error):
        print(f"   {attempt.model:18} {attempt.outcome:8} {attempt.reason}")
