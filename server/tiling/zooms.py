"""Zoom levels across grids, and the per-tile generalization a collection asks for.

Collections declare ``tiles.minzoom``/``maxzoom`` as WebMercatorQuad levels. A matrix of another grid
is matched to the WebMercatorQuad level with the nearest ground resolution at the equator (metres
per pixel; one degree = 2*pi*6378137/360 m). So WorldCRS84Quad matrix N is WebMercatorQuad level
N+1 and CGCS2000Quad (Tianditu ``c``) level N is WebMercatorQuad level N, as for Tianditu's ``w``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import morecantile
from morecantile.utils import meters_per_unit

from server.catalog import VectorCollection
from server.extents import as_bbox
from server.sources.base import TileRequest
from server.tiling.matrix_sets import get_tms, srid

WMQ_PX0 = 2 * math.pi * 6378137 / 256  # metres per pixel at WebMercatorQuad level 0


@lru_cache(maxsize=64)
def grid_facts(tms_id: str) -> tuple[int, float]:
    """EPSG code and metres per CRS unit of an offered tile matrix set."""
    tms = get_tms(tms_id)
    return srid(tms), meters_per_unit(tms.crs._pyproj_crs)


@lru_cache(maxsize=1024)
def _level(tms_id: str, z: int) -> int:
    metres = get_tms(tms_id).matrix(z).cellSize * grid_facts(tms_id)[1]
    return round(math.log2(WMQ_PX0 / metres))


def wmq_level(tms: morecantile.TileMatrixSet, z: int) -> int:
    """The WebMercatorQuad level whose resolution is nearest to matrix ``z`` of ``tms``."""
    return _level(tms.id, z)


def visible(collection: VectorCollection, tms: morecantile.TileMatrixSet, z: int) -> bool:
    """Whether the collection is drawn at matrix ``z`` of ``tms``."""
    level = wmq_level(tms, z)
    return collection.tiles.minzoom <= level <= collection.tiles.maxzoom


def matrix_range(collection: VectorCollection, tms: morecantile.TileMatrixSet) -> tuple[int, int] | None:
    """The first and last matrix of ``tms`` where the collection is drawn, or None."""
    levels = [z for z in range(tms.minzoom, tms.maxzoom + 1) if visible(collection, tms, z)]
    return (levels[0], levels[-1]) if levels else None


def tile_request(
    collection: VectorCollection, tms: morecantile.TileMatrixSet, tile: morecantile.Tile, properties: tuple[str, ...]
) -> TileRequest:
    """The layer request for one collection in one tile, with its generalization in tile CRS units."""
    spec = collection.tiles
    bounds = as_bbox(tms.xy_bounds(tile))
    pixel = (bounds[2] - bounds[0]) / tms.matrix(tile.z).tileWidth
    return TileRequest(
        bounds=bounds,
        srid=grid_facts(tms.id)[0],
        extent=spec.extent,
        buffer=max(1, spec.extent // 64),
        simplify=spec.simplify_px * pixel,
        min_area=spec.min_area_px * pixel * pixel,
        max_features=spec.max_features,
        properties=properties,
        zoom=wmq_level(tms, tile.z),
    )
