"""CGCS2000 without the per-request cost of looking up a datum transformation.

Between CGCS2000 (EPSG:4490 and its projections such as EPSG:4549) and WGS 84, PROJ has no
published transformation and falls back to a null ("ballpark") one, but only after searching its
database for candidates: 40-100 ms every time GDAL builds a warper for a tile. The two datums agree
to a few centimetres, below a pixel at every level served. So a CGCS2000 COG is opened through
GDAL's ``vrt://`` connection with the same projection on an explicit null datum shift
(``+towgs84=0,0,0``), and CGCS2000 tile grids are read in the equivalent definition: the pixels are
exactly those of the null transformation PROJ would pick, without the search.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pyproj import CRS as ProjCRS
from rasterio.crs import CRS

_CGCS2000 = ("China 2000", "China Geodetic Coordinate System 2000")  # PROJ's datum names


@lru_cache(maxsize=64)
def _fast_proj4(wkt: str) -> str | None:
    crs = ProjCRS.from_wkt(wkt)
    datum = crs.geodetic_crs.datum.name if crs.geodetic_crs and crs.geodetic_crs.datum else ""
    if datum not in _CGCS2000:
        return None
    proj4 = crs.to_proj4().replace(" +type=crs", "")
    return f"{proj4} +towgs84=0,0,0"


def fast_equivalent(crs: CRS) -> CRS:
    """``crs`` itself, or for a CGCS2000-based CRS the same definition on a null datum shift."""
    proj4 = _fast_proj4(crs.to_wkt())
    return CRS.from_proj4(proj4) if proj4 else crs


def open_name(path: str | Path, crs: CRS | None, overview: int | None = None) -> str:
    """What to pass to ``rasterio.open`` for a file whose CRS is ``crs``, optionally at one overview
    level (GDAL's ``vrt://`` connection: ``a_srs`` overrides the CRS, ``ovr`` picks the level)."""
    proj4 = _fast_proj4(crs.to_wkt()) if crs else None
    options = [f"a_srs={proj4}"] if proj4 else []
    if overview is not None:
        options.append(f"ovr={overview}")
    return f"vrt://{path}?{'&'.join(options)}" if options else str(path)
