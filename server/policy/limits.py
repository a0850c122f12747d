"""Per-key rate limits (in-process token buckets) and daily quotas, for one server process.

Quota days are calendar days in China Standard Time (UTC+8), the ministry's working day. The count
of a key's admitted requests for the day is kept in memory, seeded on first use from the audit log
in the store (admitted requests are the audited ones not answered 401, 403 or 429), so a restart
does not reset it. This is exact for one server process; with N workers or replicas each counts its
own share, so ``shared_limits.py`` keeps them in Redis when it is configured and uses these only
without Redis (or while it is down, when the edition's limits fail open).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

QUOTA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")


def quota_day(now: dt.datetime) -> tuple[str, dt.datetime, int]:
    """(day label, start of the day in UTC, seconds until the next day) for an aware ``now``."""
    local = now.astimezone(QUOTA_TZ)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    next_day = start + dt.timedelta(days=1)
    return start.date().isoformat(), start.astimezone(dt.UTC), max(1, math.ceil((next_day - local).total_seconds()))


class QuotaCalendar:
    """``quota_day`` for a stream of instants, recomputed only when ``now`` leaves the current day."""

    def __init__(self) -> None:
        self._day: tuple[str, dt.datetime, dt.datetime] | None = None  # label, start and end in UTC

    def day(self, now: dt.datetime) -> tuple[str, dt.datetime, int]:
        """(day label, start of the day in UTC, seconds until the next day), as ``quota_day``."""
        day = self._day
        if day is None or not day[1] <= now < day[2]:
            label, start, _ = quota_day(now)
            day = self._day = (label, start, start + dt.timedelta(days=1))
        return day[0], day[1], max(1, math.ceil((day[2] - now).total_seconds()))


@dataclass
class Bucket:
    """A token bucket holding up to ``capacity`` tokens, refilled at ``rate`` per second."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per key; a burst of up to one second's worth of requests is allowed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._clock = clock

    def check(self, key_id: str, rate: float) -> int:
        """0 when the request may go, else the Retry-After seconds."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rate:
            capacity = max(1.0, rate)
            bucket = self._buckets[key_id] = Bucket(rate, capacity, capacity, now)
        wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))


class QuotaCounter:
    """Admitted requests per key per quota day; ``seed(key_id, since)`` reads the count from the store."""

    def __init__(self, seed: Callable[[str, dt.datetime], Awaitable[int]]) -> None:
        self._seed = seed
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = asyncio.Lock()

    async def take(self, key_id: str, quota: int, now: dt.datetime) -> int:
        """0 when the request is within the quota (and counts it), else the Retry-After seconds."""
        day, start, until_next = quota_day(now)
        slot = (key_id, day)
        if slot not in self._counts:
            async with self._lock:
                if slot not in self._counts:
                    for old in [k for k in self._counts if k[0] == key_id]:
                        del self._counts[old]
                    self._counts[slot] = await self._seed(key_id, start)
        if self._counts[slot] >= quota:
            return until_next
        self._counts[slot] += 1
        return 0

    def used(self, key_id: str, now: dt.datetime) -> int | None:
        """The count so far today, when known."""
        return self._counts.get((key_id, quota_day(now)[0]))
