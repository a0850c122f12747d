"""Heights from a DEM file at lon/lat points: bilinear between pixel centres, 0 where there is no data.

Terrain meshes (``server.raster``) and 3D buildings standing on the terrain (``server.threed``) both
sample the DEM here, so a building's base is at the height the terrain tile shows under it.
``dem_dataset`` opens a DEM no finer than a resolution cap (an edition's limit), on its overviews.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.windows import Window

from server.policy.rasters import SLACK, ground_resolution_m

_WGS84 = "+proj=longlat +ellps=WGS84 +no_defs"


@lru_cache(maxsize=16)
def _to_dataset(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(_WGS84, crs_wkt, always_xy=True)


def dem_dataset(path: Path, cap_m: float | None) -> rasterio.io.DatasetReader | None:
    """``path`` opened on its finest level whose pixels are no finer than ``cap_m`` (the full image
    without a cap), or ``None`` when no level is that coarse. The caller closes it."""
    native = ground_resolution_m(path)
    if cap_m is None or native >= cap_m * SLACK:
        return rasterio.open(path)
    with rasterio.open(path) as probe:
        factors = probe.overviews(1)
    level = next((i for i, f in enumerate(factors) if native * f >= cap_m * SLACK), None)
    return None if level is None else rasterio.open(path, overview_level=level)


def heights_at(src: rasterio.io.DatasetReader, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Bilinear heights (m, float32) of ``src`` at the points ``lon``, ``lat`` (arrays of one shape);
    0 outside the data and where it is nodata."""
    with np.errstate(invalid="ignore", over="ignore"):
        xs, ys = _to_dataset(src.crs.to_wkt()).transform(lon, lat, errcheck=False)
        cols, rows = ~src.transform * (np.asarray(xs), np.asarray(ys))
    cols, rows = cols - 0.5, rows - 0.5  # pixel centres at integer positions
    inside = np.isfinite(cols) & np.isfinite(rows)
    inside &= (cols > -1) & (cols < src.width) & (rows > -1) & (rows < src.height)
    heights = np.zeros(np.shape(lon), np.float64)
    if not inside.any():
        return heights.astype(np.float32)
    cols, rows = cols[inside], rows[inside]
    c0, r0 = int(math.floor(cols.min())), int(math.floor(rows.min()))
    width, height = int(math.floor(cols.max())) - c0 + 2, int(math.floor(rows.max())) - r0 + 2
    nodata = src.nodata if src.nodata is not None else -9999.0
    block = src.read(1, window=Window(c0, r0, width, height), boundless=True, fill_value=nodata)
    block = np.where(block == nodata, 0.0, block.astype(np.float64))
    fc, fr = cols - c0, rows - r0
    ic, ir = np.floor(fc).astype(int), np.floor(fr).astype(int)
    wc, wr = fc - ic, fr - ir
    top = block[ir, ic] * (1 - wc) + block[ir, ic + 1] * wc
    bottom = block[ir + 1, ic] * (1 - wc) + block[ir + 1, ic + 1] * wc
    heights[inside] = top * (1 - wr) + bottom * wr
    return heights.astype(np.float32)
