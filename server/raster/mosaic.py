"""Seamless tiles over imagery mosaics: each tile reads only the sheets its area touches.

The sheet index (``server.sheets``) lists the sheets touching the tile, newest acquisition
first; rio-tiler's ``mosaic_reader`` reads them in that order onto the tile's grid, each pixel taken
from the first sheet that has it (``FirstMethod``), and stops as soon as the tile is full. So a tile
over several sheets is one seamless image, and per area the latest sheet at or before the requested
time wins: where the newest acquisition has no sheet, or its sheet file is missing, the previous
acquisition shows through.

A sheet finer than the caller's resolution cap is read from its finest overview no finer than the
cap (or not at all). A sheet that cannot be read is logged and skipped; if the tile then lacks
pixels where that sheet lies, the tile is a generic 500 (``RasterReadError``) rather than a hole.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import morecantile
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds
from rio_tiler.errors import EmptyMosaicError, RioTilerError, TileOutsideBounds
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader

from server.assets import asset_path
from server.catalog import RasterAsset
from server.extents import as_bbox
from server.policy.rasters import SLACK, ground_resolution_m, within_resolution
from server.raster.store import RasterReadError, RasterStore
from server.sheets import Sheet

log = logging.getLogger("onemap.raster")


def sheet_path(data_dir: Path, sheet: Sheet) -> Path:
    """The file of a sheet, inside the data directory."""
    return asset_path(data_dir, RasterAsset(id=sheet.name, path=sheet.path, datetime=sheet.datetime))


def capped_level(store: RasterStore, path: Path, cap_m: float | None) -> int | None | bool:
    """The overview level to read a sheet from under ``cap_m``: None (full size), a level, or False
    (no overview is coarse enough: the sheet is not served)."""
    if cap_m is None or within_resolution(path, cap_m):
        return None
    native = ground_resolution_m(path)
    factors = store.open(path).overviews
    return next((i for i, f in enumerate(factors) if native * f >= cap_m * SLACK), False)


def _hole(img: ImageData, tms: morecantile.TileMatrixSet, tile: morecantile.Tile, sheet: Sheet) -> bool:
    """Whether the tile lacks pixels anywhere inside ``sheet``'s bounds."""
    left, bottom, right, top = as_bbox(tms.xy_bounds(tile))
    x0, y0, x1, y1 = transform_bounds("EPSG:4326", tms.rasterio_crs, *sheet.bounds)
    height, width = img.mask.shape
    c0, c1 = (max(0, min(width, round((x - left) / (right - left) * width))) for x in (x0, x1))
    r0, r1 = (max(0, min(height, round((top - y) / (top - bottom) * height))) for y in (y1, y0))
    return c1 > c0 and r1 > r0 and not img.mask[r0:r1, c0:c1].all()


def read_tile(store: RasterStore, data_dir: Path, sheets: list[Sheet], tms: morecantile.TileMatrixSet,
              tile: morecantile.Tile, read: Any, cap_m: float | None) -> tuple[ImageData | None, list[str]]:
    """The tile over ``sheets`` (newest first) and the acquisitions it shows, newest first; (None, [])
    where no sheet has data. ``read(path, level)`` reads one sheet onto the tile (None outside it)."""
    failed: list[Sheet] = []

    def one(sheet: Sheet, *_args: Any, **_kwargs: Any) -> ImageData:
        path = sheet_path(data_dir, sheet)
        try:
            level = capped_level(store, path, cap_m)
            img = None if level is False else read(path, level)
        except (RasterReadError, RasterioError, RioTilerError, OSError, ValueError) as exc:
            log.error("imagery sheet %s/%s unreadable: %s", sheet.acquisition, sheet.name, exc)
            failed.append(sheet)
            img = None
        if img is None:
            raise TileOutsideBounds(sheet.name)
        return img

    if not sheets:
        return None, []
    try:
        img, used = mosaic_reader(sheets, one, threads=0)
    except EmptyMosaicError:
        if failed:
            raise RasterReadError() from None
        return None, []
    if any(_hole(img, tms, tile, s) for s in failed):
        raise RasterReadError()
    return img, list(dict.fromkeys(s.acquisition for s in used))
