"""Open raster handles, reused across requests, and the thread pool that does the GDAL work.

Each worker thread of the pool keeps its own rio-tiler ``Reader`` (and overview datasets) per file
through ``server.handles`` (a handful of threads times a handful of files), reopened when the file
changes. Files are opened inside a ``rasterio.Env`` holding ``GDAL_DEFAULTS``, and the process-wide GDAL
options ``GDAL_LIMITS`` (block cache, HTTP timeouts, range-request cache) are set once, each unless the
process environment sets it (the environment is read, never written). Any failure to open or read a
local file is logged with its path and answered with a generic 500 body; a remote one with 503 and
``Retry-After`` (the store may be back shortly); the worker and the other files are unaffected.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import rasterio
from fastapi import FastAPI
from rasterio.errors import RasterioError
from rio_tiler.constants import WGS84_CRS
from rio_tiler.errors import RioTilerError
from rio_tiler.io import Reader

from server.assets import GDAL_DEFAULTS, apply_gdal_limits
from server.errors import OGCError, Unavailable
from server.extents import as_bbox
from server.handles import ThreadHandles, is_remote_name
from server.raster.crs import open_name

log = logging.getLogger("onemap.raster")
T = TypeVar("T")


class RasterReadError(OGCError):
    """A registered raster file is missing or unreadable (500, generic body)."""

    status = 500
    code = "ServerError"

    def __init__(self) -> None:
        super().__init__("The raster data of this item could not be read.")


class RasterStoreUnavailable(Unavailable):
    """A remote raster (object storage) could not be read: 503, generic body, retry shortly."""

    def __init__(self) -> None:
        super().__init__("The raster data of this item is not reachable now; retry shortly.", retry_after=5)


@dataclass(frozen=True)
class Opened:
    """An open reader and its file's bounds in WGS84 (lon/lat)."""

    reader: Reader
    bounds: tuple[float, float, float, float]
    overviews: tuple[int, ...] = ()  # decimation factors of the file's overviews


class RasterStore:
    """Per-thread open readers over the data directory, and the pool they live in."""

    def __init__(self, threads: int | None = None) -> None:
        workers = threads or max(4, 2 * (os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onemap-raster")
        self._handles = ThreadHandles(close=_close)
        self._gdal = {name: os.environ.get(name, value) for name, value in GDAL_DEFAULTS.items()}
        apply_gdal_limits()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in the raster pool; rasterio/GDAL/rio-tiler errors become ``RasterReadError``."""
        call = functools.partial(self._guarded, fn, args, kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _guarded(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        try:
            return fn(*args, **kwargs)
        except OGCError:
            raise
        except (RasterioError, RioTilerError, OSError, ValueError) as exc:
            log.error("raster read failed: %s: %s", type(exc).__name__, exc)
            self._handles.forget()  # reopen everything on the next request
            if any(is_remote_name(a) for a in args):
                raise RasterStoreUnavailable() from None
            raise RasterReadError() from None

    def open(self, path: str | Path, overview: int | None = None) -> Opened:
        """The calling thread's open reader for ``path`` (opened, or reopened if the file changed),
        on the full-size image or on one overview level (index into the file's overviews)."""
        return self._handles.get(path, f"reader{overview}", lambda: self._open_reader(path, overview))

    def overview(self, path: str | Path, level: int | None) -> rasterio.io.DatasetReader:
        """The calling thread's open dataset for one overview level of ``path`` (None: full size)."""
        if level is None:
            return self._handles.get(path, "full", lambda: self._open_dataset(path))
        return self._handles.get(path, f"ovr{level}", lambda: self._open_dataset(path, overview_level=level))

    def _open_dataset(self, path: str | Path, **kwargs: Any) -> rasterio.io.DatasetReader:
        with rasterio.Env(**self._gdal):
            return rasterio.open(path, **kwargs)

    def _open_reader(self, path: str | Path, overview: int | None) -> Opened:
        with rasterio.Env(**self._gdal):
            with rasterio.open(path) as probe:
                name = open_name(path, probe.crs, overview)
                factors = tuple(probe.overviews(1))
            reader = Reader(name)
        return Opened(reader, as_bbox(reader.get_geographic_bounds(WGS84_CRS)), factors)

    def close(self) -> None:
        """Stop the pool (threads and their handles end with it)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _close(handle: Any) -> None:
    (handle.reader if isinstance(handle, Opened) else handle).close()


def get_store(app: FastAPI) -> RasterStore:
    """The app's raster store, created on first use."""
    store = getattr(app.state, "raster_store", None)
    if store is None:
        store = RasterStore()
        app.state.raster_store = store
    return store
