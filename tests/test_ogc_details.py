"""HTTP and OGC details clients trip on: raster collections' data type and missing items, the DEM
tileset relation, the landing page's data link, Accept q-values, ``Accept-Encoding: *`` and a bbox
crossing the antimeridian. On both backends."""

from __future__ import annotations

import pytest

from server.web import negotiate

REL = "http://www.opengis.net/def/rel/ogc/1.0/"


def test_raster_collections_have_a_data_type_and_no_items(client):
    collections = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    for cid, data_type in (("dem", "coverage"), ("imagery", "map")):
        doc = client.get(f"/collections/{cid}").json()
        assert collections[cid]["dataType"] == doc["dataType"] == data_type and "itemType" not in doc
        assert not [lk for lk in doc["links"] if lk["rel"] == "items"]
        tilesets = [lk for lk in doc["links"] if lk["rel"].startswith(REL + "tilesets-")]
        assert [lk["rel"] for lk in tilesets] == [REL + f"tilesets-{data_type}"]
        listed = client.get(f"/collections/{cid}/tiles").json()["tilesets"]
        assert {t["dataType"] for t in listed} == {data_type}
        assert client.get(f"/collections/{cid}/tiles/WebMercatorQuad").json()["dataType"] == data_type
        items = client.get(f"/collections/{cid}/items")
        assert items.status_code == 404
        assert f"'{cid}' is a raster collection" in items.json()["description"]
        assert "does not exist" not in items.json()["description"]
    parcels = client.get("/collections/parcels").json()
    assert parcels["itemType"] == "feature" and "dataType" not in parcels
    assert client.get("/collections/parcels/tiles").json()["tilesets"][0]["dataType"] == "vector"
    missing = client.get("/collections/no_such_thing/items").json()["description"]
    assert "does not exist" in missing  # a missing (or hidden) collection still answers as before


def test_landing_first_data_link_is_collections(client):
    links = client.get("/").json()["links"]
    first = next(lk for lk in links if lk["rel"] == "data")
    assert first["href"].endswith("/collections") and first["type"] == "application/json"


@pytest.mark.parametrize("accept, offered, chosen", [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", ("json", "html"), "html"),
    ("application/json;q=0.5, text/html;q=0.4", ("json", "html"), "json"),
    ("text/html;q=0.4, application/json;q=0.5", ("json", "html"), "json"),
    ("text/html, application/json;q=0.9", ("json", "html"), "html"),
    ("text/html;q=0, */*", ("json", "html"), "json"),
    ("*/*", ("json", "html"), "json"),
    ("text/*", ("json", "html"), "html"),
    ("application/geo+json", ("json", "html", "csv"), "json"),
    ("text/csv, application/json;q=0.1", ("json", "html", "csv", "fgb"), "csv"),
    ("application/vnd.oai.openapi+json;version=3.0", ("json", "openapi"), "openapi"),
    ("image/png", ("json", "html"), None),
    ("", ("json", "html"), None),
    ("garbage;;q=x", ("json", "html"), None),
])
def test_accept_q_values(accept, offered, chosen):
    assert negotiate(accept, offered) == chosen


def test_accept_chooses_the_representation_on_routes(client):
    page = client.get("/collections", headers={"Accept": "application/json;q=0.5, text/html;q=0.9"})
    assert page.headers["content-type"].startswith("text/html")
    data = client.get("/collections", headers={"Accept": "text/html;q=0.2, application/json"})
    assert data.headers["content-type"].startswith("application/json")
    tilejson = client.get("/collections/parcels/tiles/WebMercatorQuad",
                          headers={"Accept": "application/json;q=0.3, application/vnd.mapbox.tile+json"})
    assert tilejson.json()["tilejson"] == "3.0.0"
    tileset = client.get("/collections/parcels/tiles/WebMercatorQuad",
                         headers={"Accept": "application/json, application/vnd.mapbox.tile+json;q=0.1"})
    assert "tilejson" not in tileset.json()
    api = client.get("/api", headers={"Accept": "application/json;q=0.1, application/vnd.oai.openapi+json"})
    assert api.headers["content-type"].startswith("application/vnd.oai.openapi+json")


def test_accept_encoding_star_gets_gzip(client):
    r = client.get("/collections/parcels/items", params={"limit": 50}, headers={"Accept-Encoding": "*"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert len(r.json()["features"]) == 50  # httpx decoded the gzip body
    assert client.get("/collections/parcels/items", params={"limit": 50},
                      headers={"Accept-Encoding": "br, *"}).headers["content-encoding"] == "br"


def _ids(client, bbox: str) -> set:
    r = client.get("/collections/parcels/items", params={"bbox": bbox, "limit": 10000, "properties": "unit_code"})
    assert r.status_code == 200, r.text
    return {f["id"] for f in r.json()["features"]}


def test_bbox_crossing_the_antimeridian(client):
    west = _ids(client, "-180,29.7,121.5,30")
    crossing = _ids(client, "170,29.7,121.5,30")  # from 170E eastwards over 180 to 121.5E
    assert west and crossing == west
    assert _ids(client, "121.65,29.7,121.45,30") == _ids(client, "-180,29.7,121.45,30") | _ids(
        client, "121.65,29.7,180,30")
    # EPSG:4490 is latitude first: the same box, axes swapped
    lat_first = client.get("/collections/parcels/items", params={
        "bbox": "29.7,170,30,121.5", "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4490",
        "limit": 10000, "properties": "unit_code"})
    assert {f["id"] for f in lat_first.json()["features"]} == west
    projected = client.get("/collections/parcels/items", params={
        "bbox": "3300000,40600000,3310000,40500000", "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4549"})
    assert projected.status_code == 400 and "minimum" in projected.json()["description"]
