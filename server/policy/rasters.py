"""Imagery resolution limits: the ground resolution of a raster file, and coarsening a COG to a cap.

The ground resolution is measured on the ellipsoid (pyproj ``Geod``) between the centre pixel and
its east and north neighbours, so it is right in any CRS (Web Mercator pixels at 30N are 0.87 of
their nominal size). A file is within a cap when its pixels are no finer than the cap (1% slack).
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import rasterio
from pyproj import Geod, Transformer
from rasterio.enums import Resampling
from rasterio.shutil import copy as rio_copy
from rasterio.vrt import WarpedVRT

GEOD = Geod(ellps="GRS80")  # the CGCS2000 ellipsoid, to well under a millimetre
SLACK = 0.99


def ground_resolution_m(path: str | Path) -> float:
    """The finer of the east-west and north-south ground sizes of one pixel near the centre, in metres
    (of a local file, or of a remote one named by its GDAL virtual file system name, ``/vsis3/...``)."""
    if str(path).startswith("/vsi"):
        return _resolution(str(path), 0, 0)
    stat = os.stat(path)
    return _resolution(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _resolution(path: str, _mtime: int, _size: int) -> float:
    with rasterio.open(path) as src:
        to_lonlat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        col, row = src.width / 2, src.height / 2
        pts = [src.transform * (col, row), src.transform * (col + 1, row), src.transform * (col, row + 1)]
    (x0, y0), (x1, y1), (x2, y2) = (to_lonlat.transform(x, y) for x, y in pts)
    east = GEOD.inv(x0, y0, x1, y1)[2]
    north = GEOD.inv(x0, y0, x2, y2)[2]
    return min(east, north)


def within_resolution(path: str | Path, cap_m: float | None) -> bool:
    """Whether a file's pixels are no finer than ``cap_m`` (always, when there is no cap)."""
    return cap_m is None or ground_resolution_m(path) >= cap_m * SLACK


def coarsen_cog(src_path: Path, dst_path: Path, cap_m: float) -> float:
    """Write ``dst_path``: the COG resampled (average) so that its pixels are no finer than ``cap_m``.

    Same CRS and footprint, pixel size scaled by a power-of-two-free factor ``cap / resolution``
    (rounded up to keep within the cap). Returns the new ground resolution.
    """
    native = ground_resolution_m(src_path)
    factor = max(1.0, cap_m / native) * 1.0001
    with rasterio.open(src_path) as src:
        width, height = max(1, math.floor(src.width / factor)), max(1, math.floor(src.height / factor))
        transform = src.transform * src.transform.scale(src.width / width, src.height / height)
        compress = str(src.profile.get("compress") or "DEFLATE").upper()
        options = {"COMPRESS": compress, "BLOCKSIZE": 256, "OVERVIEW_RESAMPLING": "AVERAGE"}
        if compress == "JPEG":
            options["QUALITY"] = 85
        elif src.dtypes[0].startswith("float"):
            options["PREDICTOR"] = "FLOATING_POINT"
        with WarpedVRT(src, crs=src.crs, transform=transform, width=width, height=height,
                       resampling=Resampling.average, nodata=src.nodata) as vrt:
            dst_path.parent.mkdir(parents=True, exist_ok=True)
            rio_copy(vrt, dst_path, driver="COG", **options)
    return ground_resolution_m(dst_path)
