"""The shared cache: Redis, used only while it answers quickly.

Fail open: every call has a short socket timeout and no retries; a failure is counted by a circuit
breaker and the call answers "nothing" (a miss, or a store that did not happen), so a lost or slow
Redis costs at most a few short timeouts before it is skipped, and never an error to a client.
After the cool-down one trial call goes through; when Redis answers again the cache heals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.cache.breaker import CircuitBreaker

log = logging.getLogger("onemap.cache")
PREFIX = "onemap:r:"


class SharedCache:
    """Get/set packed entries in Redis under ``onemap:r:<digest>``, fail-open."""

    def __init__(self, url: str, timeout_s: float, ttl_s: int, breaker: CircuitBreaker) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.breaker = breaker
        self.errors = 0
        self._redis: aioredis.Redis | None = None

    async def open(self) -> None:
        """Create the client (connections are made lazily, so a Redis that is down does not stop start-up)."""
        self._redis = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )

    async def close(self) -> None:
        """Drop the client and its connections."""
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()
            self._redis = None

    async def _call(self, op: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Run one command unless the breaker says skip; any failure is a ``None`` answer."""
        if self._redis is None or not self.breaker.allow():
            return None
        try:
            result = await asyncio.wait_for(op(*args, **kwargs), timeout=self.timeout_s * 2 + 0.05)
        except (TimeoutError, RedisError, OSError) as exc:
            self.errors += 1
            self.breaker.failure(type(exc).__name__)
            log.debug("redis call failed: %s", exc)
            return None
        self.breaker.success()
        return result

    async def get(self, digest: str) -> bytes | None:
        """The packed entry stored under ``digest``, or ``None`` (missing, or Redis unavailable)."""
        if self._redis is None:
            return None
        return await self._call(self._redis.get, PREFIX + digest)

    async def set(self, digest: str, packed: bytes) -> bool:
        """Store a packed entry with the configured lifetime; ``False`` when it could not be stored."""
        if self._redis is None:
            return False
        return bool(await self._call(self._redis.set, PREFIX + digest, packed, ex=self.ttl_s))

    async def ping(self) -> bool:
        """True when Redis answers now."""
        if self._redis is None:
            return False
        return bool(await self._call(self._redis.ping))

    @property
    def available(self) -> bool:
        """False while the breaker skips Redis."""
        return self.breaker.state == "closed"
