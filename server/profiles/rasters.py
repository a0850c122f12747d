"""The raster parts of a unit-code profile: imagery acquisitions covering the parcel and DEM statistics.

Files are found through ``server.assets`` from the catalog (never from client input); a raster
collection the caller may not see is left out, and the DEM is never read finer than the caller's
``max_resolution_m``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import shapely
from rasterio.crs import CRS
from rio_tiler.errors import RioTilerError
from rio_tiler.io import Reader
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from server.assets import asset_location, is_remote, sheet_index
from server.catalog import RasterAsset, RasterCollection
from server.policy import Restriction
from server.sources.areas import SITE_SRID, project
from server.stac_catalog.describe import describe

WMQ = morecantile.tms.get("WebMercatorQuad")
STORAGE_CRS = CRS.from_epsg(SITE_SRID)  # rasterio reads it lon/lat
MAX_TILES = 4  # tile links over the parcel: the deepest level where it fits in this many tiles


def _tiles(bounds: tuple[float, float, float, float], maxzoom: int) -> tuple[int, list[morecantile.Tile]]:
    """The deepest zoom (up to ``maxzoom``) where the bbox needs at most ``MAX_TILES`` tiles, and those tiles."""
    for z in range(maxzoom, -1, -1):
        tiles = list(WMQ.tiles(*bounds, zooms=[z]))
        if len(tiles) <= MAX_TILES:
            return z, tiles
    return 0, [morecantile.Tile(0, 0, 0)]


def _footprints(c: RasterCollection, data_dir: Path, base: str) -> list[tuple[RasterAsset, BaseGeometry, str]]:
    """Each acquisition with its footprint and STAC link: its file's, or a mosaic's sheets' union
    (linking the search for those sheets)."""
    index = sheet_index(c, data_dir)
    out = []
    for asset in c.raster.assets:
        if index is not None:
            boxes = [shapely.box(*s.bounds) for s in index.sheets() if s.acquisition == asset.id]
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
    for asset, footprint, stac in _footprints(c, data_dir, base):
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


def elevation(c: RasterCollection, data_dir: Path, parcel: BaseGeometry, epsg: int,
              restriction: Restriction) -> dict[str, Any] | None:
    """Min, max and mean elevation (m) under the parcel, read no finer than the restriction allows."""
    asset = c.raster.assets[-1]
    path = asset_location(data_dir, asset)
    if not is_remote(asset) and not Path(path).exists():
        return None
    resolution = max(c.raster.resolution_m, restriction.max_resolution_m or 0.0)
    minx, miny, maxx, maxy = project(parcel, SITE_SRID, epsg).bounds
    width = max(1, math.ceil((maxx - minx) / resolution))
    height = max(1, math.ceil((maxy - miny) / resolution))
    try:
        with Reader(str(path)) as cog:
            img = cog.feature(mapping(parcel), shape_crs=STORAGE_CRS, width=width, height=height)
    except RioTilerError:
        return None
    values = np.ma.asarray(img.array[0])  # masked outside the parcel
    if values.count() == 0:
        return None
    return {"item": asset.id, "min_m": round(float(values.min()), 2), "max_m": round(float(values.max()), 2),
            "mean_m": round(float(values.mean()), 2), "resolution_m": resolution, "samples": int(values.count())}
