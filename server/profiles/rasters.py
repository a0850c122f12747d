"""The raster parts of a unit-code profile: imagery acquisitions covering the parcel and DEM statistics.

Files are found through ``server.assets`` from the catalog (never from client input); a raster
collection the caller may not see is left out, and the DEM is never read finer than the caller's
``max_resolution_m``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio import features, windows
from rasterio.crs import CRS
from rasterio.errors import RasterioError, WindowError
from rasterio.io import DatasetReader
from shapely.geometry.base import BaseGeometry

from server.assets import GDAL_DEFAULTS, apply_gdal_limits, asset_location, is_remote, sheet_index
from server.catalog import RasterAsset, RasterCollection
from server.handles import ThreadHandles, is_remote_name
from server.policy import Restriction
from server.sources.areas import SITE_SRID, transformed
from server.stac_catalog.describe import describe

WMQ = morecantile.tms.get("WebMercatorQuad")
STORAGE_CRS = CRS.from_epsg(SITE_SRID)  # rasterio reads it lon/lat
_DEMS = ThreadHandles()  # the DEM, open in each thread that reads it
MAX_TILES = 4  # tile links over the parcel: the deepest level where it fits in this many tiles


def _tiles(bounds: tuple[float, float, float, float], maxzoom: int) -> tuple[int, list[morecantile.Tile]]:
    """The deepest zoom (up to ``maxzoom``) where the bbox needs at most ``MAX_TILES`` tiles, and those tiles."""
    for z in range(maxzoom, -1, -1):
        tiles = list(WMQ.tiles(*bounds, zooms=[z]))
        if len(tiles) <= MAX_TILES:
            return z, tiles
    return 0, [morecantile.Tile(0, 0, 0)]


def _footprints(c: RasterCollection, data_dir: Path, parcel: BaseGeometry,
                base: str) -> list[tuple[RasterAsset, BaseGeometry, str]]:
    """Each acquisition near the parcel with its footprint and STAC link: its file's, or the union of its
    mosaic sheets touching the parcel's bbox (linking the search for those sheets)."""
    index = sheet_index(c, data_dir)
    out = []
    for asset in c.raster.assets:
        if index is not None:
            boxes = [shapely.box(*s.bounds) for s in index.covering(parcel.bounds, acquisition=asset.id)]
            if boxes:
                out.append((asset, shapely.union_all(boxes),
                            f"{base}/stac/search?collections={c.id}&datetime={asset.datetime}"))
            continue
        path = asset_location(data_dir, asset)
        if is_remote(asset) or Path(path).exists():
            out.append((asset, shapely.geometry.shape(describe(path).footprint),
                        f"{base}/stac/collections/{c.id}/items/{asset.id}"))
    return out


def imagery(c: RasterCollection, data_dir: Path, parcel: BaseGeometry, base: str) -> list[dict[str, Any]]:
    """The acquisitions of ``c`` whose footprint covers any of the parcel, latest first, with tile links."""
    out = []
    zoom, tiles = _tiles(parcel.bounds, c.raster.maxzoom)
    for asset, footprint, stac in _footprints(c, data_dir, parcel, base):
        if not footprint.intersects(parcel):
            continue
        url = f"{base}/collections/{c.id}/tiles/WebMercatorQuad"
        out.append({
            "item": asset.id, "datetime": asset.datetime,
            "covers_parcel": bool(footprint.covers(parcel)),
            "stac": stac,
            "tiles": [f"{url}/{zoom}/{t.y}/{t.x}?item={asset.id}" for t in tiles],
        })
    return sorted(out, key=lambda a: a["datetime"], reverse=True)


def elevation(c: RasterCollection, data_dir: Path, parcel: BaseGeometry,
              restriction: Restriction) -> dict[str, Any] | None:
    """Min, max and mean elevation (m) under the parcel, read no finer than the restriction allows;
    ``None`` when the DEM is missing or unreadable.

    The parcel is projected into the DEM's own CRS and only the window around it is read (decimated to the
    allowed resolution, from an overview when the file has one); the samples are the pixels whose centre
    lies in the parcel, or every pixel it touches when it is smaller than one."""
    asset = c.raster.assets[-1]
    path = asset_location(data_dir, asset)
    resolution = max(c.raster.resolution_m, restriction.max_resolution_m or 0.0)
    try:
        src = _DEMS.get(path, "dem", lambda: _open(path))
        values = _under(src, transformed(parcel, _from_storage(src.crs.to_wkt())), resolution)
    except WindowError:  # the parcel lies outside the DEM
        return None
    except (RasterioError, OSError, ValueError):
        _DEMS.forget()
        return None
    if values is None:
        return None
    return {"item": asset.id, "min_m": round(float(values.min()), 2), "max_m": round(float(values.max()), 2),
            "mean_m": round(float(values.mean()), 2), "resolution_m": resolution, "samples": int(values.size)}


def _open(path: str | Path) -> DatasetReader:
    if is_remote_name(path):
        apply_gdal_limits()  # HTTP timeouts and retries: an unreachable store fails, never hangs
    with rasterio.Env(**GDAL_DEFAULTS):
        return rasterio.open(path)


@lru_cache(maxsize=16)
def _from_storage(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(STORAGE_CRS.to_wkt(), crs_wkt, always_xy=True)


def _under(src: DatasetReader, shape: BaseGeometry, resolution: float) -> np.ndarray | None:
    """The valid values of ``src`` under ``shape`` (in the dataset's CRS), at no finer than ``resolution``."""
    near = windows.from_bounds(*shape.bounds, transform=src.transform)
    col, row = math.floor(near.col_off), math.floor(near.row_off)
    window = windows.Window(col, row, math.ceil(near.col_off + near.width) - col,
                            math.ceil(near.row_off + near.height) - row)
    window = window.intersection(windows.Window(0, 0, src.width, src.height))
    factor = max(1.0, resolution / abs(src.transform.a))
    rows, cols = max(1, math.ceil(window.height / factor)), max(1, math.ceil(window.width / factor))
    block = src.read(1, window=window, out_shape=(rows, cols), masked=True)
    grid = src.window_transform(window) * Affine.scale(window.width / cols, window.height / rows)
    for touched in (False, True):
        inside = features.geometry_mask([shape], (rows, cols), grid, invert=True, all_touched=touched)
        values = block[inside].compressed()
        if values.size:
            return values
    return None
