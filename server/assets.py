"""Where the files of registered raster assets are: in the data directory, or in object storage.

Clients name items (asset ids from the catalog), never paths; a location only ever comes from the
catalog, written by the operator. An asset's ``path`` is either relative to the data directory (and
never resolves outside it), or a remote URL: ``s3://bucket/key`` (read as GDAL's ``/vsis3/``) or any
GDAL virtual file system name (``/vsis3/``, ``/vsicurl/``, ``/vsigs/``, ``/vsiaz/`` ...). Remote COGs
are read through GDAL with HTTP range requests (see ``server.raster.store`` for the cache settings).
Raster reads, the STAC documents and the asset downloads all find files here. A mosaic collection's
files are its sheets (``server.sheets``), each an asset ``<acquisition>_<sheet>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from rasterio.env import set_gdal_config

from server.catalog import RasterAsset, RasterCollection
from server.errors import OGCError
from server.sheets import Sheet, SheetIndex

# URL schemes an operator may use for an object store, and the GDAL virtual file system of each
SCHEMES = {"s3://": "/vsis3/", "gs://": "/vsigs/", "az://": "/vsiaz/", "https://": "/vsicurl/https://",
           "http://": "/vsicurl/http://"}


def remote_name(path: str) -> str | None:
    """The GDAL name of a remote asset path (``s3://b/k`` -> ``/vsis3/b/k``), ``None`` for a local one."""
    if path.startswith("/vsi"):
        return path
    for scheme, vsi in SCHEMES.items():
        if path.startswith(scheme):
            return vsi + path[len(scheme):]
    return None


def is_remote(asset: RasterAsset) -> bool:
    """Whether the asset lives in object storage (or behind any GDAL virtual file system)."""
    return remote_name(asset.path) is not None


def asset_path(data_dir: Path, asset: RasterAsset) -> Path:
    """The local file of an asset: relative to the data directory, and never outside it.

    A remote asset has no local file (use ``asset_location``)."""
    root = Path(data_dir).resolve()
    path = (root / asset.path).resolve()
    if is_remote(asset) or root not in path.parents:
        raise OGCError("The raster data of this item is not available.")
    return path


def sheet_index(collection: RasterCollection, data_dir: Path) -> SheetIndex | None:
    """The sheet index of a mosaic collection (``raster.sheets``); None for one file per acquisition."""
    if collection.raster.sheets is None:
        return None
    return SheetIndex(asset_path(data_dir, RasterAsset(id=collection.id, path=collection.raster.sheets,
                                                       datetime="1970-01-01")))


def sheet_asset(sheet: Sheet) -> RasterAsset:
    """A mosaic sheet as an asset of its own: id ``<acquisition>_<sheet name>``, its file and time."""
    return RasterAsset(id=f"{sheet.acquisition}_{sheet.name}", path=sheet.path, datetime=sheet.datetime)


def file_assets(collection: RasterCollection, data_dir: Path) -> list[RasterAsset]:
    """The files of a raster collection as assets: its registered assets, or a mosaic's sheets."""
    index = sheet_index(collection, data_dir)
    if index is None:
        return list(collection.raster.assets)
    return [sheet_asset(s) for s in index.sheets()]


def asset_location(data_dir: Path, asset: RasterAsset) -> str:
    """What GDAL (rasterio) opens for an asset: its GDAL virtual file system name if remote, else
    its local file (``asset_path``)."""
    return remote_name(asset.path) or str(asset_path(data_dir, asset))


# GDAL, while a file is opened: never list a COG's directory looking for side-car files
GDAL_DEFAULTS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
# GDAL, process-wide: a bounded block cache (MB), a bounded cache of HTTP range reads (bytes), short
# HTTP timeouts with one retry (a slow or failing object store answers 503, never holds a worker),
# and only .tif names probed over HTTP (no side-car requests).
GDAL_LIMITS = {
    "GDAL_CACHEMAX": "64",
    "CPL_VSIL_CURL_CACHE_SIZE": str(16 * 2**20),
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(2 * 2**20),
    "GDAL_HTTP_CONNECTTIMEOUT": "3",
    "GDAL_HTTP_TIMEOUT": "10",
    "GDAL_HTTP_MAX_RETRY": "1",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff",
    "GDAL_HTTP_MULTIRANGE": "YES",
}


def apply_gdal_limits() -> None:
    """Set ``GDAL_LIMITS`` as GDAL options, each unless the process environment sets it."""
    for name, value in GDAL_LIMITS.items():
        chosen = os.environ.get(name, value)
        if name == "GDAL_CACHEMAX" and chosen.isdigit():  # set in bytes; GDAL reads a small number as MB
            set_gdal_config(name, int(chosen) * (2**20 if int(chosen) < 100_000 else 1))
        else:
            set_gdal_config(name, chosen)
