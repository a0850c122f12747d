"""Rate limits and daily quotas shared by every worker and replica through Redis.

With ``ONEMAP_REDIS_URL`` set, a key's token bucket and its day's count live in Redis and are
changed by one Lua script each, atomically, so N workers or replicas give a key its configured rate
and quota, not N times them. The bucket (``onemap:rate:<key id>``) refills from Redis's own clock
(``TIME``), so replicas with skewed clocks agree. The day's count (``onemap:quota:<key id>:<day>``,
expiring after the day) is seeded, the first time a day is seen, from the audit log like the
in-process counter; the script sets the seed only when no replica has done so first.

A worker takes what it needs in small leases rather than one token per request: at most
``LEASE_S`` seconds' worth of a key's rate (dropped when unused after that), and at most
``1/QUOTA_LEASE_SHARE`` of its daily quota, per call; a key with a low rate or quota gets leases of one,
which is exact. So the shared counters never let a key past its rate or quota, and a busy key costs
Redis a call per lease, not per request; at worst each worker holds one unused lease, which is lost
(a key may be refused up to that many requests early, never admitted late). A refusal is remembered
as long as it holds (an empty bucket until it has refilled a lease's tokens, a used-up quota until the
day ends), so a key hammering past its limits costs no Redis call per request either.

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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.cache.breaker import CircuitBreaker
from server.errors import Unavailable
from server.policy.limits import QuotaCalendar, QuotaCounter, RateLimiter

log = logging.getLogger("onemap.policy")
RATE_PREFIX = "onemap:rate:"
QUOTA_PREFIX = "onemap:quota:"
LEASE_S = 0.05  # a rate lease holds at most this long's worth of tokens, and lives as long
QUOTA_LEASE_SHARE = 1000  # a quota lease holds at most this share of the day's quota

# KEYS[1] bucket; ARGV rate, capacity, tokens wanted. Returns {tokens granted, seconds to wait as a string}.
TOKEN_BUCKET = """
local rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(b[1]) or cap, tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - stamp) * rate)
local wait, take = 0, 0
if tokens >= 1 then
  take = math.min(tonumber(ARGV[3]), math.floor(tokens))
  tokens = tokens - take
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 1)
return {take, tostring(wait)}
"""

# KEYS[1] the day's count; ARGV quota, seconds to keep it, seed (-1: none yet), requests wanted.
# Returns -1 when the count needs a seed, else the requests granted (and counted): 0 when the quota is used up.
DAILY_QUOTA = """
local n = redis.call('GET', KEYS[1])
if not n then
  if tonumber(ARGV[3]) < 0 then return -1 end
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
  n = ARGV[3]
end
local take = math.min(tonumber(ARGV[4]), tonumber(ARGV[1]) - tonumber(n))
if take <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], take)
return take
"""


@dataclass(slots=True)
class _Lease:
    """Tokens or requests a worker took from Redis and hands out itself, until ``until`` (monotonic)."""

    left: int
    until: float = math.inf

    def take(self, now: float) -> bool:
        """Whether one more request is covered by this lease (and count it)."""
        if self.left > 0 and now < self.until:
            self.left -= 1
            return True
        return False


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
        self._rate_leases: dict[str, _Lease] = {}
        self._quota_leases: dict[str, tuple[str, _Lease]] = {}  # key id -> (day, lease)
        self._rate_refused: dict[str, float] = {}  # key id -> monotonic time its bucket has a token again
        self._quota_refused: dict[str, tuple[str, int]] = {}  # key id -> (day, quota) used up
        self._calendar = QuotaCalendar()
        self._pending: dict[tuple[str, str], asyncio.Future[bool]] = {}  # lease requests under way

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

    async def _together(self, name: tuple[str, str], call: Callable[[], Awaitable[bool]]) -> bool:
        """One lease request per key and limit at a time in this process. Requests arriving meanwhile await
        the same call and all wake together when it ends (a lock would wake them one event-loop turn
        after another: the last of 30 waiters waited 30 turns of other requests' work). The call runs
        as its own task, so a request that goes away does not cancel the others' lease."""
        pending = self._pending.get(name)
        if pending is None or pending.done():  # a done one returns without yielding: never await it again
            pending = self._pending[name] = asyncio.ensure_future(call())
            pending.add_done_callback(lambda done: self._forget(name, done))
        return await asyncio.shield(pending)

    def _forget(self, name: tuple[str, str], done: asyncio.Future[bool]) -> None:
        if self._pending.get(name) is done:
            del self._pending[name]

    async def rate(self, key_id: str, rate: float) -> int:
        """0 when the request may go, else the Retry-After seconds; ``Unavailable`` when closed and Redis is out."""
        if self._redis is not None:
            while True:
                now = time.monotonic()
                lease = self._rate_leases.get(key_id)
                if lease is not None and lease.take(now):
                    return 0
                if (refill := self._rate_refused.get(key_id, 0.0)) > now:
                    return max(1, math.ceil(refill - now))
                if not await self._together(("rate", key_id), lambda: self._rate_lease(key_id, rate)):
                    break  # Redis did not answer
            if self.without_redis == "closed":
                raise self._unavailable()
        return self.local_rates.check(key_id, rate)

    async def _rate_lease(self, key_id: str, rate: float) -> bool:
        """Take a new lease of the key's tokens from Redis, or remember the refusal; ``False`` when Redis
        did not answer."""
        want = max(1, int(rate * LEASE_S))
        answer = await self._shared(self._bucket, [RATE_PREFIX + key_id], [rate, max(1.0, rate), want])
        if answer is None:
            return False
        granted, wait = int(answer[0]), float(answer[1])
        now = time.monotonic()  # after the call: a slow answer still gives a lease its whole life
        if granted:
            self._rate_leases[key_id] = _Lease(granted, now + LEASE_S)
        else:
            self._rate_refused[key_id] = now + max(wait, want / rate)  # ask again once a lease has refilled
        return True

    async def quota(self, key_id: str, quota: int, now: dt.datetime) -> int:
        """0 when the request is within the day's quota (and counts it), else the Retry-After seconds."""
        if self._redis is not None:
            day, start, until_next = self._calendar.day(now)
            while True:
                held = self._quota_leases.get(key_id)
                if held is not None and held[0] == day and held[1].take(0.0):
                    return 0
                if self._quota_refused.get(key_id) == (day, quota):
                    return until_next
                if not await self._together(("quota", key_id),
                                            lambda: self._quota_lease(key_id, quota, day, start, until_next)):
                    break  # Redis did not answer
            if self.without_redis == "closed":
                raise self._unavailable()
        return await self.local_quotas.take(key_id, quota, now)

    async def _quota_lease(self, key_id: str, quota: int, day: str, start: dt.datetime, until_next: int) -> bool:
        """Take a new lease of the day's quota from Redis, or remember that it is used up; ``False`` when
        Redis did not answer."""
        keys, seed, want = [f"{QUOTA_PREFIX}{key_id}:{day}"], -1, max(1, quota // QUOTA_LEASE_SHARE)
        answer = await self._shared(self._quota, keys, [quota, until_next + 3600, seed, want])
        if answer == -1:
            seed = await self._seed(key_id, start)
            answer = await self._shared(self._quota, keys, [quota, until_next + 3600, seed, want])
        if answer is None:
            return False
        if answer > 0:
            self._quota_leases[key_id] = (day, _Lease(int(answer)))
        else:
            self._quota_refused[key_id] = (day, quota)
        return True
