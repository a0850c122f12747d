"""What ``/readyz`` checks: the store answers a read (through the read pool) within a bound, and the
state of Redis (reported; Redis down is no outage: the server runs without the shared cache, with the
rate limits the edition sets for that case)."""

from __future__ import annotations

import asyncio
from typing import Any

from server.catalog import VectorCollection

CHECK_TIMEOUT_S = 2.0


async def _store(state: Any) -> str:
    runtime = state.policy
    if runtime.problem is not None:
        return "refused"  # the store holds data above the edition: never ready
    try:
        await asyncio.wait_for(runtime.ensure_ready(), CHECK_TIMEOUT_S)
        vectors = state.catalog.of_kind(VectorCollection)
        if vectors:
            await asyncio.wait_for(state.source.version(vectors[0]), CHECK_TIMEOUT_S)
    except Exception:  # unreachable, too slow, or not checked yet: all the same to a load balancer
        return "unavailable"
    return "ok"


async def _redis(state: Any) -> str:
    shared = getattr(state.cache, "shared", None)
    if shared is None:
        return "off"
    return "ok" if await shared.ping() else "down"


async def readiness(state: Any) -> dict[str, str]:
    """``{"store": ok | unavailable | refused, "redis": ok | down | off}``."""
    store, redis = await asyncio.gather(_store(state), _redis(state))
    return {"store": store, "redis": redis}
