"""Where a provider's limits live: in this process, or in Redis for every process and replica.

The QPS bucket, the retry budget and the quota breaker are one account's limits, so N workers
must share them or they send N times the rate. With a Redis URL configured, `RedisLimitStore`
keeps them under the key prefix and changes them only inside server-side Lua scripts, each one
atomic, with Redis's clock (`TIME`), so no two clients can both take the last token. Without
Redis, `LocalLimitStore` keeps the same state behind a lock, for this process alone.

If Redis stops answering, limits fall back to this process (logged once) until it is back:
pacing then holds per process, not globally, but no call fails because of Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from adacompress.outage import Outage, safe_url

BUDGET_TTL_S = 86_400
"""An idle retry budget is forgotten (back to full) after a day."""
BREAKER_LINGER_S = 86_400
"""A breaker's state outlives its reset time by this much, so the first caller after it is the only probe."""


class LimitStore(Protocol):
    """The state behind `RateLimiter`, `RetryBudget` and `QuotaBreaker`; every operation is atomic."""

    shared: bool
    """Whether other processes see the same state."""

    def reserve(self, key: str, interval_s: float, burst: int, max_wait_s: float | None) -> float | None:
        """Take the next slot of a GCRA bucket; seconds to wait for it, or None (nothing taken) past `max_wait_s`."""

    def take(self, key: str, capacity: float) -> bool:
        """Spend one token of a bucket that starts full; False when fewer than one is left."""

    def refund(self, key: str, capacity: float, amount: float) -> None: ...

    def tokens(self, key: str, capacity: float) -> float: ...

    def breaker(self, key: str) -> tuple[float, str] | None:
        """(Unix time the quota resets, reason) of a tripped breaker, or None."""

    def trip(self, key: str, until: float, reason: str) -> None: ...

    def claim_probe(self, key: str, ttl_s: float) -> bool:
        """Become the one probe of a breaker whose time is up; False if another caller is probing."""

    def release_probe(self, key: str) -> None: ...

    def close_breaker(self, key: str) -> None: ...


class LocalLimitStore:
    """Limits for this process only, behind one lock."""

    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self._tokens: dict[str, float] = {}
        self._breakers: dict[str, tuple[float, str]] = {}
        self._probes: dict[str, float] = {}

    def reserve(self, key: str, interval_s: float, burst: int, max_wait_s: float | None) -> float | None:
        with self._lock:
            now = time.monotonic()
            tat = max(self._tat.get(key, now), now)
            wait = max(0.0, tat - (burst - 1) * interval_s - now)
            if max_wait_s is not None and wait > max_wait_s:
                return None
            self._tat[key] = tat + interval_s
            return wait

    def take(self, key: str, capacity: float) -> bool:
        with self._lock:
            tokens = self._tokens.get(key, capacity)
            if tokens < 1.0:
                return False
            self._tokens[key] = tokens - 1.0
            return True

    def refund(self, key: str, capacity: float, amount: float) -> None:
        with self._lock:
            self._tokens[key] = min(capacity, self._tokens.get(key, capacity) + amount)

    def tokens(self, key: str, capacity: float) -> float:
        with self._lock:
            return self._tokens.get(key, capacity)

    def breaker(self, key: str) -> tuple[float, str] | None:
        with self._lock:
            return self._breakers.get(key)

    def trip(self, key: str, until: float, reason: str) -> None:
        with self._lock:
            self._breakers[key] = (until, reason)
            self._probes.pop(key, None)

    def claim_probe(self, key: str, ttl_s: float) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._probes.get(key, 0.0) > now:
                return False
            self._probes[key] = now + ttl_s
            return True

    def release_probe(self, key: str) -> None:
        with self._lock:
            self._probes.pop(key, None)

    def close_breaker(self, key: str) -> None:
        with self._lock:
            self._breakers.pop(key, None)
            self._probes.pop(key, None)


