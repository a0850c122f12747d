"""Imagery and DEM map tiles through the shared tile route: formats, grids, time, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.raster.store import RasterStore
from tests.support.api_keys import issue_key
from tests.support.rasters import decode_image, make_data_dir, raster_settings

IMAGERY = "/collections/imagery/tiles"
Z14 = "WebMercatorQuad/14/6767/13723"  # inside the imagery footprint (the town and fields)
EDGE_Z12 = "WebMercatorQuad/12/1691/3430"  # the footprint covers a quarter of this tile


def test_jpeg_png_webp_decode_to_256px_images(raster_client):
    kinds = (("jpeg", "image/jpeg", {3}), ("png", "image/png", {3, 4}), ("webp", "image/webp", {3, 4}))
    for fmt, media, bands in kinds:
        r = raster_client.get(f"{IMAGERY}/{Z14}?f={fmt}")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == media
        pixels = decode_image(r.content)
        assert pixels.shape[0] in bands and pixels.shape[1:] == (256, 256)
        assert pixels[:3].std() > 10, "a real picture, not a flat fill"
    assert raster_client.get(f"{IMAGERY}/{Z14}").headers["content-type"] == "image/jpeg"


def test_png_and_webp_are_transparent_outside_the_data(raster_client):
    for fmt in ("png", "webp"):
        pixels = decode_image(raster_client.get(f"{IMAGERY}/{EDGE_Z12}?f={fmt}").content)
        assert pixels.shape[0] == 4
        assert (pixels[3] == 0).any() and (pixels[3] == 255).any()


def test_every_offered_grid_serves_imagery(raster_client):
    # the same place in the CGCS2000 (Tianditu c) grid and in WorldCRS84Quad
    for path in ("CGCS2000Quad/14/2737/13722", "WorldCRS84Quad/13/2737/13722"):
        r = raster_client.get(f"{IMAGERY}/{path}?f=png")
        assert r.status_code == 200, (path, r.text)
        pixels = decode_image(r.content)
        assert (pixels.shape[0] == 3 or (pixels[3] == 255).mean() > 0.5) and pixels[:3].std() > 10


def test_datetime_selects_the_nearest_earlier_acquisition(raster_client):
    old = raster_client.get(f"{IMAGERY}/{Z14}?datetime=2024-01-31T00:00:00Z")
    new = raster_client.get(f"{IMAGERY}/{Z14}?datetime=2024-05-18")
    latest = raster_client.get(f"{IMAGERY}/{Z14}")
    explicit = raster_client.get(f"{IMAGERY}/{Z14}?item=imagery_20231115")
    interval = raster_client.get(f"{IMAGERY}/{Z14}?datetime=2023-01-01/2023-12-31")
    assert old.headers["OneMap-Item"] == explicit.headers["OneMap-Item"] == "imagery_20231115"
    assert interval.headers["OneMap-Item"] == "imagery_20231115"
    assert new.headers["OneMap-Item"] == latest.headers["OneMap-Item"] == "imagery_20240518"
    assert old.content == explicit.content
    diff = np.abs(decode_image(old.content).astype(int) - decode_image(new.content).astype(int)).mean()
    assert diff > 5, "the two acquisitions look different"


@pytest.mark.parametrize(
    ("query", "status", "needle"),
    [
        ("f=gif", 400, "'f'"),
        ("f=png&f=jpeg", 400, "'f'"),
        ("render=hillshade", 400, "render"),
        ("item=nope", 404, "nope"),
        ("datetime=2020-01-01", 404, "no acquisition"),
        ("datetime=yesterday", 400, "datetime"),
        ("datetime=2024-01-01&item=imagery_20231115", 400, "either"),
    ],
)
def test_bad_parameters(raster_client, query, status, needle):
    r = raster_client.get(f"{IMAGERY}/{Z14}?{query}")
    assert r.status_code == status
    body = r.json()
    assert body["code"] in ("InvalidParameterValue", "NotFound") and needle in body["description"]


def test_levels_outside_the_collection_and_tiles_outside_the_data(raster_client):
    r = raster_client.get(f"{IMAGERY}/WebMercatorQuad/5/13/26")
    assert r.status_code == 400 and "outside the levels" in r.json()["description"]
    assert raster_client.get(f"{IMAGERY}/WebMercatorQuad/14/6767/13000").status_code == 204
    assert raster_client.get("/collections/nope/tiles/WebMercatorQuad/14/6767/13723").status_code == 404


def test_dem_renders(raster_client):
    base = "/collections/dem/tiles/WebMercatorQuad/12/1692/3431"
    assert raster_client.get(f"{base}?render=terrain-rgb&f=jpeg").status_code == 400
    assert raster_client.get(f"{base}?render=contours").status_code == 400
    shade = raster_client.get(f"{base}?render=hillshade")
    assert shade.status_code == 200
    grey = decode_image(shade.content)[0]
    assert grey.std() > 5, "hills cast light and shade"
    webp = raster_client.get(f"{base}?render=terrarium&f=webp")
    assert webp.status_code == 200 and webp.headers["content-type"] == "image/webp"


def test_tileset_metadata(raster_client):
    doc = raster_client.get(f"{IMAGERY}/WebMercatorQuad").json()
    assert doc["dataType"] == "map"
    limits = {lim["tileMatrix"]: lim for lim in doc["tileMatrixSetLimits"]}
    assert set(limits) == {str(z) for z in range(10, 20)}
    z14 = limits["14"]
    assert z14["minTileRow"] <= 6767 <= z14["maxTileRow"] and z14["minTileCol"] <= 13723 <= z14["maxTileCol"]
    templates = [lk["href"] for lk in doc["links"] if lk["rel"] == "item"]
    assert templates and all("{tileMatrix}/{tileRow}/{tileCol}" in t for t in templates)
    cgcs = raster_client.get(f"{IMAGERY}/CGCS2000Quad").json()
    assert {lim["tileMatrix"] for lim in cgcs["tileMatrixSetLimits"]} == {str(z) for z in range(10, 19)}


def test_handles_are_reused_and_reopened_when_the_file_changes(raster_dir, tmp_path):
    path = tmp_path / "copy.tif"
    shutil.copy(raster_dir / "rasters" / "dem_2023.tif", path)
    store = RasterStore(threads=1)
    try:
        first = store.open(path)
        assert store.open(path) is first
        shutil.copy(raster_dir / "rasters" / "imagery_20231115" / "r0c0.tif", path)
        assert store.open(path) is not first
    finally:
        store.close()


def test_missing_or_corrupt_cog_is_a_generic_500_and_the_worker_survives(raster_dir, tmp_path, sample_dir):
    data_dir = make_data_dir(tmp_path / "broken", sample_dir)
    cogs = sorted((data_dir / "rasters" / "imagery_20231115").glob("*.tif"))
    for cog in cogs:
        cog.write_bytes(cog.read_bytes()[:3000])  # truncated: header only
    for sheet in (data_dir / "rasters" / "imagery_20240518").glob("*.tif"):
        sheet.unlink()
    settings = raster_settings(data_dir)
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings)}) as client:
        for query in ("item=imagery_20231115", "item=imagery_20240518"):
            r = client.get(f"{IMAGERY}/{Z14}?{query}")
            assert r.status_code == 500
            body = r.json()
            assert body["code"] == "ServerError" and "could not be read" in body["description"]
            assert "/" not in body["description"] and ".tif" not in r.text
        for cog in cogs:
            cog.write_bytes(b"\x00" * 5000)  # garbage
        assert client.get(f"{IMAGERY}/{Z14}?item=imagery_20231115").status_code == 500
        ok = client.get("/collections/dem/tiles/WebMercatorQuad/12/1692/3431")
        assert ok.status_code == 200 and decode_image(ok.content).shape == (3, 256, 256)


def test_assets_are_served_by_id_with_ranges(raster_client, raster_dir: Path):
    r = raster_client.get("/collections/dem/assets/dem_2023", headers={"Range": "bytes=0-3"})
    assert r.status_code == 206 and r.content == (raster_dir / "rasters" / "dem_2023.tif").read_bytes()[:4]
    sheet = raster_client.get("/collections/imagery/assets/imagery_20231115_r0c1", headers={"Range": "bytes=0-3"})
    assert sheet.content == (raster_dir / "rasters" / "imagery_20231115" / "r0c1.tif").read_bytes()[:4]
    assert raster_client.get("/collections/imagery/assets/..%2Fonemap.gpkg").status_code == 404
