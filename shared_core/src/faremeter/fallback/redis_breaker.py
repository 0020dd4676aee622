"""A circuit breaker shared by a fleet through Redis.

The same state machine as :class:`~faremeter.fallback.breaker.CircuitBreaker`
(closed → open after N failures in a window → one probe after the cooldown),
kept in Redis so every process of a fleet skips a failing model together and
exactly one process, fleet-wide, probes it. Each transition is one atomic Lua
script (one round trip); keys carry a TTL so abandoned models leave nothing
behind.

Times come from the injected ``clock`` (wall-clock seconds by default, since
processes on different hosts must agree; tolerate the fleet's clock skew in
``cooldown_s``) and are passed to the scripts, never read inside Redis, so
tests drive the breaker with a fake clock.

Redis being unreachable is faremeter's fault, not the app's: the breaker then
lets calls through (``fail_open=True``, the default) or skips the model
(``fail_open=False``), and logs the outage once per minute of clock time.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from faremeter.fallback.breaker import BreakerState

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisCircuitBreaker"]

logger = logging.getLogger("faremeter")

# KEYS[1] state hash. ARGV: now, probe_until, ttl_ms.
# Returns 1 closed (go), 2 this caller is the probe (go), 0 skip.
_ALLOW: Final = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'closed' then return 1 end
local now = tonumber(ARGV[1])
if st == 'open' then
  local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if now < open_until then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 2
end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now < probe_until then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 2
"""

# KEYS[1] state hash, KEYS[2] failure zset. ARGV: now, horizon, threshold,
# open_until, unique member, ttl_ms. Returns 1 when the breaker (re)opened.
_FAILURE: Final = """
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'open' then return 0 end
if st ~= 'half_open' then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', ARGV[4], 'probe_until', '0')
redis.call('DEL', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS[1] state hash, KEYS[2] failure zset. A successful probe closes.
_SUCCESS: Final = """
if redis.call('HGET', KEYS[1], 'state') == 'half_open' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""

_LOG_EVERY_S: Final = 60.0


def _seconds(value: float) -> str:
    # repr keeps every digit of a float; Lua's tonumber reads it back exactly.
    return repr(float(value))


class RedisCircuitBreaker:
    """Fleet-wide circuit breaker per model, in Redis.

    Args:
        redis: A ``redis.Redis`` client or a ``redis://`` URL.
        prefix: Key prefix (use one per fleet / environment).
        failure_threshold: Failures within ``window_s`` that open the breaker.
        window_s: Rolling window of counted failures.
        cooldown_s: How long an open breaker skips the model before one probe.
        probe_timeout_s: How long a probe holds its lease (default: cooldown).
        clock: Seconds, comparable across the fleet (default ``time.time``).
        fail_open: With Redis down, let calls through (``True``) or skip the model.

    Raises:
        ImportError: redis-py is not installed (``pip install 'faremeter[redis]'``).
    """

    def __init__(
        self,
        redis: Redis | str,
        *,
        prefix: str = "faremeter:breaker",
        failure_threshold: int = 5,
        window_s: float = 60.0,
        cooldown_s: float = 30.0,
        probe_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        fail_open: bool = True,
    ) -> None:
        try:
            import redis as redis_lib
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "RedisCircuitBreaker needs redis-py: pip install 'faremeter[redis]'"
            ) from exc
        if type(failure_threshold) is not int or failure_threshold < 1:
            raise ValueError(f"failure_threshold must be an int >= 1, got {failure_threshold!r}")
        for name, value in (("window_s", window_s), ("cooldown_s", cooldown_s)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if isinstance(redis, str):
            redis = redis_lib.Redis.from_url(redis)  # pyright: ignore[reportUnknownMemberType]
        self.client: Redis = redis
        self.prefix = prefix
        self.failure_threshold = failure_threshold
        self.window_s = float(window_s)
        self.cooldown_s = float(cooldown_s)
        self.probe_timeout_s = float(cooldown_s if probe_timeout_s is None else probe_timeout_s)
        self.clock = clock
        self.fail_open = fail_open
        # Keys outlive everything they must remember, then vanish on their own.
        self._ttl_ms = int((self.window_s + self.cooldown_s + self.probe_timeout_s) * 2000) + 60_000
        self._errors: tuple[type[BaseException], ...] = (redis_lib.RedisError, OSError)
        self._allow: Any = self.client.register_script(_ALLOW)
        self._failure: Any = self.client.register_script(_FAILURE)
        self._success: Any = self.client.register_script(_SUCCESS)
        self._last_log = float("-inf")

    def _keys(self, model: str) -> list[str]:
        # The hash tag keeps both keys of a model in one Redis Cluster slot.
        base = f"{self.prefix}:{{{model}}}"
        return [f"{base}:state", f"{base}:failures"]

    def _down(self, action: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            logger.warning(
                "faremeter: circuit breaker store unreachable during %s (%s); %s",
                action,
                exc,
                "letting calls through" if self.fail_open else "skipping the model",
            )

    def allow(self, model: str) -> bool:
        """Closed: yes. Open: no until the cooldown ends, then yes for one probe fleet-wide."""
        now = self.clock()
        try:
            result = self._allow(
                keys=self._keys(model)[:1],
                args=[_seconds(now), _seconds(now + self.probe_timeout_s), self._ttl_ms],
            )
        except self._errors as exc:
            self._down("allow", exc)
            return self.fail_open
        return int(result) != 0

    def record_failure(self, model: str) -> None:
        """Count a failure; open at the threshold, re-open on a failed probe."""
        now = self.clock()
        try:
            self._failure(
                keys=self._keys(model),
                args=[
                    _seconds(now),
                    _seconds(now - self.window_s),
                    self.failure_threshold,
                    _seconds(now + self.cooldown_s),
                    f"{now!r}:{uuid.uuid4().hex}",
                    self._ttl_ms,
                ],
            )
        except self._errors as exc:
            self._down("record_failure", exc)

    def record_success(self, model: str) -> None:
        """A successful probe closes the breaker for the whole fleet."""
        try:
            self._success(keys=self._keys(model))
        except self._errors as exc:
            self._down("record_success", exc)

    def state(self, model: str) -> BreakerState:
        """The stored state (``closed`` when unknown or Redis is down)."""
        try:
            raw = self.client.hget(self._keys(model)[0], "state")
        except self._errors as exc:
            self._down("state", exc)
            return BreakerState.CLOSED
        if raw is None:
            return BreakerState.CLOSED
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return BreakerState(text)

    def reset(self, model: str) -> None:
        """Forget a model's state fleet-wide."""
        try:
            self.client.delete(*self._keys(model))
        except self._errors as exc:
            self._down("reset", exc)
