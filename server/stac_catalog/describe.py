"""What the STAC items say about a COG, read from the file itself (cached until the file changes)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import transform_geom
from shapely.geometry import Polygon, box, mapping

from server.assets import GDAL_DEFAULTS, apply_gdal_limits
from server.extents import as_bbox


@dataclass(frozen=True)
class CogInfo:
    """Georeferencing, bands and a few statistics of one COG."""

    epsg: int | None
    crs_wkt: str
    shape: tuple[int, int]
    transform: tuple[float, ...]
    native_bbox: tuple[float, float, float, float]
    footprint: dict  # GeoJSON polygon in CRS84
    bbox: tuple[float, float, float, float]
    dtype: str
    nodata: float | None
    count: int
    overviews: tuple[int, ...]  # decimation factors of the internal overviews, finest first
    stats: tuple[tuple[float, float, float], ...]  # (min, max, mean) per band, from the smallest overview
    size: int


def _stats(src: rasterio.io.DatasetReader) -> tuple[tuple[float, float, float], ...]:
    factor = (src.overviews(1) or [1])[-1]
    out_shape = (src.count, max(1, src.height // factor), max(1, src.width // factor))
    data = src.read(out_shape=out_shape, masked=True).astype(np.float64)
    return tuple((float(b.min()), float(b.max()), float(b.mean())) for b in data)


@lru_cache(maxsize=64)
def _describe(path: str | Path, key: tuple) -> CogInfo:
    with rasterio.open(path) as src:
        native = box(*src.bounds)
        footprint = transform_geom(src.crs, "EPSG:4326", mapping(native))
        geo = Polygon(footprint["coordinates"][0])  # the transformed box: one ring
        rounded = {"type": "Polygon", "coordinates": [[[round(x, 7), round(y, 7)] for x, y in geo.exterior.coords]]}
        return CogInfo(
            epsg=src.crs.to_epsg(),
            crs_wkt=src.crs.to_wkt(),
            shape=(src.height, src.width),
            transform=tuple(src.transform)[:6],
            native_bbox=tuple(src.bounds),
            footprint=rounded,
            bbox=as_bbox(round(v, 7) for v in geo.bounds),
            dtype=src.dtypes[0],
            nodata=src.nodata,
            count=src.count,
            overviews=tuple(src.overviews(1)),
            stats=_stats(src),
            size=key[0],
        )


def describe(path: str | Path) -> CogInfo:
    """The description of the COG at ``path``; re-read when the file changes. A remote COG (its GDAL
    virtual file system name, ``/vsis3/...``) is read once per process and its size is not known (0)."""
    if str(path).startswith("/vsi"):
        apply_gdal_limits()  # HTTP timeouts and retries: an unreachable store fails, never hangs
        with rasterio.Env(**GDAL_DEFAULTS):
            return _describe(str(path), (0, 0, 0))
    st = Path(path).stat()
    return _describe(path, (st.st_size, st.st_mtime_ns, st.st_ino))
