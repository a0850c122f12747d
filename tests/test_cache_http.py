"""HTTP caching through the real app: hits, ETag/304, Vary, Cache-Control, content codings, key
separation, and invalidation when data changes (embedded store and PostGIS).
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
from pathlib import Path

import brotli
import mapbox_vector_tile
import morecantile
import psycopg
import pytest
import shapely.geometry
from fastapi.testclient import TestClient

from server.app import create_app
from server.catalog import load_catalog
from server.settings import Settings
from server.sources.gpkg_geometry import register_functions
from server.sources.postgis_schema import install_versioning
from tests.support import ROOT
from tests.support.api_keys import issue_key

WMQ = morecantile.tms.get("WebMercatorQuad")
SECRET = "test-secret"


def make_client(data_dir: Path, keyed: bool = True, **overrides) -> TestClient:
    """A client on an app with the given settings (never read from the environment), with a key."""
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    overrides.setdefault("cache_secret", SECRET)
    overrides.setdefault("cache_debug_header", True)  # X-Cache, off by default, says which level answered
    settings = Settings(data_dir=data_dir, **overrides)
    headers = {"X-API-Key": issue_key(settings)} if keyed else {}
    return TestClient(create_app(settings), headers=headers)


def feature_tile(client: TestClient, collection: str, z: int = 15) -> tuple[str, int | str]:
    """The path of a tile holding the first feature of the collection, and that feature's id."""
    feature = client.get(f"/collections/{collection}/items?limit=1").json()["features"][0]
    point = shapely.geometry.shape(feature["geometry"]).representative_point()
    t = WMQ.tile(point.x, point.y, z)
    return f"/collections/{collection}/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}", feature["id"]


def layer_properties(body: bytes, layer: str) -> list[dict]:
    return [f["properties"] for f in mapbox_vector_tile.decode(body)[layer]["features"]]


@pytest.fixture(scope="module")
def labelled(sample_dir, tmp_path_factory):
    """``labelled(edition)``: a copy of the sample store labelled for that edition (a release stand-in)."""
    from server.policy.labels import write_gpkg_label
    from tests.support.mislabelled import release_label

    made: dict[str, Path] = {}

    def make(edition: str) -> Path:
        if edition not in made:
            data_dir = tmp_path_factory.mktemp(edition)
            shutil.copy(sample_dir / "onemap.gpkg", data_dir / "onemap.gpkg")
            with sqlite3.connect(data_dir / "onemap.gpkg") as conn:
                write_gpkg_label(conn, release_label(edition))
            made[edition] = data_dir
        return made[edition]

    return make


@pytest.fixture(scope="module")
def client(sample_dir):
    with make_client(sample_dir) as c:
        yield c


def test_tile_is_served_from_the_cache_with_validators(client):
    path, _ = feature_tile(client, "land_survey")
    first = client.get(path)
    second = client.get(path)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.content == second.content and layer_properties(second.content, "land_survey")
    etag = second.headers["etag"]
    assert etag.startswith('W/"') and etag == first.headers["etag"]
    assert second.headers["vary"] == "Accept-Encoding, Accept, X-API-Key"
    assert second.headers["cache-control"] == "private, max-age=60"  # classified edition
    assert second.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    revalidated = client.get(path, headers={"If-None-Match": etag})
    assert revalidated.status_code == 304 and revalidated.content == b""
    assert revalidated.headers["etag"] == etag and "vary" in revalidated.headers
    assert client.get(path, headers={"If-None-Match": 'W/"stale"'}).status_code == 200


def test_stored_codings_are_negotiated(client):
    path, _ = feature_tile(client, "land_survey", 14)
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    for coding, decode in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        with client.stream("GET", path, headers={"Accept-Encoding": coding}) as r:
            wire = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == coding and r.headers["x-cache"] == "hit"
        assert int(r.headers["content-length"]) == len(wire) < len(plain.content)
        assert decode(wire) == plain.content and r.headers["etag"] == plain.headers["etag"]


def test_items_item_and_collections_carry_validators(client):
    _, fid = feature_tile(client, "land_survey")
    paths = {
        "/collections/land_survey/items?limit=3": "application/geo+json",
        f"/collections/land_survey/items/{fid}": "application/geo+json",
        "/collections": "application/json",
        "/collections/land_survey": "application/json",
    }
    for path, media in paths.items():
        first, second = client.get(path), client.get(path)
        assert first.status_code == 200 and second.headers["x-cache"] == "hit", path
        assert second.headers["content-type"] == media and first.json() == second.json()
        assert client.get(path, headers={"If-None-Match": second.headers["etag"]}).status_code == 304
    item = client.get(f"/collections/land_survey/items/{fid}")
    assert item.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    assert item.json()["id"] == fid
    assert "Accept-Language" in client.get("/collections").headers["vary"]
    assert "Accept-Language" not in item.headers["vary"]


