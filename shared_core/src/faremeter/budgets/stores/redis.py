"""Budget counters in Redis: a fleet of hosts shares one limit.

One Lua script per reservation reads every matching budget's counters and holds
the money against all of them or none — Redis runs a script atomically, so no
other client's reservation can interleave. One more script settles. Each is a
single round trip (``EVALSHA``; redis-py loads the script on first use). Money
is integer units (``INCRBY``), counters expire with their window (``EXPIRE``).

All keys of one call must live on one Redis node: a single instance or a
primary with replicas/Sentinel. (Redis Cluster would need every budget's keys
in one hash slot; not supported.)

redis-py is an optional dependency: ``pip install 'faremeter[redis]'``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from faremeter.budgets.stores.base import Check, ReserveResult, StoreUnavailable

__all__ = ["RESERVE_LUA", "SETTLE_LUA", "RedisBudgetStore"]

RESERVE_LUA = """
-- KEYS, per check: reserved_key, spent_key_1 .. spent_key_n
-- ARGV: amount, n_checks, then per check: n_spent, limit (-1: warn only), ttl_s
local amount = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {-1}
local k, a = 1, 3
for i = 1, n do
  local nspent, limit = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local reserved = tonumber(redis.call('GET', KEYS[k]) or '0')
  if reserved < 0 then reserved = 0 end
  local spent = 0
  local vals = redis.call('MGET', unpack(KEYS, k + 1, k + nspent))
  for j = 1, #vals do
    if vals[j] then spent = spent + tonumber(vals[j]) end
  end
  out[#out + 1] = spent
  out[#out + 1] = reserved
  if limit >= 0 and spent + reserved + amount > limit then
    out[1] = i - 1
    return out
  end
  k, a = k + 1 + nspent, a + 3
end
k, a = 1, 3
for i = 1, n do
  redis.call('INCRBY', KEYS[k], ARGV[1])
  redis.call('EXPIRE', KEYS[k], ARGV[a + 2])
  k, a = k + 1 + tonumber(ARGV[a]), a + 3
end
return out
"""

SETTLE_LUA = """
-- KEYS, per check: reserved_key, commit_key
-- ARGV: reserved, actual, then per check: ttl_s
local reserved, actual = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local rkey, ckey = KEYS[2 * i - 1], KEYS[2 * i]
  if reserved > 0 then
    if redis.call('DECRBY', rkey, ARGV[1]) <= 0 then
      redis.call('DEL', rkey)  -- nothing in flight (or the counter had expired)
    end
  end
  if actual > 0 then
    redis.call('INCRBY', ckey, ARGV[2])
    redis.call('EXPIRE', ckey, ARGV[2 + i])
  end
end
return 1
"""


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Redis budget store needs redis-py: pip install 'faremeter[redis]'"
        ) from None
    return redis


class RedisBudgetStore:
    """Counters in Redis.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS).
        prefix: Key namespace (default ``faremeter:budget:``).
        timeout_s: Connect and per-command timeout; past it the store counts
            as unavailable and fail-open / fail-closed applies. No retries, so
            a dead Redis costs one timeout per call, never more.
        client: An existing ``redis.Redis`` to use instead of ``url``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "faremeter:budget:",
        timeout_s: float = 0.5,
        client: Any = None,
    ) -> None:
        redis = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.prefix = prefix
        self.url = url
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client: Any = client or redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._reserve = self._client.register_script(RESERVE_LUA)
        self._settle = self._client.register_script(SETTLE_LUA)

    def reserve(self, checks: Sequence[Check], amount: int) -> ReserveResult:
        """One ``EVALSHA`` of :data:`RESERVE_LUA`: all checks or none, atomically."""
        keys: list[str] = []
        args: list[int] = [amount, len(checks)]
        for c in checks:
            keys.append(c.reserved_key)
            keys.extend(c.spent_keys)
            args.extend((len(c.spent_keys), c.limit, c.ttl_s))
        try:
            out: list[int] = self._reserve(keys=keys, args=args)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis budget store {self.url}: {exc}") from exc
        totals = [(int(out[i]), int(out[i + 1])) for i in range(1, len(out), 2)]
        return ReserveResult(int(out[0]), totals)

    def settle(self, checks: Sequence[Check], reserved: int, actual: int) -> None:
        """One ``EVALSHA`` of :data:`SETTLE_LUA`."""
        keys: list[str] = []
        args: list[int] = [reserved, actual]
        for c in checks:
            keys.append(c.reserved_key)
            keys.append(c.commit_key)
            args.append(c.ttl_s)
        try:
            self._settle(keys=keys, args=args)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis budget store {self.url}: {exc}") from exc

    def read(self, checks: Sequence[Check]) -> list[tuple[int, int]]:
        """``(spent, reserved)`` per check in one ``MGET``."""
        keys: list[str] = []
        for c in checks:
            keys.append(c.reserved_key)
            keys.extend(c.spent_keys)
        try:
            values: list[bytes | None] = self._client.mget(keys)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis budget store {self.url}: {exc}") from exc
        out: list[tuple[int, int]] = []
        i = 0
        for c in checks:
            reserved = max(int(values[i] or 0), 0)
            spent = sum(int(v or 0) for v in values[i + 1 : i + 1 + len(c.spent_keys)])
            out.append((spent, reserved))
            i += 1 + len(c.spent_keys)
        return out

    def scan(self, prefix: str) -> dict[str, int]:
        """Counters whose key starts with ``prefix`` (``SCAN`` + ``MGET``)."""
        try:
            keys = [
                k.decode() for k in self._client.scan_iter(match=_glob(prefix) + "*", count=500)
            ]
            values: list[bytes | None] = self._client.mget(keys) if keys else []
        except self._errors as exc:
            raise StoreUnavailable(f"Redis budget store {self.url}: {exc}") from exc
        return {k: int(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def claim(self, key: str, ttl_s: int) -> bool:
        """``SET NX EX``: true for exactly one client per ``key`` until it expires."""
        try:
            return bool(self._client.set(self.prefix + "claim:" + key, b"1", nx=True, ex=ttl_s))
        except self._errors as exc:
            raise StoreUnavailable(f"Redis budget store {self.url}: {exc}") from exc

    def close(self) -> None:
        """Close the connection pool."""
        with contextlib.suppress(*self._errors):
            self._client.close()


def _glob(text: str) -> str:
    """``text`` with Redis glob metacharacters escaped."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
