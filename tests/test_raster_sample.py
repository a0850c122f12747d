"""The sample rasters are real COGs with plausible, deterministic content."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import rasterio
from rasterio.merge import merge
from rasterio.windows import from_bounds

from server.raster.sample import DEM_ASSET, IMAGERY_ASSETS, IMAGERY_INDEX, write_sample_rasters
from server.sheets import SheetIndex
from tests.support.rasters import SCALE, SHEETS


def _sheets(paths, acquisition: int) -> list:
    return [p for p in paths if p.parent.name == IMAGERY_ASSETS[acquisition][0]]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("sample_rasters")
    messages = []
    paths = write_sample_rasters(data_dir, progress=messages.append, scale=SCALE)
    return data_dir, paths, messages


def test_writes_three_cogs_with_tiles_and_overviews(written):
    data_dir, paths, messages = written
    sheets = [f"{a[1]}/{s}.tif" for a in IMAGERY_ASSETS for s in SHEETS]
    assert [p.relative_to(data_dir).as_posix() for p in paths] == [*sheets, IMAGERY_INDEX, DEM_ASSET[1]]
    assert len(messages) == 3
    index = SheetIndex(data_dir / IMAGERY_INDEX)
    assert [(a.id, a.datetime) for a in index.acquisitions()] == [(a[0], a[2]) for a in IMAGERY_ASSETS]
    assert [s.path for s in index.sheets()] == sheets
    for path in [p for p in paths if p.suffix == ".tif"]:
        with rasterio.open(path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.block_shapes[0] == (256, 256)
            assert src.overviews(1) or max(src.shape) <= 256, "COGs beyond one block carry internal overviews"
            assert src.tags()["ACQUISITION_DATETIME"]


def test_imagery_is_rgb_about_1m_in_web_mercator(written):
    _, paths, _ = written
    for path in _sheets(paths, 0):
        with rasterio.open(path) as src:
            assert (src.count, src.dtypes[0], src.crs.to_epsg()) == (3, "uint8", 3857)
            assert src.compression.value == "JPEG"
            # level-17 cells: 1.194 m on the grid at scale 1; a quarter of one level-13 tile per sheet
            assert src.res[0] == pytest.approx(1.194328566955879 * SCALE)
            assert src.width == src.height == 4096 // SCALE // 2
    whole, _ = merge([str(p) for p in _sheets(paths, 0)])
    assert whole.shape == (3, 4096 // SCALE, 4096 // SCALE), "the sheets tile the footprint"


def test_dem_is_float_metres_in_cgcs2000_gk(written):
    _, paths, _ = written
    with rasterio.open(paths[-1]) as src:
        assert (src.count, src.dtypes[0], src.crs.to_epsg(), src.nodata) == (1, "float32", 4549, -9999.0)
        dem = src.read(1)
        assert src.res[0] == 10.0 * SCALE
        h, w = dem.shape
        south_east, north_west = dem[h // 2 :, w // 2 :], dem[: h // 3, : w // 3]
    assert south_east.max() > 400, "hills in the south-east"
    assert np.median(north_west) < 30, "a low plain in the north-west"
    assert dem.min() < 3, "the river runs near sea level"


def test_two_dates_differ_where_the_development_zone_is(written):
    _, paths, _ = written
    (old, transform), (new, _) = (merge([str(p) for p in _sheets(paths, i)]) for i in (0, 1))
    # the development zone, north-east of the town (EPSG:3857)
    window = from_bounds(13529750, 3486950, 13530400, 3487420, transform).round_offsets().round_lengths()
    rows, cols = window.toslices()
    a, b = old[:, rows, cols].astype(int), new[:, rows, cols].astype(int)
    whole = np.abs(old.astype(int) - new.astype(int)).mean()
    assert np.abs(a - b).mean() > 25, "fields cleared and built up between the dates"
    assert whole > 5, "seasonal change everywhere"


def test_deterministic(written, tmp_path):
    _, paths, _ = written
    again = write_sample_rasters(tmp_path, scale=SCALE)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert [digest(p) for p in again if p.suffix == ".tif"] == [digest(p) for p in paths if p.suffix == ".tif"]


def test_a_larger_grid_of_sheets_for_benchmarks(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEMAP_SAMPLE_SHEETS", "4")
    paths = write_sample_rasters(tmp_path, scale=32)
    assert len(SheetIndex(tmp_path / IMAGERY_INDEX).sheets()) == 2 * 16
    whole, _ = merge([str(p) for p in _sheets(paths, 1)])
    assert whole.shape == (3, 128, 128) and len(_sheets(paths, 1)) == 16
    monkeypatch.setenv("ONEMAP_SAMPLE_SHEETS", "many")
    with pytest.raises(ValueError, match="ONEMAP_SAMPLE_SHEETS"):
        write_sample_rasters(tmp_path, scale=32)
    with pytest.raises(ValueError, match="does not split into 3 x 3"):
        write_sample_rasters(tmp_path, scale=32, sheets=3)


def test_rejects_a_bad_scale(tmp_path):
    with pytest.raises(ValueError, match="power of two"):
        write_sample_rasters(tmp_path, scale=3)