def test_language_and_format_are_part_of_the_key(client):
    en = client.get("/collections/land_survey", headers={"Accept-Language": "en"})
    zh = client.get("/collections/land_survey", headers={"Accept-Language": "zh-CN"})
    assert en.json()["title"] != zh.json()["title"] and en.headers["etag"] != zh.headers["etag"]
    assert en.headers["content-language"] == "en"
    html = client.get("/collections/land_survey/items?limit=2&f=html")
    data = client.get("/collections/land_survey/items?limit=2&f=json")
    assert html.headers["content-type"].startswith("text/html") and data.json()["type"] == "FeatureCollection"
    assert html.headers["etag"] != data.headers["etag"]


def test_errors_are_not_cached(client):
    for path, status in (("/collections/land_survey/tiles/WebMercatorQuad/99/0/0", 400),
                         ("/collections/nowhere/tiles/WebMercatorQuad/10/0/0", 404),
                         ("/collections/land_survey/items/987654321", 404)):
        for _ in range(2):
            r = client.get(path)
            assert r.status_code == status and "etag" not in r.headers
            assert r.json()["description"]


def test_etags_differ_per_edition_and_secret_but_bodies_may_not(sample_dir, labelled, client):
    path, _ = feature_tile(client, "admin_boundaries", 12)
    base = client.get(path)
    with make_client(labelled("government"), edition="government") as gov, \
            make_client(sample_dir, cache_secret="other") as other:
        g, o = gov.get(path), other.get(path)
    assert g.headers["x-cache"] == o.headers["x-cache"] == "miss"
    assert base.content == g.content == o.content
    assert len({base.headers["etag"], g.headers["etag"], o.headers["etag"]}) == 3


def test_public_for_anonymous_internet_callers_private_for_keys(labelled):
    data_dir = labelled("internet")
    with make_client(data_dir, keyed=False, edition="internet", cache_max_age_s=120) as anonymous, \
            make_client(data_dir, edition="internet", cache_max_age_s=120) as keyed:
        path, _ = feature_tile(anonymous, "admin_boundaries", 12)
        a, k = anonymous.get(path), keyed.get(path)
        assert a.status_code == k.status_code == 200
        assert a.headers["cache-control"] == "public, max-age=120"
        assert k.headers["cache-control"] == "private, max-age=120"
        assert "X-API-Key" in a.headers["vary"]


def test_fast_path_answers_repeated_requests_before_routing(client):
    path, _ = feature_tile(client, "admin_boundaries", 13)
    cache = client.app.state.cache
    client.get(path)
    before = dict(cache.stats)
    r = client.get(path)
    assert r.headers["x-cache"] == "hit" and cache.stats["hit"] == before["hit"] + 1
    assert any(fp[4] == path.split("?")[0] for fp in cache.aliases)


def test_hits_are_audited_with_what_they_carry(store_copy):
    from server.stores import open_store

    with make_client(store_copy) as c:
        key_id = c.headers["X-API-Key"].split("_")[1]
        tile, _ = feature_tile(c, "land_survey")
        answers = [c.get("/collections/land_survey/items?limit=3") for _ in range(3)] + [c.get(tile) for _ in range(3)]
        assert [a.headers["x-cache"] for a in answers] == ["miss", "hit", "hit", "miss", "hit", "hit"]
        settings = c.app.state.settings
    with open_store(settings).opened_admin() as store:
        records = store.query_audit(None, key_id, "land_survey", 100)
    items = [r for r in records if r.path.endswith("/items") and r.params == "limit=3"]
    tiles = [r for r in records if r.path == tile]
    assert [r.returned for r in items] == [3, 3, 3] and [r.returned for r in tiles] == [1, 1, 1]


# -- invalidation -----------------------------------------------------------------------------


@pytest.fixture
def store_copy(sample_dir, tmp_path) -> Path:
    shutil.copy(sample_dir / "onemap.gpkg", tmp_path / "onemap.gpkg")
    return tmp_path


def _edit_gpkg(data_dir: Path, fid, value: str) -> None:
    """Edit one attribute as a desktop GIS would (with the GeoPackage functions its R-tree triggers use)."""
    with sqlite3.connect(data_dir / "onemap.gpkg") as conn:
        register_functions(conn)
        conn.execute("UPDATE land_survey SET land_name = ? WHERE id = ?", (value, fid))