# GCRA: the bucket is its "theoretical arrival time"; a slot is granted at most burst-1 intervals early.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - (burst - 1) * interval - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then return {0, string.format('%.6f', wait)} end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.ceil((new - now) * 1000) + 1000)
return {1, string.format('%.6f', wait)}
"""
_TAKE = """
local v = redis.call('GET', KEYS[1])
local tokens = v and tonumber(v) or tonumber(ARGV[1])
if tokens < 1 then return 0 end
redis.call('SET', KEYS[1], string.format('%.6f', tokens - 1), 'EX', tonumber(ARGV[2]))
return 1
"""
_REFUND = """
local v = redis.call('GET', KEYS[1])
local capacity = tonumber(ARGV[1])
local tokens = math.min(capacity, (v and tonumber(v) or capacity) + tonumber(ARGV[2]))
redis.call('SET', KEYS[1], string.format('%.6f', tokens), 'EX', tonumber(ARGV[3]))
return 1
"""
_TRIP = """
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'reason', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], math.floor((tonumber(ARGV[1]) + tonumber(ARGV[3])) * 1000))
redis.call('DEL', KEYS[2])
return 1
"""


class RedisLimitStore:
    """Limits in Redis under `prefix`, shared by every process that uses the same Redis and prefix."""

    shared = True

    def __init__(self, url: str, prefix: str = "adacompress:", socket_timeout_s: float = 1.0) -> None:
        import redis

        self.prefix = f"{prefix}limits:"
        self.url = safe_url(url)
        self._errors = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=socket_timeout_s,
                                           socket_timeout=socket_timeout_s)
        self._scripts = {name: self._redis.register_script(text) for name, text in
                         (("reserve", _RESERVE), ("take", _TAKE), ("refund", _REFUND), ("trip", _TRIP))}
        self._fallback = LocalLimitStore()
        self._outage = Outage(f"shared limits: Redis at {self.url}", retry_s=30.0,
                              consequence="limits hold per process until it is back",
                              log=logging.getLogger(__name__))

    def _run(self, local: Any, remote: Any) -> Any:
        """`remote()` on Redis, or `local()` on this process's fallback while Redis is down."""
        if not self._outage.up():
            return local()
        try:
            result = remote()
        except self._errors as exc:
            self._outage.failed(exc)
            return local()
        self._outage.recovered()
        return result

    def reserve(self, key: str, interval_s: float, burst: int, max_wait_s: float | None) -> float | None:
        def remote() -> float | None:
            granted, wait = self._scripts["reserve"](keys=[self.prefix + key],
                                                     args=[interval_s, burst, -1 if max_wait_s is None else max_wait_s])
            return float(wait) if granted else None

        return self._run(lambda: self._fallback.reserve(key, interval_s, burst, max_wait_s), remote)

    def take(self, key: str, capacity: float) -> bool:
        return self._run(lambda: self._fallback.take(key, capacity),
                         lambda: bool(self._scripts["take"](keys=[self.prefix + key], args=[capacity, BUDGET_TTL_S])))

    def refund(self, key: str, capacity: float, amount: float) -> None:
        self._run(lambda: self._fallback.refund(key, capacity, amount),
                  lambda: self._scripts["refund"](keys=[self.prefix + key], args=[capacity, amount, BUDGET_TTL_S]))

    def tokens(self, key: str, capacity: float) -> float:
        def remote() -> float:
            value = self._redis.get(self.prefix + key)
            return capacity if value is None else float(value)

        return self._run(lambda: self._fallback.tokens(key, capacity), remote)

    def breaker(self, key: str) -> tuple[float, str] | None:
        def remote() -> tuple[float, str] | None:
            state = self._redis.hgetall(self.prefix + key)
            if b"until" not in state:
                return None
            return float(state[b"until"]), state.get(b"reason", b"").decode(errors="replace")

        return self._run(lambda: self._fallback.breaker(key), remote)

    def trip(self, key: str, until: float, reason: str) -> None:
        self._fallback.trip(key, until, reason)  # kept locally too, so an outage does not forget it
        self._run(lambda: None, lambda: self._scripts["trip"](
            keys=[self.prefix + key, self.prefix + key + ":probe"], args=[f"{until:.3f}", reason, BREAKER_LINGER_S]))

    def claim_probe(self, key: str, ttl_s: float) -> bool:
        return self._run(lambda: self._fallback.claim_probe(key, ttl_s), lambda: bool(self._redis.set(
            self.prefix + key + ":probe", "1", nx=True, px=max(1, int(ttl_s * 1000)))))

    def release_probe(self, key: str) -> None:
        self._run(lambda: self._fallback.release_probe(key), lambda: self._redis.delete(self.prefix + key + ":probe"))

    def close_breaker(self, key: str) -> None:
        self._fallback.close_breaker(key)
        self._run(lambda: None, lambda: self._redis.delete(self.prefix + key, self.prefix + key + ":probe"))


def open_limit_store(redis_url: str | None, prefix: str = "adacompress:") -> LimitStore:
    """Redis-backed limits when a URL is given, else this process's own."""
    return RedisLimitStore(redis_url, prefix) if redis_url else LocalLimitStore()
