"""COGs on object storage: raster assets at ``s3://`` URLs, read through GDAL from a real S3-compatible
server (moto's server mode on loopback), by range requests; a slow store and a stopped store answer a
clean 503 while the worker goes on serving everything else, and reads heal when the store is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.support.api_keys import issue_key
from tests.support.object_store import ObjectStore
from tests.support.rasters import decode_image, raster_settings

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "onemap-cogs"
IMAGERY = "/collections/imagery/tiles/WebMercatorQuad/14/6767/13723?f=png"
DEM = "/collections/dem/tiles/WebMercatorQuad/12/1692/3431?render=terrain-rgb"
ELEVATION = "/collections/dem/elevation?lon=121.55&lat=29.85"
VECTOR = "/collections/parcels/items?limit=3"
HTTP_TIMEOUT_S = 2  # GDAL_HTTP_TIMEOUT for this module: a slower store answers 503


def noise_cog(path: Path, size: int = 2048) -> Path:
    """A large, incompressible RGB COG over the sample county (12 MB): what range reads save shows."""
    import rasterio
    from rasterio.transform import from_bounds

    pixels = np.random.default_rng(7).integers(0, 255, (3, size, size), dtype=np.uint8)
    profile = {"driver": "COG", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": "EPSG:4490",
               "transform": from_bounds(121.40, 29.75, 121.70, 29.95, size, size), "blocksize": 256}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    return path


def merged_cog(folder: Path, path: Path) -> Path:
    """One COG of an acquisition's sheets (the bucket holds an acquisition as one object)."""
    import rasterio
    from rasterio.merge import merge

    sheets = [rasterio.open(p) for p in sorted(folder.glob("*.tif"))]
    try:
        pixels, transform = merge(sheets)
        first = sheets[0]
        profile = {"driver": "COG", "width": pixels.shape[2], "height": pixels.shape[1], "count": first.count,
                   "dtype": first.dtypes[0], "crs": first.crs, "transform": transform, "nodata": first.nodata}
    finally:
        for sheet in sheets:
            sheet.close()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    return path


