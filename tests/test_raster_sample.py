"""The sample rasters are real COGs with plausible, deterministic content."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds

from server.raster.sample import DEM_ASSET, IMAGERY_ASSETS, write_sample_rasters
from tests.support.rasters import SCALE


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("sample_rasters")
    messages = []
    paths = write_sample_rasters(data_dir, progress=messages.append, scale=SCALE)
    return data_dir, paths, messages


def test_writes_three_cogs_with_tiles_and_overviews(written):
    data_dir, paths, messages = written
    assert [p.relative_to(data_dir).as_posix() for p in paths] == [a[1] for a in IMAGERY_ASSETS] + [DEM_ASSET[1]]
    assert len(messages) == 3
    for path in paths:
        with rasterio.open(path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.block_shapes[0] == (256, 256)
            assert src.overviews(1), "COGs carry internal overviews"
            assert src.tags()["ACQUISITION_DATETIME"]


def test_imagery_is_rgb_about_1m_in_web_mercator(written):
    _, paths, _ = written
    with rasterio.open(paths[0]) as src:
        assert (src.count, src.dtypes[0], src.crs.to_epsg()) == (3, "uint8", 3857)
        assert src.compression.value == "JPEG"
        # level-17 cells: 1.194 m on the grid at scale 1; the footprint is one level-13 tile
        assert src.res[0] == pytest.approx(1.194328566955879 * SCALE)
        assert src.width == src.height == 4096 // SCALE


def test_dem_is_float_metres_in_cgcs2000_gk(written):
    _, paths, _ = written
    with rasterio.open(paths[2]) as src:
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
    with rasterio.open(paths[0]) as old, rasterio.open(paths[1]) as new:
        # the development zone, north-east of the town (EPSG:3857)
        window = from_bounds(13529750, 3486950, 13530400, 3487420, old.transform)
        a = old.read(window=window).astype(int)
        b = new.read(window=window).astype(int)
        whole = np.abs(old.read().astype(int) - new.read().astype(int)).mean()
    assert np.abs(a - b).mean() > 25, "fields cleared and built up between the dates"
    assert whole > 5, "seasonal change everywhere"


def test_deterministic(written, tmp_path):
    _, paths, _ = written
    again = write_sample_rasters(tmp_path, scale=SCALE)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert [digest(p) for p in again] == [digest(p) for p in paths]


def test_rejects_a_bad_scale(tmp_path):
    with pytest.raises(ValueError, match="power of two"):
        write_sample_rasters(tmp_path, scale=3)
