"""Sample rasters for the sample county: two imagery acquisitions and a DEM, as real COGs.

Footprints and resolutions (``scale=1``, what ``onemap sample`` writes):

* Imagery, EPSG:3857, RGB uint8, JPEG (YCbCr, quality 85) in 256 px internal tiles with overviews.
  Pixels are WebMercatorQuad level-17 cells (1.194 m on the grid, 1.04 m on the ground at 29.85N)
  and the grid is aligned on level-13 tiles: a "web-optimized" COG, so WebMercatorQuad tiles read
  whole internal blocks with no resampling, while other grids are warped on the fly. The footprint
  is one level-13 tile (4096 x 4096 px, about 4.2 x 4.2 km north-west of the county centre,
  121.509-121.553E, 29.841-29.879N): the whole county at 1 m would be about 640 Mpx per date, far
  too much to draw in seconds, and drawing coarser then upsampling would not be 1 m imagery. Each
  acquisition is a mosaic: the image split into a grid of COG sheets (2 x 2 by default,
  ``ONEMAP_SAMPLE_SHEETS`` or ``onemap sample --sheets`` for more), registered in the sheet index
  ``rasters/imagery.sheets.sqlite`` (``server.sheets``). Every
  feature is drawn at 1 m: the town, villages, fields, ponds, roads, the river and, in May 2024
  only, the cleared and partly built development zone north-east of the town. Both dates and the
  DEM take about 15 s on one core.
* DEM, EPSG:4549 (CGCS2000 / 3-degree Gauss-Kruger CM 120E), float32 metres, DEFLATE with the
  floating-point predictor, 10 m over the whole county (121.40-121.70E, 29.75-29.95N).

``scale`` (a power of two) coarsens every pixel by that factor over the same footprints; tests use
it to stay fast. Output is deterministic: the same call writes the same pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import morecantile
import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from server.raster import landscape
from server.sheets import SheetIndex

COUNTY_BBOX = (121.40, 29.75, 121.70, 29.95)
IMAGERY_TILES_Z13 = ((6861, 3383),)  # (x, y) of WebMercatorQuad level-13 tiles
IMAGERY_LEVEL = 17
DEM_CRS = "EPSG:4549"
DEM_PIXEL_M = 10.0
DEM_NODATA = -9999.0

# (asset id, folder of its sheets relative to the data dir, acquisition time, season index for landscape)
IMAGERY_ASSETS = (
    ("imagery_20231115", "rasters/imagery_20231115", "2023-11-15T02:40:00Z", 0),
    ("imagery_20240518", "rasters/imagery_20240518", "2024-05-18T02:35:00Z", 1),
)
IMAGERY_INDEX = "rasters/imagery.sheets.sqlite"  # the sheet index of the imagery mosaic
DEM_ASSET = ("dem_2023", "rasters/dem_2023.tif", "2023-06-30T00:00:00Z")

_MERC_R = 6378137.0
_STRIP = 512


def _imagery_grid(scale: int) -> tuple[rasterio.Affine, int, int]:
    """Transform, width and height of the imagery grid at ``scale``."""
    tms = morecantile.tms.get("WebMercatorQuad")
    xs = [x for x, _ in IMAGERY_TILES_Z13]
    ys = [y for _, y in IMAGERY_TILES_Z13]
    left, _, _, top = tms.xy_bounds(morecantile.Tile(min(xs), min(ys), 13))
    pixel = tms.matrix(IMAGERY_LEVEL).cellSize * scale
    per_tile = 256 * 2 ** (IMAGERY_LEVEL - 13) // scale
    width = (max(xs) - min(xs) + 1) * per_tile
    height = (max(ys) - min(ys) + 1) * per_tile
    return from_origin(left, top, pixel, pixel), width, height


def _dem_grid(scale: int) -> tuple[rasterio.Affine, int, int]:
    """Transform, width and height of the DEM grid at ``scale``, covering the county bbox."""
    to_gk = Transformer.from_crs("EPSG:4326", DEM_CRS, always_xy=True)
    left, bottom, right, top = to_gk.transform_bounds(*COUNTY_BBOX)
    pixel = DEM_PIXEL_M * scale
    left, top = math.floor(left / pixel) * pixel, math.ceil(top / pixel) * pixel
    width = math.ceil((right - left) / pixel)
    height = math.ceil((top - bottom) / pixel)
    return from_origin(left, top, pixel, pixel), width, height


def _cog_profile(**extra) -> dict:
    return {"driver": "COG", "blocksize": 256, "bigtiff": "IF_SAFER", "num_threads": "ALL_CPUS", **extra}


def _sheet_windows(width: int, height: int, sheets: int) -> list[tuple[str, Window]]:
    """The grid of ``sheets`` x ``sheets`` windows splitting the image, named r<row>c<col>."""
    if width % sheets or height % sheets:
        raise ValueError(f"a {width} x {height} px image does not split into {sheets} x {sheets} equal sheets")
    w, h = width // sheets, height // sheets
    return [(f"r{r}c{c}", Window(c * w, r * h, w, h)) for r in range(sheets) for c in range(sheets)]


def _write_imagery(folder: Path, season: int, when: str, scale: int, sheets: int) -> list[tuple[str, Path]]:
    """Write one acquisition as ``sheets`` x ``sheets`` COG sheets in ``folder`` (the pixels of one image,
    split); returns (sheet name, path) of each."""
    transform, width, height = _imagery_grid(scale)
    cols = transform.c + (np.arange(width) + 0.5) * transform.a
    lon = np.degrees(cols / _MERC_R)
    grid = _sheet_windows(width, height, sheets)
    profile = _cog_profile(count=3, dtype="uint8", crs="EPSG:3857", compress="JPEG", quality=85,
                           overview_resampling="average")
    folder.mkdir(parents=True, exist_ok=True)
    tmps = {name: folder / f".{name}.{os.getpid()}.tmp" for name, _ in grid}
    outs = {name: rasterio.open(tmps[name], "w", width=win.width, height=win.height,
                                transform=window_transform(win, transform), **profile)
            for name, win in grid}
    try:
        for row in range(0, height, _STRIP):
            rows = min(_STRIP, height - row)
            ys = transform.f - (np.arange(row, row + rows) + 0.5) * (-transform.e)
            lat = np.degrees(np.arctan(np.sinh(ys / _MERC_R)))
            strip = landscape.imagery_strip(lon, lat, season, seed=1000 * season + row)
            for name, win in grid:
                top, bottom = max(row, win.row_off), min(row + rows, win.row_off + win.height)
                if top < bottom:
                    part = strip[:, top - row:bottom - row, win.col_off:win.col_off + win.width]
                    outs[name].write(part, window=Window(0, top - win.row_off, win.width, bottom - top))
        for dst in outs.values():
            dst.descriptions = ("red", "green", "blue")
            dst.update_tags(ACQUISITION_DATETIME=when, PRODUCT="orthophoto RGB")
            dst.close()
        for name in tmps:
            os.replace(tmps[name], folder / f"{name}.tif")
    finally:
        for dst in outs.values():
            dst.close()
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    return [(name, folder / f"{name}.tif") for name, _ in grid]


def _write_dem(path: Path, when: str, scale: int) -> None:
    transform, width, height = _dem_grid(scale)
    # geographic positions of every 16th pixel, interpolated between (the projection is smooth)
    step = 16
    cols = transform.c + (np.arange(0, width + 2 * step, step) + 0.5) * transform.a
    rows = transform.f + (np.arange(0, height + 2 * step, step) + 0.5) * transform.e
    gx, gy = np.meshgrid(cols, rows)
    lon, lat = Transformer.from_crs(DEM_CRS, "EPSG:4326", always_xy=True).transform(gx, gy)
    e, n = (a.astype(np.float32) for a in landscape.to_ground(lon, lat))
    e = landscape.resize(e, (height, width), step, smooth=False)
    n = landscape.resize(n, (height, width), step, smooth=False)
    heights = landscape.elevation(e, n)
    profile = _cog_profile(
        width=width, height=height, count=1, dtype="float32", crs=DEM_CRS, transform=transform,
        compress="DEFLATE", predictor=3, nodata=DEM_NODATA, overview_resampling="average",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(heights, 1)
        dst.descriptions = ("elevation",)
        dst.units = ("metre",)
        dst.update_tags(ACQUISITION_DATETIME=when, PRODUCT="DEM", VERTICAL_DATUM="1985 National Height Datum")


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write to a temporary name beside ``path`` and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _register(data_dir: Path, acquisitions: list[tuple[str, str, list[tuple[str, Path]]]]) -> Path:
    """Write the imagery sheet index afresh (aside, then renamed) listing the sample's sheets."""
    index_path = Path(data_dir) / IMAGERY_INDEX
    root = Path(data_dir).resolve()

    def write(tmp: Path) -> None:
        index = SheetIndex(tmp)
        for asset_id, when, sheets in acquisitions:
            index.add(root, asset_id, when, [(name, str(p.resolve().relative_to(root))) for name, p in sheets])

    return _atomic(index_path, write)


