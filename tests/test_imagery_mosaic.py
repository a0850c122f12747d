"""Imagery mosaics: acquisitions of many COG sheets behind one sheet index, read seamlessly per tile.

The data are synthetic noise (every pixel differs from its neighbours, so any seam, shift or
resampling across a sheet edge shows), lossless (DEFLATE), on the sample imagery footprint so the
catalog's ``imagery`` collection serves them. Every file has the same overview pyramid (factors 2
and 4) and the cuts fall on it, as for map sheets of equal size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.transform import from_origin

from server.app import create_app
from server.commands import imagery
from server.raster.sample import IMAGERY_INDEX
from server.sheets import SheetError, SheetIndex
from tests.support.api_keys import issue_key
from tests.support.live import live_server
from tests.support.mislabelled import mislabelled_gpkg_dir
from tests.support.rasters import decode_image, raster_settings

WMQ = morecantile.tms.get("WebMercatorQuad")
Z13 = morecantile.Tile(6861, 3383, 13)  # the sample imagery footprint
SIZE = 1024  # pixels of WebMercatorQuad level 15
CUT_COL, CUT_ROW = 300, 700  # sheet edges, on no internal block boundary
OLD, NEW = "2023-11-15T02:40:00Z", "2024-05-18T02:35:00Z"


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, size=(3, SIZE, SIZE), dtype=np.uint8)


def _write(path: Path, data: np.ndarray, col: int = 0, row: int = 0, crs: str = "EPSG:3857") -> Path:
    left, _, _, top = WMQ.xy_bounds(Z13)
    cell = WMQ.matrix(15).cellSize
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="COG", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype="uint8", crs=crs, transform=from_origin(left + col * cell, top - row * cell, cell, cell),
                       compress="DEFLATE", blocksize=256, overview_count=2) as dst:
        dst.write(data)
    return path


def _split(folder: Path, data: np.ndarray, keep: set[str] | None = None) -> list[tuple[str, Path]]:
    """The image as four sheets cut at (CUT_COL, CUT_ROW); ``keep`` limits which are written."""
    out = []
    for r, (r0, r1) in enumerate(((0, CUT_ROW), (CUT_ROW, SIZE))):
        for c, (c0, c1) in enumerate(((0, CUT_COL), (CUT_COL, SIZE))):
            name = f"r{r}c{c}"
            if keep is None or name in keep:
                out.append((name, _write(folder / f"{name}.tif", data[:, r0:r1, c0:c1], c0, r0)))
    return out


def _data_dir(root: Path, sample_dir: Path) -> Path:
    root.mkdir(parents=True)
    (root / "onemap.gpkg").symlink_to(sample_dir / "onemap.gpkg")
    return root


def _register(data_dir: Path, acquisition: str, when: str, sheets: list[tuple[str, Path]]) -> None:
    SheetIndex(data_dir / IMAGERY_INDEX).add(
        data_dir, acquisition, when, [(n, str(p.relative_to(data_dir))) for n, p in sheets])


def _client(data_dir: Path, **overrides) -> TestClient:
    settings = raster_settings(data_dir, **overrides)
    return TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "mosaic")})


@pytest.fixture(scope="module")
def seamless(tmp_path_factory, sample_dir):
    """Two data dirs over the same pixels: four sheets, and one merged COG (a one-sheet mosaic)."""
    root = tmp_path_factory.mktemp("seamless")
    data = _pixels(1)
    split = _data_dir(root / "split", sample_dir)
    _register(split, "imagery_20231115", OLD, _split(split / "rasters" / "imagery_20231115", data))
    merged = _data_dir(root / "merged", sample_dir)
    _register(merged, "imagery_20231115", OLD, [("all", _write(merged / "rasters" / "all.tif", data))])
    with _client(split) as a, _client(merged) as b:
        yield a, b


def _tile_at(col: int, row: int, z: int) -> morecantile.Tile:
    """The tile of level ``z`` holding pixel (col, row) of the level-15 image."""
    span = 256 * 2 ** (15 - z)  # level-15 pixels across a tile of level z
    return morecantile.Tile((Z13.x * SIZE + col) // span, (Z13.y * SIZE + row) // span, z)


@pytest.mark.parametrize("z", [15, 14])
def test_a_tile_over_four_sheets_equals_the_tile_of_the_merged_cog(seamless, z):
    split, merged = seamless
    tile = _tile_at(CUT_COL, CUT_ROW, z)
    url = f"/collections/imagery/tiles/WebMercatorQuad/{z}/{tile.y}/{tile.x}?f=png"
    a, b = split.get(url), merged.get(url)
    assert a.status_code == b.status_code == 200
    pixels = decode_image(a.content)
    assert np.array_equal(pixels, decode_image(b.content)), "no seam, shift or gap at the sheet edges"
    assert pixels[3].all(), "the tile is inside the data: opaque everywhere"


def test_warped_grids_are_seamless_too(seamless):
    split, merged = seamless
    left, _, _, top = WMQ.xy_bounds(Z13)
    cell = WMQ.matrix(15).cellSize
    lon, lat = WMQ.lnglat(left + CUT_COL * cell, top - CUT_ROW * cell)
    tile = morecantile.tms.get("WorldCRS84Quad").tile(lon, lat, 15)
    url = f"/collections/imagery/tiles/WorldCRS84Quad/15/{tile.y}/{tile.x}?f=png"
    a, b = split.get(url), merged.get(url)
    assert a.status_code == b.status_code == 200
    assert np.array_equal(decode_image(a.content), decode_image(b.content))


@pytest.fixture()
def two_dates(tmp_path, sample_dir):
    """An older acquisition of four sheets, and a newer one with only the south-east sheet."""
    data_dir = _data_dir(tmp_path / "data", sample_dir)
    _register(data_dir, "imagery_20231115", OLD, _split(data_dir / "rasters" / "imagery_20231115", _pixels(1)))
    _register(data_dir, "imagery_20240518", NEW,
              _split(data_dir / "rasters" / "imagery_20240518", _pixels(2), keep={"r1c1"}))
    return data_dir


def _quarters(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    """RGBA pixels of the north-west and south-east quarters of a level-13 tile (the cuts fall in between)."""
    px = decode_image(body)
    return px[:, :60, :60], px[:, 200:, 200:]


def test_the_time_switch_picks_per_area_the_latest_sheet_at_or_before_the_time(two_dates):
    url = f"/collections/imagery/tiles/WebMercatorQuad/13/{Z13.y}/{Z13.x}?f=png"
    with _client(two_dates) as client:
        latest, old, new_only = (client.get(url + q) for q in ("", "&datetime=2024-01-01", "&item=imagery_20240518"))
        assert latest.headers["OneMap-Item"] == "imagery_20240518,imagery_20231115"
        assert old.headers["OneMap-Item"] == "imagery_20231115"
        nw_latest, se_latest = _quarters(latest.content)
        nw_old, se_old = _quarters(old.content)
        nw_new, se_new = _quarters(new_only.content)
        assert np.array_equal(nw_latest, nw_old), "no newer sheet there: the previous acquisition shows"
        assert np.array_equal(se_latest, se_new) and not np.array_equal(se_latest, se_old), "the newer sheet wins"
        assert not nw_new[3].any() and se_new[3].all(), "one acquisition alone: only its own sheet"
        assert client.get(url + "&datetime=2020-01-01").status_code == 404


def test_a_missing_newest_sheet_falls_back_to_the_previous_acquisition(two_dates):
    url = f"/collections/imagery/tiles/WebMercatorQuad/13/{Z13.y}/{Z13.x}?f=png"
    with _client(two_dates, cache_version_ttl_s=0) as client:
        old = client.get(url + "&datetime=2024-01-01")
        (two_dates / "rasters" / "imagery_20240518" / "r1c1.tif").unlink()
        latest = client.get(url)
        assert latest.status_code == 200 and latest.headers["OneMap-Item"] == "imagery_20231115"
        assert np.array_equal(decode_image(latest.content), decode_image(old.content))


def test_adding_a_sheet_moves_the_version_and_cached_tiles_refresh(two_dates, tmp_path):
    url = f"/collections/imagery/tiles/WebMercatorQuad/13/{Z13.y}/{Z13.x}?f=png"
    with _client(two_dates, cache_version_ttl_s=0, cache_debug_header=True) as client:
        before = client.get(url)
        assert client.get(url).headers["x-cache"] == "hit"
        outside = _split(tmp_path / "incoming", _pixels(3), keep={"r0c0"})[0][1]
        settings = raster_settings(two_dates)
        note = imagery.add(settings, "imagery", "2024-05-18T02:35:00Z", [outside], None)
        assert "1 sheet(s) registered in acquisition imagery_20240518" in note
        assert (two_dates / "rasters" / "imagery_20240518" / "r0c0.tif").is_file(), "copied into the data dir"
        after = client.get(url)
        assert after.headers["x-cache"] == "miss"
        nw_before, _ = _quarters(before.content)
        nw_after, _ = _quarters(after.content)
        assert not np.array_equal(nw_before, nw_after), "the new sheet shows"


def test_a_sheet_with_another_crs_or_band_count_is_refused_at_add_time(two_dates, tmp_path, capsys):
    index = SheetIndex(two_dates / IMAGERY_INDEX)
    before = index.sheets()
    gray = _write(tmp_path / "gray.tif", _pixels(4)[:1])
    other_crs = _write(tmp_path / "other.tif", _pixels(4), crs="EPSG:32651")
    settings = raster_settings(two_dates)
    with pytest.raises(SheetError, match="has 1 bands; acquisition 'imagery_20231115' has 3"):
        imagery.add(settings, "imagery", OLD, [gray], None)
    with pytest.raises(SheetError, match="is in EPSG:32651; acquisition 'imagery_20231115' is in EPSG:3857"):
        imagery.add(settings, "imagery", OLD, [other_crs], None)
    args = imagery.add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(
        ["add", "imagery", OLD, str(tmp_path / "gray.tif"), "--data-dir", str(two_dates)])
    assert imagery.run(args, settings) == 2
    assert "has 1 bands" in capsys.readouterr().err
    assert index.sheets() == before, "nothing registered"
    assert not (two_dates / "rasters" / "imagery_20231115" / "gray.tif").exists(), "nothing copied"
    with pytest.raises(ValueError, match="not a mosaic"):
        imagery.add(settings, "dem", OLD, [gray], None)


def test_a_corrupt_sheet_is_a_clean_500_and_the_server_serves_the_rest(two_dates):
    sheet = two_dates / "rasters" / "imagery_20231115" / "r0c0.tif"
    original = sheet.read_bytes()
    sheet.write_bytes(original[:2000])
    settings = raster_settings(two_dates)
    key = issue_key(settings, "mosaic")
    inside = _tile_at(10, 10, 15)  # in the broken sheet only
    elsewhere = _tile_at(900, 100, 15)  # in the north-east sheet
    with live_server(settings) as url, httpx.Client(base_url=url, headers={"X-API-Key": key}) as http:
        for _ in range(3):
            bad = http.get(f"/collections/imagery/tiles/WebMercatorQuad/15/{inside.y}/{inside.x}")
            assert bad.status_code == 500 and bad.json()["code"] == "ServerError"
            assert ".tif" not in bad.text and str(two_dates) not in bad.text
            good = http.get(f"/collections/imagery/tiles/WebMercatorQuad/15/{elsewhere.y}/{elsewhere.x}?f=png")
            assert good.status_code == 200 and decode_image(good.content)[3].all()
        sheet.write_bytes(original)  # repaired: served again, no restart
        after = http.get(f"/collections/imagery/tiles/WebMercatorQuad/15/{inside.y}/{inside.x}?f=png")
        assert after.status_code == 200 and decode_image(after.content)[3].all()


def test_the_resolution_cap_applies_per_sheet(tmp_path, sample_dir):
    """A sheet finer than the edition's cap (the collection declares 1.04 m, so no level is capped):
    read from its overview no finer than the cap, never at full size."""
    master_dir = _data_dir(tmp_path / "master", sample_dir)
    internet_dir = mislabelled_gpkg_dir(tmp_path / "internet", sample_dir, rasters=False)
    left, _, _, top = WMQ.xy_bounds(Z13)
    cell = WMQ.matrix(19).cellSize  # 0.30 m on the grid, 0.26 m on the ground: finer than the 0.5 m cap
    for data_dir in (master_dir, internet_dir):
        fine = data_dir / "rasters" / "imagery_20240518" / "fine.tif"
        fine.parent.mkdir(parents=True)
        with rasterio.open(fine, "w", driver="COG", width=512, height=512, count=3, dtype="uint8", crs="EPSG:3857",
                           transform=from_origin(left, top, cell, cell), compress="DEFLATE", blocksize=256,
                           overview_count=1) as dst:
            dst.write(_pixels(5)[:, :512, :512])
        _register(data_dir, "imagery_20240518", NEW, [("fine", fine)])
    url = f"/collections/imagery/tiles/WebMercatorQuad/19/{Z13.y * 64}/{Z13.x * 64}?f=png"
    with _client(master_dir) as master, _client(internet_dir, edition="internet") as internet:
        full, capped = decode_image(master.get(url).content), decode_image(internet.get(url).content)
    assert full[3].all() and capped[3].all()
    assert not np.array_equal(full[:, 0::2, 0::2], full[:, 1::2, 1::2]), "full size: every pixel its own"
    assert np.array_equal(capped[:, 0::2, 0::2], capped[:, 1::2, 1::2]), "capped: 2 x 2 blocks of the overview"