def test_editing_the_embedded_store_moves_only_that_collections_version(store_copy):
    with make_client(store_copy, cache_version_ttl_s=0) as c:
        tile, fid = feature_tile(c, "land_survey")
        other, _ = feature_tile(c, "admin_boundaries", 12)
        item = f"/collections/land_survey/items/{fid}"
        old_tile, old_item = c.get(tile), c.get(item)
        c.get(other)
        assert c.get(tile).headers["x-cache"] == c.get(item).headers["x-cache"] == "hit"
        _edit_gpkg(store_copy, fid, "EDITED")
        assert c.get(other).headers["x-cache"] == "hit"  # per-collection versions: the others stay cached
        new_item = c.get(item, headers={"If-None-Match": old_item.headers["etag"]})
        assert new_item.status_code == 200 and new_item.headers["x-cache"] == "miss"
        assert new_item.json()["properties"]["land_name"] == "EDITED"
        new_tile = c.get(tile)
        assert new_tile.headers["x-cache"] == "miss" and new_tile.headers["etag"] != old_tile.headers["etag"]
        assert "EDITED" in {p.get("land_name") for p in layer_properties(new_tile.content, "land_survey")}


def test_staleness_is_bounded_by_the_version_memo(store_copy):
    now = [1000.0]
    with make_client(store_copy, cache_version_ttl_s=1.0) as c:
        c.app.state.cache.versions.clock = lambda: now[0]
        tile, fid = feature_tile(c, "land_survey")
        c.get(tile)
        _edit_gpkg(store_copy, fid, "LATER")
        now[0] += 0.9
        assert c.get(tile).headers["x-cache"] == "hit"  # within the bound the old version is trusted
        now[0] += 0.2
        fresh = c.get(tile)
        assert fresh.headers["x-cache"] == "miss"
        assert "LATER" in {p.get("land_name") for p in layer_properties(fresh.content, "land_survey")}


def test_postgis_edit_invalidates_only_its_collection(sample_dir, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:  # idempotent; the loader may have done it
        install_versioning(conn, load_catalog(ROOT / "collections"))
    with make_client(sample_dir, database_url=pg_url, cache_version_ttl_s=0) as c:
        survey, fid = feature_tile(c, "land_survey")
        admin, _ = feature_tile(c, "admin_boundaries", 12)
        c.get(survey), c.get(admin)
        assert c.get(survey).headers["x-cache"] == c.get(admin).headers["x-cache"] == "hit"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            old = conn.execute("SELECT land_name FROM land_survey WHERE id = %s", [fid]).fetchone()[0]
            conn.execute("UPDATE land_survey SET land_name = 'EDITED' WHERE id = %s", [fid])
            try:
                edited = c.get(survey)
                assert edited.headers["x-cache"] == "miss"
                assert "EDITED" in {p.get("land_name") for p in layer_properties(edited.content, "land_survey")}
                assert c.get(admin).headers["x-cache"] == "hit"
            finally:
                conn.execute("UPDATE land_survey SET land_name = %s WHERE id = %s", [old, fid])


def test_imagery_tiles_and_stac_are_cached_and_follow_their_files(raster_dir):
    tile = "/collections/imagery/tiles/WebMercatorQuad/14/6767/13723"
    stac = "/stac/collections/imagery/items"
    with make_client(raster_dir, cache_version_ttl_s=0) as c:
        a, b = c.get(tile), c.get(tile)
        assert a.status_code == 200 and (a.headers["x-cache"], b.headers["x-cache"]) == ("miss", "hit")
        assert a.content == b.content and b.headers["content-type"] == "image/jpeg"
        assert "content-encoding" not in b.headers  # JPEG is sent as it is, never recompressed
        assert b.headers["cache-control"] == "private, max-age=60"  # a keyed caller, whatever the route says
        assert b.headers["onemap-item"] == "imagery_20240518"
        png = c.get(tile + "?f=png")
        assert png.headers["x-cache"] == "miss" and png.headers["content-type"] == "image/png"
        first = c.get(stac)
        assert first.json()["type"] == "FeatureCollection"
        assert c.get(stac, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
        folder = raster_dir / next(a.path for a in load_catalog(ROOT / "collections").get("imagery").raster.assets
                                   if a.id == "imagery_20240518")
        latest = folder / "r1c0.tif"  # one sheet of the latest acquisition
        st = latest.stat()
        os.utime(latest, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file was replaced
        assert c.get(tile).headers["x-cache"] == "miss"
        again = c.get(stac, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 200 and again.headers["etag"] != first.headers["etag"]
