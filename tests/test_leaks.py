"""Nothing hidden leaks to an internet-edition caller or a narrower key, on any route, from either backend.

The store here is deliberately the whole master data mislabelled as an internet release: the policy
applied below the routes is then all that stands between secret data and the caller. Every data
route (features, tiles, dataset tiles, rasters, STAC, styles, HTML pages, errors, the API
definition) is checked for hidden collections, fields and rows in bodies, headers, counts and
decoded tiles. A hidden collection answers byte for byte like a missing one. The same store served
as the government edition shows masked names, no ID numbers and no secret rows, and responses
cached for a caller with a wide key never reach a caller whose key is narrower. The audit records a
request as what it was or refuses it (a hidden second bbox, another key's id, control characters),
and no header tells a cache hit from a miss. Attacks on the client address and the access log run
against a real server in ``test_leaks_http.py``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from urllib.parse import parse_qsl

import mapbox_vector_tile
import morecantile
import pytest
import shapely
from fastapi.testclient import TestClient

from server.app import create_app
from server.policy.keys import parse_key
from server.settings import Settings
from server.sources.gpkg_geometry import decode_gpkg_geometry
from server.stores import open_store
from tests.support.api_keys import issue_key
from tests.support.mislabelled import mislabelled_gpkg_dir, mislabelled_pg_url

WMQ = morecantile.tms.get("WebMercatorQuad")
HIDDEN_INTERNET = ("parcels", "control_lines", "buildings")
VISIBLE_INTERNET = {"admin_boundaries", "land_survey", "planning_zones", "imagery", "dem"}
MISSING = "zz_missing"


def _values(conn, sql: str, min_len: int = 3) -> set[bytes]:
    return {str(v).encode() for (v,) in conn.execute(sql) if v is not None and len(str(v)) >= min_len}


@pytest.fixture(scope="module")
def facts(sample_dir) -> dict:
    """Secret values and where the secret rows lie, read from the master sample."""
    with sqlite3.connect(sample_dir / "onemap.gpkg") as conn:
        secret = _values(conn, "SELECT owner_name FROM parcels") | _values(conn, "SELECT owner_id_number FROM parcels")
        hidden = (secret | _values(conn, "SELECT unit_code FROM parcels")
                  | _values(conn, "SELECT unit_code FROM buildings"))
        hidden |= _values(conn, "SELECT line_name FROM control_lines", 4)
        special_parcel, blob = conn.execute("SELECT unit_code, geom FROM parcels WHERE land_use = '09'").fetchone()
        special_patches = [r[0] for r in conn.execute("SELECT id FROM land_survey WHERE class_code = '09'")]
        special = conn.execute("SELECT unit_code FROM buildings WHERE building_use = '特殊用途'")
        special_buildings = {r[0] for r in special}
        zones = [r[0] for r in conn.execute("SELECT id FROM planning_zones WHERE use_code = '15'")]
        a_parcel = conn.execute("SELECT unit_code FROM parcels WHERE land_use <> '09' LIMIT 1").fetchone()[0]
    point = shapely.from_wkb(decode_gpkg_geometry(blob)).representative_point()
    return {"secret": secret, "hidden": hidden, "special_parcel": special_parcel, "special_patches": special_patches,
            "special_buildings": special_buildings, "special_zones": zones, "point": (point.x, point.y),
            "a_parcel": a_parcel}


@pytest.fixture(scope="module")
def leak_settings(backend, request, tmp_path_factory, sample_dir):
    """Settings factory over the mislabelled store of the module's backend (``edition`` to choose)."""
    data_dir = mislabelled_gpkg_dir(tmp_path_factory.mktemp("leakstore"), sample_dir)
    url = mislabelled_pg_url(request.getfixturevalue("pg_url")) if backend == "postgis" else None

    def make(edition: str) -> Settings:
        for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
            os.environ.pop(key)
        return Settings(data_dir=data_dir, database_url=url, edition=edition)

    return make


@pytest.fixture(scope="module")
def anon(leak_settings):
    with TestClient(create_app(leak_settings("internet"))) as c:
        yield c