def sample_sheets() -> int:
    """The side of the sample's sheet grid: ``ONEMAP_SAMPLE_SHEETS`` (default 2: 2 x 2 sheets)."""
    value = os.environ.get("ONEMAP_SAMPLE_SHEETS", "2")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"ONEMAP_SAMPLE_SHEETS must be a positive integer, not '{value}'")
    return int(value)


def write_sample_rasters(
    data_dir: Path, progress: Callable[[str], None] | None = None, *, scale: int = 1, sheets: int | None = None
) -> list[Path]:
    """Write the imagery (two acquisitions, each ``sheets`` x ``sheets`` COG sheets and their index) and
    the DEM COG under ``data_dir/rasters``.

    ``progress`` is called with a short message before each acquisition. ``scale`` (1, 2, 4, ... 32)
    coarsens the pixels over the same footprints (tests use 8 or 16); ``sheets`` defaults to
    ``sample_sheets()``. Returns the written paths.
    """
    if scale < 1 or scale > 32 or scale & (scale - 1):
        raise ValueError("scale must be a power of two between 1 and 32")
    side = sheets or sample_sheets()
    say = progress or (lambda _msg: None)
    written: list[Path] = []
    acquisitions = []
    for asset_id, rel, when, season in IMAGERY_ASSETS:
        say(f"raster {asset_id} ({side} x {side} sheets)")
        parts = _write_imagery(Path(data_dir) / rel, season, when, scale, side)
        acquisitions.append((asset_id, when, parts))
        written += [p for _, p in parts]
    written.append(_register(data_dir, acquisitions))
    asset_id, rel, when = DEM_ASSET
    say(f"raster {asset_id}")
    written.append(_atomic(Path(data_dir) / rel, lambda p: _write_dem(p, when, scale)))
    return written
