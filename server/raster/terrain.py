"""Cesium terrain for a DEM collection: ``layer.json``, tile availability and the mesh tiles.

Levels run from 0 to the first level whose lattice spacing reaches the DEM's resolution. Level 0
lists both root tiles (Cesium needs them); deeper levels list the tiles touching the DEM's extent.
Parts of a tile outside the DEM are at height 0 (the ellipsoid).
"""

from __future__ import annotations

import math
from typing import Any

from server.catalog import RasterCollection
from server.errors import InvalidParameter, NotFound
from server.policy.model import Restriction
from server.raster import mesh
from server.raster.assets import readable
from server.raster.store import RasterStore

MEDIA = "application/vnd.quantized-mesh"
NORMALS = "octvertexnormals"


def wants_normals(accept: str) -> bool:
    """Whether an ``Accept`` header asks for the ``octvertexnormals`` extension, as CesiumJS does
    (``application/vnd.quantized-mesh;extensions=octvertexnormals-watermask``)."""
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != MEDIA:
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "extensions" and NORMALS in value.strip().strip('"').lower().split("-"):
                return True
    return False


def max_level(collection: RasterCollection) -> int:
    """The deepest level: lattice spacing (at 30 degrees latitude) no finer than the DEM."""
    spacing0 = 180.0 / mesh.GRID * 111_320.0 * math.cos(math.radians(30))
    return max(0, math.ceil(math.log2(spacing0 / collection.raster.resolution_m)))


def _span(bbox: tuple[float, float, float, float], z: int) -> dict[str, int]:
    size = 180.0 / 2**z
    west, south, east, north = bbox
    last_x, last_y = 2 ** (z + 1) - 1, 2**z - 1
    return {
        "startX": max(0, int((west + 180.0) // size)),
        "startY": max(0, int((south + 90.0) // size)),
        "endX": min(last_x, int((east + 180.0) // size)),
        "endY": min(last_y, int((north + 90.0) // size)),
    }


def available(collection: RasterCollection) -> list[list[dict[str, int]]]:
    """Per level, the ranges of tiles (TMS rows) that exist."""
    bbox = collection.extent.spatial.bbox
    levels = [[{"startX": 0, "startY": 0, "endX": 1, "endY": 0}]]
    return levels + [[_span(bbox, z)] for z in range(1, max_level(collection) + 1)]


def layer_json(collection: RasterCollection, version: str) -> dict[str, Any]:
    """The ``layer.json`` CesiumJS reads before any terrain tile."""
    return {
        "tilejson": "2.1.0",
        "name": collection.id,
        "description": collection.description.en,
        "version": "1.0.0",
        "format": "quantized-mesh-1.0",
        "scheme": "tms",
        "projection": "EPSG:4326",
        "tiles": ["{z}/{x}/{y}.terrain?v={version}"],
        "bounds": [-180.0, -90.0, 180.0, 90.0],
        "minzoom": 0,
        "maxzoom": max_level(collection),
        "available": available(collection),
        "extensions": [NORMALS],
        "attribution": "OneMap",
        "dataVersion": version,
    }


def check_tile(collection: RasterCollection, z: int, x: int, y: int) -> None:
    """400 for a tile outside the grid, 404 for one outside the available ranges."""
    if z < 0 or z > max_level(collection):
        raise InvalidParameter(f"Terrain level {z} is outside 0-{max_level(collection)}.")
    if not (0 <= x < 2 ** (z + 1) and 0 <= y < 2**z):
        raise InvalidParameter(f"Terrain tile {z}/{x}/{y} is outside the grid of level {z}.")
    for r in available(collection)[z]:
        if r["startX"] <= x <= r["endX"] and r["startY"] <= y <= r["endY"]:
            return
    raise NotFound(f"Terrain tile {z}/{x}/{y} has no data in '{collection.id}'.")


def read_tile(store: RasterStore, path: str, collection: RasterCollection, z: int, x: int, y: int, *,
              restriction: Restriction, normals: bool = False) -> bytes:
    """Build one quantized-mesh tile of ``path``, an asset of ``collection`` (runs in the raster pool),
    with vertex normals when asked; no level finer than the caller's ``restriction`` allows is built."""
    check_tile(readable(collection, restriction=restriction), z, x, y)
    full = store.overview(path, None)
    level = mesh.overview_for(full, z)
    return mesh.terrain_tile(store.overview(path, level), z, x, y, normals)