def tile_path(prefix: str, point: tuple[float, float], z: int) -> str:
    t = WMQ.tile(*point, z)
    return f"{prefix}/WebMercatorQuad/{z}/{t.y}/{t.x}"


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body) if body else {}


def assert_clean(r, facts: dict, hidden_ids=HIDDEN_INTERNET) -> None:
    """No hidden value in the body or any header; no hidden collection named as such."""
    blob = r.content + repr(sorted(r.headers.items())).encode()
    leaked = [v.decode() for v in facts["hidden"] if v in blob]
    assert not leaked, (r.url, leaked[:3])
    for cid in hidden_ids:
        assert f'"{cid}"'.encode() not in r.content and f"/collections/{cid}".encode() not in r.content, (r.url, cid)
        assert f'"source-layer":"{cid}"'.encode() not in r.content.replace(b" ", b"")


PAGES = [
    "/", "/?f=html", "/conformance", "/api", "/api.html", "/collections", "/collections?f=html",
    "/collections/land_survey", "/collections/land_survey?f=html", "/collections/land_survey/items?limit=3000",
    "/collections/land_survey/items?limit=50&f=html", "/collections/planning_zones/items?limit=1000",
    "/collections/land_survey/tiles", "/collections/land_survey/tiles/WebMercatorQuad",
    "/collections/land_survey/tiles/WebMercatorQuad?f=tilejson", "/tiles", "/tiles/WebMercatorQuad",
    "/tiles/WebMercatorQuad?f=tilejson", "/tiles/CGCS2000Quad", "/styles", "/styles/basemap",
    "/styles/basemap/metadata", "/styles/land_survey", "/map", "/stac", "/stac/collections", "/stac/search",
    "/stac/collections/imagery/items", "/collections/imagery", "/collections/dem/terrain/layer.json",
    "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities", "/wmts/1.0.0/WMTSCapabilities.xml", "/scene",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_nothing_hidden(anon, facts, path):
    r = anon.get(path)
    assert r.status_code in (200, 503), (path, r.status_code, r.text[:200])  # /map: 503 without npm ci
    assert_clean(r, facts)


def test_collections_list_and_api_show_only_visible(anon):
    ids = {c["id"] for c in anon.get("/collections").json()["collections"]}
    assert ids == VISIBLE_INTERNET
    api = anon.get("/api").json()
    assert not [p for p in api["paths"] if any(h in p for h in HIDDEN_INTERNET)]
    style = anon.get("/styles/basemap").json()
    assert {layer.get("source-layer") for layer in style["layers"]} - {None} <= VISIBLE_INTERNET


HIDDEN_PATHS = [
    "/collections/{c}", "/collections/{c}?f=html", "/collections/{c}/items", "/collections/{c}/items?bbox=oops",
    "/collections/{c}/items/{id}", "/collections/{c}/items/{id}?f=html", "/collections/{c}/tiles",
    "/collections/{c}/tiles/WebMercatorQuad", "/collections/{c}/tiles/WebMercatorQuad?f=tilejson",
    "/collections/{c}/tiles/WebMercatorQuad/14/6767/13727", "/collections/{c}/tiles/CGCS2000Quad/13/1368/6861",
    "/styles/{c}", "/styles/{c}/metadata", "/stac/collections/{c}", "/stac/collections/{c}/items",
    "/collections/{c}/terrain/layer.json", "/collections/{c}/elevation?lon=121.5&lat=29.8",
    "/collections/{c}/assets/{id}", "/collections/{c}/3dtiles", "/collections/{c}/3dtiles/tileset.json",
    "/collections/{c}/3dtiles/tiles/r0.glb",
]


@pytest.mark.parametrize("template", HIDDEN_PATHS)
@pytest.mark.parametrize("hidden", HIDDEN_INTERNET)
def test_hidden_collection_answers_like_a_missing_one(anon, facts, template, hidden):
    fid = facts["a_parcel"]
    a = anon.get(template.format(c=hidden, id=fid))
    b = anon.get(template.format(c=MISSING, id=fid))
    assert a.status_code == b.status_code == 404, (template, a.status_code, b.status_code)
    assert a.content.replace(hidden.encode(), b"X") == b.content.replace(MISSING.encode(), b"X")
    skip = {"date", "content-length", "x-cache", "etag", "age", "x-request-id"}
    kept_a, kept_b = ({k: v for k, v in r.headers.items() if k not in skip} for r in (a, b))
    assert kept_a == kept_b
    assert_clean(a, facts)


def test_secret_rows_are_absent_with_honest_counts(anon, facts):
    x, y = facts["point"]
    bbox = f"{x - 0.01},{y - 0.01},{x + 0.01},{y + 0.01}"
    doc = anon.get(f"/collections/land_survey/items?bbox={bbox}&limit=1000").json()
    ids = [f["id"] for f in doc["features"]]
    assert ids and not set(facts["special_patches"]) & set(ids)
    assert doc["numberMatched"] == doc["numberReturned"] == len(ids)
    assert all(f["properties"]["class_code"] != "09" for f in doc["features"])
    for pid in facts["special_patches"]:
        a, b = anon.get(f"/collections/land_survey/items/{pid}"), anon.get("/collections/land_survey/items/99999999")
        assert a.status_code == b.status_code == 404
        assert a.json()["description"].replace(str(pid), "X") == b.json()["description"].replace("99999999", "X")
    zones = {f["id"] for f in anon.get("/collections/planning_zones/items?limit=5000").json()["features"]}
    assert zones and not zones & set(facts["special_zones"])


def test_geometry_precision_is_reduced(anon):
    doc = anon.get("/collections/land_survey/items?limit=200").json()
    coords = [c for f in doc["features"] for c in re.findall(rb"-?\d+\.\d+", str(f["geometry"]).encode())]
    assert coords and all(len(c.split(b".")[1]) <= 5 for c in coords)


@pytest.mark.parametrize("z", [10, 12, 14, 16])
def test_tiles_hold_only_visible_layers_fields_and_rows(anon, facts, z):
    for prefix in ("/tiles", "/collections/land_survey/tiles"):
        r = anon.get(tile_path(prefix, facts["point"], z))
        assert r.status_code in (200, 204)
        assert_clean(r, facts)
        layers = decode(r.content)
        assert set(layers) <= VISIBLE_INTERNET
        for feature in layers.get("land_survey", {}).get("features", []):
            assert feature["properties"].get("class_code") != "09"
            assert feature["properties"].get("id") not in facts["special_patches"]


def test_zoom_cap_stops_finer_tiles(anon, facts):
    assert anon.get(tile_path("/collections/land_survey/tiles", facts["point"], 16)).status_code == 200
    assert anon.get(tile_path("/collections/land_survey/tiles", facts["point"], 17)).status_code == 204
    survey = anon.get("/collections/land_survey/tiles/WebMercatorQuad?f=tilejson").json()
    assert survey["maxzoom"] <= 16


def test_stac_describes_rasters_at_the_resolution_served(anon, leak_settings):
    """The master DEM (10 m) served under the internet cap (30 m): its STAC item is the grid tiles are read from."""
    for cid, cap in (("dem", 30.0), ("imagery", 0.5)):
        items = anon.get(f"/stac/collections/{cid}/items").json()["features"]
        assert items
        for item in items:
            props = item["properties"]
            assert props["gsd"] >= cap * 0.99
            assert all(b["spatial_resolution"] == props["gsd"] for b in item["assets"]["data"]["raster:bands"])
            (rows, cols), (a, _, x0, _, e, y0) = props["proj:shape"], props["proj:transform"]
            minx, miny, maxx, maxy = props["proj:bbox"]
            assert x0 + a * cols == pytest.approx(maxx) and y0 + e * rows == pytest.approx(miny)
    classified = leak_settings("classified")
    with TestClient(create_app(classified), headers={"X-API-Key": issue_key(classified)}) as full:
        for cid, cap in (("dem", 30.0), ("imagery", 0.5)):
            native = {i["id"]: i["properties"] for i in full.get(f"/stac/collections/{cid}/items").json()["features"]}
            for item in anon.get(f"/stac/collections/{cid}/items").json()["features"]:
                served, file = item["properties"], native[item["id"]]
                if file["gsd"] >= cap * 0.99:  # the file itself is served
                    assert (served["gsd"], served["proj:shape"]) == (file["gsd"], file["proj:shape"])
                else:  # an overview no finer than the cap is served
                    assert served["gsd"] > file["gsd"] and served["proj:shape"][0] < file["proj:shape"][0]


def test_anonymous_cached_responses_stay_anonymous(anon, facts):
    first = anon.get(tile_path("/tiles", facts["point"], 14))
    again = anon.get(tile_path("/tiles", facts["point"], 14), headers={"If-None-Match": first.headers.get("etag", "")})
    assert again.status_code in (200, 204, 304)
    assert_clean(again, facts)


# -- the government edition: masked and hidden fields, secret rows, narrower keys ----------------------

MASKED = re.compile(r"^.\*+$")


@pytest.fixture(scope="module")
def gov(leak_settings):
    """(privileged client, client whose key sees land_survey only); both on one government app."""
    settings = leak_settings("government")
    wide = issue_key(settings, "department, all collections")
    narrow = issue_key(settings, "department, survey only", frozenset({"land_survey"}))
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": wide}) as privileged:
        yield privileged, TestClient(app, headers={"X-API-Key": narrow}), TestClient(app)


def secret_only(facts: dict) -> dict:
    """What the government edition must still hide: secret values (names, ID numbers)."""
    return {**facts, "hidden": facts["secret"]}


def test_anonymous_callers_are_refused(gov):
    _, _, anonymous = gov
    r = anonymous.get("/collections/land_survey/items")
    assert r.status_code == 401 and r.json()["code"] == "Unauthorized"
    assert anonymous.get("/api").status_code == 200
    assert anonymous.get("/").status_code == 200


def test_names_masked_id_numbers_hidden(gov, facts):
    privileged, _, _ = gov
    r = privileged.get("/collections/parcels/items?limit=500")
    assert r.status_code == 200
    features = r.json()["features"]
    assert len(features) == 500 and all("owner_id_number" not in f["properties"] for f in features)
    assert all(MASKED.match(f["properties"]["owner_name"]) for f in features)
    assert_clean(r, secret_only(facts), hidden_ids=())
    one = privileged.get(f"/collections/parcels/items/{facts['a_parcel']}?f=html")
    assert one.status_code == 200 and "owner_id_number" not in one.text
    assert_clean(one, secret_only(facts), hidden_ids=())


@pytest.mark.parametrize("name", ["owner_id_number"])
def test_hidden_field_is_an_unknown_field(gov, name):
    privileged, _, _ = gov
    a = privileged.get(f"/collections/parcels/items?properties=unit_code,{name}")
    b = privileged.get("/collections/parcels/items?properties=unit_code,no_such_field")
    assert a.status_code == b.status_code == 400
    assert a.json()["description"].replace(name, "X") == b.json()["description"].replace("no_such_field", "X")
    masked = privileged.get("/collections/parcels/items?properties=owner_name&limit=3").json()["features"]
    assert all(set(f["properties"]) == {"owner_name"} and MASKED.match(f["properties"]["owner_name"]) for f in masked)


def test_secret_rows_are_gone_everywhere(gov, facts):
    privileged, _, _ = gov
    x, y = facts["point"]
    bbox = f"{x - 0.003},{y - 0.003},{x + 0.003},{y + 0.003}"
    doc = privileged.get(f"/collections/parcels/items?bbox={bbox}&limit=1000").json()
    assert facts["special_parcel"] not in {f["id"] for f in doc["features"]}
    assert doc.get("numberMatched") == doc["numberReturned"] == len(doc["features"])
    buildings = privileged.get(f"/collections/buildings/items?bbox={bbox}&limit=1000").json()["features"]
    assert not {f["id"] for f in buildings} & facts["special_buildings"]
    a = privileged.get(f"/collections/parcels/items/{facts['special_parcel']}")
    b = privileged.get("/collections/parcels/items/330212999999GB99999W00000000")
    assert a.status_code == b.status_code == 404
    assert a.json()["description"].replace(facts["special_parcel"], "X") == b.json()["description"].replace(
        "330212999999GB99999W00000000", "X")
    for prefix in ("/tiles", "/collections/parcels/tiles", "/collections/buildings/tiles"):
        for z in (14, 16):
            r = privileged.get(tile_path(prefix, facts["point"], z))
            assert_clean(r, secret_only(facts), hidden_ids=())
            layers = decode(r.content)
            for f in layers.get("parcels", {}).get("features", []):
                assert "owner_id_number" not in f["properties"]
                assert MASKED.match(f["properties"].get("owner_name", "x*"))
                assert f["properties"]["unit_code"] != facts["special_parcel"]
            assert not {f["properties"]["unit_code"] for f in layers.get("buildings", {}).get("features", [])} \
                & facts["special_buildings"]


def test_cached_privileged_responses_never_reach_a_narrower_key(gov, facts):
    privileged, narrow, _ = gov
    urls = ["/collections/parcels/items?limit=5", "/collections", tile_path("/tiles", facts["point"], 15),
            "/styles/basemap", "/collections/parcels/tiles/WebMercatorQuad?f=tilejson"]
    first = {u: privileged.get(u) for u in urls}
    for u in urls:
        privileged.get(u)  # now certainly cached for the privileged scope
    hidden_items = narrow.get(urls[0], headers={"If-None-Match": first[urls[0]].headers.get("etag", "*")})
    missing = narrow.get(f"/collections/{MISSING}/items?limit=5")
    assert hidden_items.status_code == missing.status_code == 404
    hidden_text = hidden_items.json()["description"].replace("parcels", "X")
    assert hidden_text == missing.json()["description"].replace(MISSING, "X")
    assert [c["id"] for c in narrow.get(urls[1]).json()["collections"]] == ["land_survey"]
    tile = narrow.get(urls[2], headers={"If-None-Match": first[urls[2]].headers.get("etag", "*")})
    assert tile.status_code in (200, 204) and set(decode(tile.content)) <= {"land_survey"}
    style = narrow.get(urls[3]).json()
    assert {layer.get("source-layer") for layer in style["layers"]} - {None} <= {"land_survey"}
    assert narrow.get(urls[4]).status_code == 404
    for u in urls:
        assert_clean(narrow.get(u), facts, hidden_ids=("parcels", "control_lines", "buildings"))


# -- the audit: a request is recorded as what it was, or refused -------------------------------------

BBOX_A, BBOX_B = "121.40,29.75,121.41,29.76", "121.4,29.75,121.7,29.95"


@pytest.fixture(scope="module")
def audited(leak_settings):
    """(government settings, app); each test issues its own keys and reads the rows they left."""
    settings = leak_settings("government")
    app = create_app(settings)
    with TestClient(app):
        yield settings, app


def audit_rows(settings: Settings, key_id: str | None, path: str, count: int = 1) -> list:
    """The audit rows of ``path`` (under ``key_id``; every key when ``None``), once the writer wrote them."""
    deadline = time.monotonic() + 15
    while True:
        with open_store(settings).opened_admin() as store:
            rows = [r for r in store.query_audit(None, key_id, None, 5000) if r.path == path]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


@pytest.mark.parametrize("query", [f"bbox={BBOX_A}&bbox={BBOX_B}", f"bb%6Fx={BBOX_A}&bbox={BBOX_B}",
                                   f"bbox={BBOX_A}&b%62ox={BBOX_B}&limit=5"])
def test_a_request_hiding_its_bbox_is_refused_and_recorded_as_sent(audited, query):
    settings, app = audited
    key = issue_key(settings, "hiding")
    r = TestClient(app, headers={"X-API-Key": key}).get(f"/collections/land_survey/items?{query}")
    assert r.status_code == 400 and "'bbox'" in r.json()["description"]
    [row] = audit_rows(settings, parse_key(key)[0], "/collections/land_survey/items")
    assert row.status == 400 and row.returned is None
    assert [v for k, v in parse_qsl(row.params) if k == "bbox"] == [BBOX_A, BBOX_B]


def test_a_request_cannot_blame_another_key(audited):
    settings, app = audited
    mine, theirs = issue_key(settings, "attacker"), issue_key(settings, "victim")
    mine_id, their_id = parse_key(mine)[0], parse_key(theirs)[0]
    c = TestClient(app, client=("10.1.2.3", 4000))
    forged = f"om_{their_id}_{'x' * len(parse_key(theirs)[1])}"
    assert c.get("/collections/land_survey/items/1", headers={"X-API-Key": forged}).status_code == 401
    both = c.get("/collections/land_survey/items/2", params={"api_key": theirs}, headers={"X-API-Key": mine})
    claimed = c.get("/collections/land_survey/items/3", params={"key_id": their_id}, headers={"X-API-Key": mine})
    assert both.status_code == 200 and claimed.status_code in (200, 400)
    assert audit_rows(settings, their_id, "/collections/land_survey/items/1", 0) == []
    [refused] = audit_rows(settings, None, "/collections/land_survey/items/1")
    assert refused.key_id is None and refused.status == 401 and refused.client_ip == "10.1.2.3"
    [header_wins] = audit_rows(settings, mine_id, "/collections/land_survey/items/2")
    assert header_wins.status == 200 and theirs not in (header_wins.params or "")
    assert "api_key" not in (header_wins.params or "")
    [param] = audit_rows(settings, mine_id, "/collections/land_survey/items/3")
    assert param.key_id == mine_id
    with open_store(settings).opened_admin() as store:
        assert store.query_audit(None, their_id, None, 100) == []


def test_control_characters_never_make_a_second_row(audited):
    settings, app = audited
    key = issue_key(settings, "injecting")
    c = TestClient(app, headers={"X-API-Key": key})
    assert c.get("/collections/land%0D%0Asurvey%E2%80%A8x/items?limit=1&x=%0A").status_code in (400, 404)
    rows = audit_rows(settings, parse_key(key)[0], "/collections/land\\x0d\\x0asurvey\\u2028x/items")
    assert len(rows) == 1 and rows[0].collection == "land\\x0d\\x0asurvey\\u2028x" and "\n" not in rows[0].params


def test_library_files_are_audited_for_anonymous_callers(audited):
    settings, app = audited
    TestClient(app, client=("10.4.4.4", 1)).get("/map/lib/maplibre-gl.css")
    rows = [r for r in audit_rows(settings, None, "/map/lib/maplibre-gl.css") if r.client_ip == "10.4.4.4"]
    assert len(rows) == 1 and rows[0].key_id is None


def test_no_header_tells_a_cache_hit_from_a_miss(anon, facts):
    path = tile_path("/collections/land_survey/tiles", facts["point"], 15)
    first, second = anon.get(path), anon.get(path)
    items = [anon.get("/collections/land_survey/items?limit=3") for _ in range(2)]
    for r in (first, second, *items):
        assert r.status_code in (200, 204) and not any(h.lower().startswith("x-cache") for h in r.headers)
    per_request = {"date", "x-request-id"}  # the request id is random, the same for a hit and a miss
    assert {k: v for k, v in first.headers.items() if k not in per_request} == {
        k: v for k, v in second.headers.items() if k not in per_request}


def test_head_is_audited_as_head(audited):
    settings, app = audited
    key = issue_key(settings, "heading")
    c = TestClient(app, headers={"X-API-Key": key})
    assert c.head("/collections/land_survey/items?limit=2").status_code == 200
    [row] = audit_rows(settings, parse_key(key)[0], "/collections/land_survey/items")
    assert (row.method, row.status, row.returned, row.params) == ("HEAD", 200, 2, "limit=2")
