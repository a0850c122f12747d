"""Assets in object storage downloaded through ``/collections/{id}/assets/{assetId}`` (a real moto S3 server
behind the counting proxy of ``tests.support.object_store``): the whole object, byte ranges (206, 416),
the object's ETag and Last-Modified, GDAL opening the COG through the route, a clean 503 while the store
is stopped, and the same 404 as an unknown collection for a caller without the collection."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.support.api_keys import issue_key
from tests.support.live import live_server
from tests.support.rasters import raster_settings
from tests.test_raster_s3 import BUCKET, HTTP_TIMEOUT_S, gdal_reading, s3_collections, store  # noqa: F401 - its fixtures

NOISE = "/collections/imagery/assets/noise"
DEM = "/collections/dem/assets/dem_2023"


@pytest.fixture(scope="module")
def served(raster_dir, store, s3_collections):  # noqa: F811 - the fixtures imported above
    """(settings, full key, dem-only key) of an app reading its assets from the bucket."""
    with gdal_reading(store):
        settings = raster_settings(raster_dir, cache_memory_bytes=0, collections_dir=s3_collections)
        yield settings, issue_key(settings, "downloads"), issue_key(settings, "dem only", frozenset({"dem"}))


@pytest.fixture(scope="module")
def client(served):
    settings, key, _ = served
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        yield c


def test_the_whole_object_and_byte_ranges(client, store):  # noqa: F811
    noise = store.objects["cogs/noise.tif"].read_bytes()
    before = store.proxy.received
    whole = client.get(NOISE)
    assert whole.status_code == 200 and whole.content == noise
    assert whole.headers["content-length"] == str(len(noise)) and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"].startswith("image/tiff")
    assert whole.headers["etag"] and whole.headers["last-modified"].endswith("GMT")
    assert store.proxy.received - before >= len(noise)  # streamed from the store, not from a local copy

    dem = store.objects["cogs/dem_2023.tif"].read_bytes()
    for asked, first, last in (("bytes=1000-1999", 1000, 1999), ("bytes=-500", len(dem) - 500, len(dem) - 1),
                               (f"bytes={len(dem) - 10}-", len(dem) - 10, len(dem) - 1),
                               (f"bytes=0-{len(dem) + 99}", 0, len(dem) - 1)):
        part = client.get(DEM, headers={"Range": asked})
        assert part.status_code == 206, asked
        assert part.content == dem[first:last + 1], asked
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(dem)}"
    etag = client.get(DEM, headers={"Range": "bytes=0-0"}).headers["etag"]
    assert client.get(DEM, headers={"Range": "bytes=0-3", "If-Range": etag}).status_code == 206
    stale = client.get(DEM, headers={"Range": "bytes=0-3", "If-Range": '"another"'})
    assert stale.status_code == 200 and stale.content == dem  # the object changed: the whole of it
    assert client.get(DEM, headers={"Range": "bytes=0-1,5-9"}).content == dem  # several ranges: the whole

    for bad in (f"bytes={len(dem)}-", "bytes=9-3", "bytes=-0"):
        refused = client.get(DEM, headers={"Range": bad})
        assert refused.status_code == 416, bad
        assert refused.headers["content-range"] == f"bytes */{len(dem)}"
        assert refused.json()["code"] == "InvalidParameterValue" and "byte range" in refused.json()["description"]


def test_links_name_the_assets_in_the_bucket(client):
    links = client.get("/collections/imagery").json()["links"]
    href = next(link["href"] for link in links if link["rel"] == "enclosure" and link["href"].endswith(NOISE))
    assert client.get(href, headers={"Range": "bytes=0-3"}).status_code == 206


def test_gdal_opens_the_cog_through_the_route(served, store):  # noqa: F811
    settings, key, _ = served
    with live_server(settings) as url:
        out = subprocess.run(["gdalinfo", "--config", "GDAL_HTTP_HEADERS", f"X-API-Key: {key}",
                              f"/vsicurl/{url}{NOISE}"], capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items() if not k.startswith(("GDAL_", "CPL_"))})
    assert out.returncode == 0, out.stderr
    assert "Driver: GTiff" in out.stdout and "Size is 2048, 2048" in out.stdout
    assert "LAYOUT=COG" in out.stdout


def test_a_caller_without_the_collection_gets_the_unknown_collection_404(served, client):
    settings, _, narrow = served
    with TestClient(create_app(settings), headers={"X-API-Key": narrow}) as c:
        hidden = c.get(NOISE, headers={"Range": "bytes=0-3"})
        unknown = c.get("/collections/nowhere/assets/noise", headers={"Range": "bytes=0-3"})
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json() == {k: v.replace("nowhere", "imagery") if isinstance(v, str) else v
                                 for k, v in unknown.json().items()}
        assert set(hidden.headers) == set(unknown.headers)
        assert c.get(DEM, headers={"Range": "bytes=0-3"}).status_code == 206  # its own collection it gets
    unknown_asset = client.get("/collections/imagery/assets/nothing-here")
    assert unknown_asset.status_code == 404 and BUCKET not in unknown_asset.text


def test_a_stopped_store_is_a_clean_503_and_downloads_heal(client, store):  # noqa: F811
    size = store.objects["cogs/noise.tif"].stat().st_size
    dem = "/collections/imagery/assets/imagery_20240518"  # never read by this module: nothing cached
    store.stop()
    try:
        down = client.get(dem, headers={"Range": "bytes=0-3"})
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] and down.json()["code"] == "ServiceUnavailable"
        assert BUCKET not in down.text and "vsis3" not in down.text and "cogs/" not in down.text
    finally:
        store.start()
    deadline = time.monotonic() + 30
    while (back := client.get(dem, headers={"Range": "bytes=0-3"})).status_code != 206:
        assert time.monotonic() < deadline, back.text
        time.sleep(0.5)
    assert back.content == store.objects["cogs/imagery_20240518"].read_bytes()[:4]
    assert client.get(NOISE, headers={"Range": f"bytes={size - 4}-"}).status_code == 206


def test_a_too_slow_store_is_a_clean_503_within_the_timeout(client, store):  # noqa: F811
    slow = "/collections/imagery/assets/imagery_20231115"  # never read by this module: nothing cached
    store.proxy.delay_s = HTTP_TIMEOUT_S + 2.0
    try:
        started = time.monotonic()
        r = client.get(slow, headers={"Range": "bytes=0-3"})
        assert r.status_code == 503, r.text
        assert time.monotonic() - started < 3 * (HTTP_TIMEOUT_S + 2.0)  # GDAL's timeout, not the store's pace
        assert r.headers["retry-after"] and BUCKET not in r.text and "Traceback" not in r.text
    finally:
        store.proxy.delay_s = 0.0
    deadline = time.monotonic() + 30
    while (back := client.get(slow, headers={"Range": "bytes=0-3"})).status_code != 206:
        assert time.monotonic() < deadline, back.text
        time.sleep(0.5)
