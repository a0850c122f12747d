"""The tile matrix sets the server offers, all as morecantile models.

``CGCS2000Quad`` is the Tianditu ``c`` grid: EPSG:4490, origin (-180, 90), 256 px tiles, two by one
tiles at its first level. Its matrix ids are Tianditu's levels "1".."18", so level N of this grid is
matrix N-1 of WorldCRS84Quad (same cell size, same tiles). Cell sizes are exact; scale denominators
follow the OGC 0.28 mm pixel, whereas Tianditu's published scales assume a 0.0254/96 m pixel.
"""

from __future__ import annotations

from functools import lru_cache

import morecantile

from server.errors import InvalidParameter, NotFound

CGCS2000_ID = "CGCS2000Quad"
# metres per degree on the CGCS2000 ellipsoid's equator (semi-major axis 6378137 m)
_METRES_PER_DEGREE = 2 * 3.141592653589793 * 6378137 / 360
_OGC_PIXEL_M = 0.00028


def _cgcs2000_quad() -> morecantile.TileMatrixSet:
    matrices = []
    for level in range(1, 19):
        cell = 0.703125 / 2 ** (level - 1)
        matrices.append(
            {
                "id": str(level),
                "scaleDenominator": cell * _METRES_PER_DEGREE / _OGC_PIXEL_M,
                "cellSize": cell,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [90.0, -180.0],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 2**level,
                "matrixHeight": 2 ** (level - 1),
            }
        )
    return morecantile.TileMatrixSet.model_validate(
        {
            "id": CGCS2000_ID,
            "title": "CGCS2000 geographic quad (Tianditu c grid, levels 1-18)",
            "uri": None,
            "crs": "http://www.opengis.net/def/crs/EPSG/0/4490",
            "orderedAxes": ["Lat", "Lon"],
            "tileMatrices": matrices,
        }
    )


@lru_cache(maxsize=1)
def registry() -> morecantile.defaults.TileMatrixSets:
    """The offered tile matrix sets by id."""
    base = morecantile.tms.get("WebMercatorQuad"), morecantile.tms.get("WorldCRS84Quad")
    return morecantile.defaults.TileMatrixSets({t.id: t for t in (*base, _cgcs2000_quad())})


def tms_ids() -> list[str]:
    """Ids of the offered tile matrix sets."""
    return list(registry().list())


def get_tms(tms_id: str) -> morecantile.TileMatrixSet:
    """The tile matrix set with this id, or a 404 naming it."""
    try:
        return registry().get(tms_id)
    except (KeyError, morecantile.errors.InvalidIdentifier):
        raise NotFound(f"Tile matrix set '{tms_id}' is not offered; offered: {', '.join(tms_ids())}.") from None


def id_of(tms: morecantile.TileMatrixSet) -> str:
    """The id of an offered tile matrix set (the registry holds only sets that have one)."""
    if tms.id is None:
        raise ValueError("a tile matrix set without an id is not offered")
    return tms.id


def tms_uri(tms: morecantile.TileMatrixSet, base: str) -> str:
    """The reference a tileset gives its set (``tileMatrixSetURI``): the registered OGC URI (WebMercatorQuad,
    WorldCRS84Quad), else the set's definition on this server (CGCS2000Quad). Clients such as GDAL's OGCAPI
    driver pick a set by the name in this reference."""
    return tms.uri or f"{base}/tileMatrixSets/{tms.id}"


def check_tile(tms: morecantile.TileMatrixSet, z: int, row: int, col: int) -> morecantile.Tile:
    """The tile at (z, row, col) if it exists in the grid; a 400 naming the bad value otherwise."""
    if not tms.minzoom <= z <= tms.maxzoom:
        raise InvalidParameter(
            f"Tile matrix '{z}' is not in {tms.id} (levels {tms.minzoom}-{tms.maxzoom})."
        )
    matrix = tms.matrix(z)
    if not 0 <= row < matrix.matrixHeight:
        raise InvalidParameter(f"Tile row {row} is outside 0-{matrix.matrixHeight - 1} at level {z}.")
    if not 0 <= col < matrix.matrixWidth:
        raise InvalidParameter(f"Tile column {col} is outside 0-{matrix.matrixWidth - 1} at level {z}.")
    return morecantile.Tile(col, row, z)


def srid(tms: morecantile.TileMatrixSet) -> int:
    """EPSG code of the grid's CRS (4326 for CRS84)."""
    return tms.rasterio_crs.to_epsg() or 4326
