"""Rate limits and daily quotas shared by every worker and replica through Redis.

With ``ONEMAP_REDIS_URL`` set, a key's token bucket and its day's count live in Redis and are
changed by one Lua script each, atomically, so N workers or replicas give a key its configured rate
and quota, not N times them. The bucket (``onemap:rate:<key id>``) refills from Redis's own clock
(``TIME``), so replicas with skewed clocks agree. The day's count (``onemap:quota:<key id>:<day>``,
expiring after the day) is seeded, the first time a day is seen, from the audit log like the
in-process counter; the script sets the seed only when no replica has done so first.

When Redis does not answer (short timeouts, then a circuit breaker skips it for the cool-down), the
edition's ``limits_without_redis`` decides: ``closed`` refuses keyed requests that have a rate or a
quota with 503 and ``Retry-After``; ``open`` lets each process limit on its own (in-process buckets
and counters), so a key may get up to N times its rate until Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.cache.breaker import CircuitBreaker
from server.errors import Unavailable
from server.policy.limits import QuotaCounter, RateLimiter, quota_day

log = logging.getLogger("onemap.policy")
RATE_PREFIX = "onemap:rate:"
QUOTA_PREFIX = "onemap:quota:"

# KEYS[1] bucket; ARGV rate, capacity. Returns the seconds to wait, as a string (0 = admitted).
TOKEN_BUCKET = """
local rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(b[1]) or cap, tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 1)
return tostring(wait)
"""

# KEYS[1] the day's count; ARGV quota, seconds to keep it, seed (-1: none yet).
# Returns -1 when the count needs a seed, 1 when admitted (and counted), 0 when the quota is used up.
DAILY_QUOTA = """
local n = redis.call('GET', KEYS[1])
if not n then
  if tonumber(ARGV[3]) < 0 then return -1 end
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
  n = ARGV[3]
end
if tonumber(n) >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
"""


class Limits:
    """Per-key rate and daily quota checks; in Redis when ``url`` is given, else in this process."""

    def __init__(self, url: str | None, timeout_s: float, breaker: CircuitBreaker,
                 without_redis: Literal["closed", "open"],
                 seed: Callable[[str, dt.datetime], Awaitable[int]]) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.breaker = breaker
        self.without_redis = without_redis
        self._seed = seed
        self.local_rates = RateLimiter()
        self.local_quotas = QuotaCounter(seed)
        self._redis: aioredis.Redis | None = None
        self._bucket: Any = None
        self._quota: Any = None

    def open(self) -> None:
        """Create the client and register the scripts (connections are made lazily)."""
        if self.url is None:
            return
        self._redis = aioredis.Redis.from_url(
            self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0)
        self._bucket = self._redis.register_script(TOKEN_BUCKET)
        self._quota = self._redis.register_script(DAILY_QUOTA)

    async def close(self) -> None:
        """Drop the client and its connections."""
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()
            self._redis = None

    async def _shared(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's answer, or ``None`` when Redis is unavailable (too slow, down, or skipped)."""
        if not self.breaker.allow():
            return None
        try:
            result = await asyncio.wait_for(script(keys=keys, args=args), timeout=self.timeout_s * 2 + 0.05)
        except (RedisError, OSError, TimeoutError) as exc:
            self.breaker.failure(type(exc).__name__)
            log.debug("redis limit call failed: %s", exc)
            return None
        self.breaker.success()
        return result

    def _unavailable(self) -> Unavailable:
        return Unavailable("Rate limits and quotas cannot be checked now; retry shortly.",
                           retry_after=max(1, math.ceil(self.breaker.cooldown_s)))

    async def rate(self, key_id: str, rate: float) -> int:
        """0 when the request may go, else the Retry-After seconds; ``Unavailable`` when closed and Redis is out."""
        if self._redis is not None:
            answer = await self._shared(self._bucket, [RATE_PREFIX + key_id], [rate, max(1.0, rate)])
            if answer is not None:
                wait = float(answer)
                return 0 if wait == 0 else max(1, math.ceil(wait))
            if self.without_redis == "closed":
                raise self._unavailable()
        return self.local_rates.check(key_id, rate)

    async def quota(self, key_id: str, quota: int, now: dt.datetime) -> int:
        """0 when the request is within the day's quota (and counts it), else the Retry-After seconds."""
        if self._redis is not None:
            day, start, until_next = quota_day(now)
            keys, seed = [f"{QUOTA_PREFIX}{key_id}:{day}"], -1
            answer = await self._shared(self._quota, keys, [quota, until_next + 3600, seed])
            if answer == -1:
                seed = await self._seed(key_id, start)
                answer = await self._shared(self._quota, keys, [quota, until_next + 3600, seed])
            if answer is not None:
                return 0 if answer == 1 else until_next
            if self.without_redis == "closed":
                raise self._unavailable()
        return await self.local_quotas.take(key_id, quota, now)
