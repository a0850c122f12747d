"""What ``/readyz`` checks, each within ``CHECK_TIMEOUT_S``:

- ``store``: the store answers a read of a row. With read replicas (``ONEMAP_DATABASE_READ_URLS``) the
  row is read on the primary (``ONEMAP_DATABASE_URL``, through which writes go), else through the read pool.
  ``ok``, ``unavailable``, or ``refused`` (the store holds data above the edition: never ready).
- ``replica``: every read replica answers a read (``ok``), at least one does not (``unavailable``), or
  none is configured (``off``). A replica down does not make the server unready: reads go to the other
  replicas or to the primary (``server.pgconn``), so a load balancer keeps a healthy OneMap process
  because one PostgreSQL replica is gone.
- ``redis``: reported only (``ok`` / ``down`` / ``off``); Redis down is no outage: the server runs without
  the shared cache, with the rate limits the edition sets for that case.

Ready means ``store`` is ``ok``. The database checks use connections of their own (one per database and
process, reopened when lost), never the read pool's, so a probe does not wait behind requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg

from server.catalog import VectorCollection
from server.settings import Settings
from server.sources.postgis_schema import VERSION_QUERY

CHECK_TIMEOUT_S = 2.0


class Probe:
    """One autocommit connection to ``url`` for readiness reads, opened on first use and after a failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()

    async def read(self, query: str, params: Any = None) -> None:
        """Run ``query`` and fetch its first row; any failure closes the connection and propagates. A missing
        table is an answer (a store without data versioning, as ``PostGISSource.version`` takes it)."""
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True, connect_timeout=max(2, int(CHECK_TIMEOUT_S)),
                        application_name="onemap-readyz")
                await (await self._conn.execute(query, params)).fetchone()
            except psycopg.errors.UndefinedTable:
                return
            except BaseException:  # a failure or a cancellation (timeout): the next probe starts afresh
                await self._drop()
                raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            await self._drop()


class Readiness:
    """The probes of one process: the primary's (with replicas only) and one per replica."""

    def __init__(self, settings: Settings) -> None:
        replicas = settings.database_read_urls if settings.database_url else ()
        self.primary = Probe(settings.database_url) if replicas and settings.database_url else None
        self.replicas = [Probe(url) for url in replicas]

    async def close(self) -> None:
        """Close every probe's connection."""
        for probe in (self.primary, *self.replicas):
            if probe is not None:
                await probe.close()


async def _within(check: Any) -> bool:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except Exception:  # unreachable, too slow, a missing table: all the same to a load balancer
        return False
    return True


async def _store(state: Any, probes: Readiness) -> str:
    runtime = state.policy
    if runtime.problem is not None:
        return "refused"  # the store holds data above the edition: never ready
    if not await _within(runtime.ensure_ready()):
        return "unavailable"
    vectors = state.catalog.of_kind(VectorCollection)
    if not vectors:
        return "ok"
    if probes.primary is not None:
        read = probes.primary.read(VERSION_QUERY, [vectors[0].id])
    else:
        read = state.source.version(vectors[0])
    return "ok" if await _within(read) else "unavailable"


async def _replica(probes: Readiness) -> str:
    if not probes.replicas:
        return "off"
    answers = await asyncio.gather(*(_within(p.read("SELECT 1")) for p in probes.replicas))
    return "ok" if all(answers) else "unavailable"


async def _redis(state: Any) -> str:
    shared = getattr(state.cache, "shared", None)
    if shared is None:
        return "off"
    return "ok" if await shared.ping() else "down"


async def readiness(state: Any) -> dict[str, str]:
    """``{"store": ok | unavailable | refused, "replica": ok | unavailable | off, "redis": ok | down | off}``."""
    probes: Readiness = state.readiness
    store, replica, redis = await asyncio.gather(_store(state, probes), _replica(probes), _redis(state))
    return {"store": store, "replica": replica, "redis": redis}