@pytest.fixture(scope="module")
def store(raster_dir, tmp_path_factory):
    s = ObjectStore(BUCKET)
    s.start()
    try:
        for cog in sorted((raster_dir / "rasters").glob("*.tif")):
            s.put(f"cogs/{cog.name}", cog)
        for folder in sorted((raster_dir / "rasters").glob("imagery_*")):  # an acquisition: one object
            s.put(f"cogs/{folder.name}", merged_cog(folder, tmp_path_factory.mktemp("merged") / f"{folder.name}.tif"))
        s.put("cogs/noise.tif", noise_cog(tmp_path_factory.mktemp("noise") / "noise.tif"))
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def s3_collections(tmp_path_factory) -> Path:
    """The catalog with every raster asset moved to the bucket (``s3://`` for the imagery, the GDAL
    name for the DEM)."""
    folder = tmp_path_factory.mktemp("s3-collections")
    for f in (ROOT / "collections").glob("*.yaml"):
        text = f.read_text(encoding="utf-8")
        text = text.replace("path: rasters/imagery", f"path: s3://{BUCKET}/cogs/imagery")
        text = text.replace("path: rasters/dem", f"path: /vsis3/{BUCKET}/cogs/dem")
        if f.name == "imagery.yaml":
            text = "".join(line for line in text.splitlines(keepends=True) if not line.strip().startswith("sheets:"))
            text = text.replace("  assets:\n", f"  assets:\n    - {{id: noise, path: s3://{BUCKET}/cogs/noise.tif, "
                                                 f"datetime: '2020-01-01T00:00:00Z'}}\n")
        (folder / f.name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def clients(raster_dir, store, s3_collections):
    """(local, s3): apps on the same data directory, the second reading its COGs from the bucket."""
    with gdal_reading(store):
        local_settings = raster_settings(raster_dir, cache_memory_bytes=0)
        s3_settings = raster_settings(raster_dir, cache_memory_bytes=0, collections_dir=s3_collections)
        key = {"X-API-Key": issue_key(local_settings, "s3")}
        with TestClient(create_app(local_settings), headers=key) as local, \
                TestClient(create_app(s3_settings), headers=key) as s3:
            yield local, s3


@contextmanager
def gdal_reading(store) -> Iterator[None]:
    """GDAL configured for the bucket (endpoint, keys) with a short HTTP timeout and no retry, for the
    duration of a module's apps; the environment is restored after."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**store.gdal_env, "GDAL_HTTP_TIMEOUT": str(HTTP_TIMEOUT_S),
                            "GDAL_HTTP_MAX_RETRY": "0"}.items():
            patch.setenv(name, value)
        yield


def test_tiles_and_elevation_read_from_the_bucket_match_local_files(clients):
    local, s3 = clients
    for url in (IMAGERY, DEM):
        a, b = local.get(url), s3.get(url)
        assert a.status_code == b.status_code == 200, (url, b.text)
        assert np.array_equal(decode_image(a.content), decode_image(b.content)), url
        assert decode_image(b.content).any()
    a, b = local.get(ELEVATION).json(), s3.get(ELEVATION).json()
    assert a["properties"]["elevation"] == b["properties"]["elevation"]
    assert b["properties"]["item"] == "dem_2023"


def test_reads_are_ranges_not_whole_files(clients, store):
    _, s3 = clients
    before = store.proxy.received
    r = s3.get("/collections/imagery/tiles/WebMercatorQuad/15/13535/27447?f=png&item=noise")
    assert r.status_code == 200 and r.headers["OneMap-Item"] == "noise"
    transferred = store.proxy.received - before
    size = store.objects["cogs/noise.tif"].stat().st_size
    assert 0 < transferred < size / 10, (transferred, size)


def test_assets_in_the_bucket_are_offered_as_files_like_local_ones(clients):
    local, s3 = clients  # more in test_raster_s3_files.py
    a, b = (c.get("/collections/dem/assets/dem_2023", headers={"Range": "bytes=100-4195"}) for c in (local, s3))
    assert a.status_code == b.status_code == 206 and a.content == b.content and len(b.content) == 4096
    assert a.headers["content-range"] == b.headers["content-range"]


def test_a_slow_store_still_answers_within_the_timeout(clients, store):
    _, s3 = clients
    store.proxy.delay_s = 0.05  # per chunk of 64 KiB: a store several times slower than loopback
    try:
        r = s3.get("/collections/imagery/tiles/WebMercatorQuad/15/13530/27440?f=png&item=noise")
        assert r.status_code == 200
    finally:
        store.proxy.delay_s = 0.0


def test_a_too_slow_store_is_a_clean_503_and_the_worker_serves_the_rest(clients, store):
    _, s3 = clients
    store.proxy.delay_s = HTTP_TIMEOUT_S + 2.0
    try:
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(s3.get, "/collections/imagery/tiles/WebMercatorQuad/15/13540/27455?f=png&item=noise")
            time.sleep(0.2)
            started = time.monotonic()
            other = s3.get(VECTOR)  # the same app serves other requests meanwhile
            assert other.status_code == 200 and other.json()["features"]
            assert time.monotonic() - started < HTTP_TIMEOUT_S
            r = slow.result(timeout=60)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] and r.json()["code"] == "ServiceUnavailable"
        assert BUCKET not in r.text and "vsis3" not in r.text and "Traceback" not in r.text
    finally:
        store.proxy.delay_s = 0.0


def test_a_stopped_store_is_a_clean_503_and_reads_heal_when_it_is_back(clients, store):
    """Tiles whose blocks were never read (GDAL's caches cannot answer them) fail while the store is
    stopped, and are served again once it is back."""
    local, s3 = clients
    tile = "/collections/imagery/tiles/WebMercatorQuad/15/{}?f=png&item=noise"
    store.stop()
    try:
        r = s3.get(tile.format("13530/27455"))
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] and BUCKET not in r.text and "cogs/" not in r.text
        assert s3.get(VECTOR).status_code == 200
        assert local.get(IMAGERY).status_code == 200
    finally:
        store.start()
    deadline = time.monotonic() + 30
    while (r := s3.get(tile.format("13540/27440"))).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert r.status_code == 200 and decode_image(r.content).any()
    assert s3.get(tile.format("13530/27455")).status_code == 200


def test_check_config_opens_assets_in_the_bucket(raster_dir, store, s3_collections, tmp_path):
    from tests.test_config_checks import onemap

    env = {"ONEMAP_DATA_DIR": str(raster_dir), "ONEMAP_COLLECTIONS_DIR": str(s3_collections), **store.gdal_env}
    assert onemap(["check-config"], env, tmp_path).returncode == 0
    store.objects.pop("cogs/dem_2023.tif")
    store.stop()
    store.start()  # back without the DEM
    out = onemap(["check-config"], env, tmp_path)
    assert out.returncode == 1
    assert "asset 'dem_2023'" in out.stderr and "imagery" not in out.stderr
