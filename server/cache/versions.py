"""Data versions of collections, memoized for a short time so a cache hit costs no database call.

Vector collections ask their source (``Source.version``); raster collections are versioned by the
size and modification time of their registered files. A version is trusted for ``ttl_s`` seconds
(``cache_version_ttl_s``, default 1 s): an edit is seen by every worker at most that long after it
commits, after which the keys holding the old version are never looked up again.

When the store cannot be asked (database down), the last known version is used without waiting: the
collection is "in outage" and, until the store answers again, a request gets the last known version at
once while one lookup at a time (at most every ``OUTAGE_RETRY_S``) tries the store in the background. So
cached responses are served at cache speed during the outage, for at most ``max_stale_s`` seconds
(``cache_outage_grace_s``) after the version was last confirmed; past that, the lookup fails as the store
does. One line is logged when an outage starts and one when it ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path

from server.catalog import Collection, RasterCollection
from server.sheets import SheetIndex

log = logging.getLogger("onemap.cache")

OUTAGE_RETRY_S = 2.0  # during an outage, how often one lookup tries the store again


class VersionUnavailable(RuntimeError):
    """The store cannot be asked and the last known version is older than the outage grace period."""


class VersionMemo:
    """``await get(collection)`` -> the collection's current data version (memoized)."""

    def __init__(self, source, ttl_s: float, data_dir: Path | None = None, max_stale_s: float = 300.0) -> None:
        self.source = source
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.clock = time.monotonic
        self._memo: dict[str, tuple[str, float]] = {}  # version, when the store last confirmed it
        self._pending: dict[str, asyncio.Future] = {}
        self._outage: dict[str, float] = {}  # collection -> when the next background lookup may run
        self._source_down = False  # a vector lookup failed: every vector collection is in outage until one answers
        self._background: set[asyncio.Task] = set()

    def fresh(self, collection_id: str) -> str | None:
        """The memoized version if still trusted, else ``None`` (no I/O)."""
        found = self._memo.get(collection_id)
        if found is not None and self.clock() - found[1] < self.ttl_s:
            return found[0]
        return None

    async def get(self, collection: Collection) -> str:
        """The version, asked from the source at most once per ``ttl_s`` per collection."""
        version = self.fresh(collection.id)
        if version is not None:
            return version
        if collection.id in self._memo and (collection.id in self._outage or (
                self._source_down and not isinstance(collection, RasterCollection))):
            return self._during_outage(collection)
        pending = self._pending.get(collection.id)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[collection.id] = future
        try:
            version = await self._ask(collection)
            future.set_result(version)
            return version
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._pending[collection.id]

    def _during_outage(self, collection: Collection) -> str:
        """The last known version at once (within ``max_stale_s``); a background lookup now and then."""
        version, confirmed = self._memo[collection.id]
        now = self.clock()
        if now >= self._outage.get(collection.id, 0.0) and collection.id not in self._pending:
            self._outage[collection.id] = now + OUTAGE_RETRY_S
            task = asyncio.get_running_loop().create_task(self._retry(collection))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if now - confirmed > self.max_stale_s:
            raise VersionUnavailable(f"data version of {collection.id} unconfirmed for {now - confirmed:.0f} s")
        return version

    async def _retry(self, collection: Collection) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending[collection.id] = future
        try:
            future.set_result(await self._ask(collection))
        except Exception as exc:
            future.set_exception(exc)
            future.exception()
        finally:
            del self._pending[collection.id]

    async def _ask(self, collection: Collection) -> str:
        previous = self._memo.get(collection.id)
        try:
            if isinstance(collection, RasterCollection):
                version = self._files_version(collection)
            else:
                version = str(await self.source.version(collection))
        except Exception as exc:
            if previous is None:
                raise
            self._source_down = True
            if self.clock() - previous[1] > self.max_stale_s:
                raise
            if collection.id not in self._outage:
                log.warning("data version of %s unavailable (%s); serving cached answers of version %s for up to"
                            " %.0f s", collection.id, exc, previous[0], self.max_stale_s)
                self._outage[collection.id] = self.clock() + OUTAGE_RETRY_S
            return previous[0]
        if self._outage.pop(collection.id, None) is not None:
            log.warning("data version of %s available again", collection.id)
        if not isinstance(collection, RasterCollection):
            self._source_down = False
        self._memo[collection.id] = (version, self.clock())
        return version

    def _files_version(self, collection: RasterCollection) -> str:
        """Size and modification time of every file of a raster collection, hashed."""
        h = hashlib.blake2b(digest_size=8)
        if collection.raster.sheets is not None:
            return self._sheets_version(collection.raster.sheets, h)
        for asset in collection.raster.assets:
            try:
                st = os.stat((self.data_dir or Path(".")) / asset.path)
                h.update(f"{asset.id}:{st.st_size}:{st.st_mtime_ns};".encode())
            except OSError:
                h.update(f"{asset.id}:missing;".encode())
        return h.hexdigest()

    def _sheets_version(self, index_path: str, h) -> str:
        """A mosaic's version: each acquisition's version in its sheet index, and each sheet file's
        size and modification time (a replaced or restored sheet moves it too)."""
        root = self.data_dir or Path(".")
        index = SheetIndex(root / index_path)
        h.update(index.version().encode())
        for sheet in index.sheets():
            try:
                st = os.stat(root / sheet.path)
                h.update(f"{sheet.acquisition}/{sheet.name}:{st.st_size}:{st.st_mtime_ns};".encode())
            except OSError:
                h.update(f"{sheet.acquisition}/{sheet.name}:missing;".encode())
        return h.hexdigest()
