"""OGC API Common + Features Part 1 behaviour, run on every backend."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
import shapely
from shapely.geometry import shape

from server.codes.unit_code import parse_unit_code

VECTOR = ("admin_boundaries", "buildings", "control_lines", "land_survey", "parcels", "planning_zones")
BBOX = (121.50, 29.80, 121.58, 29.86)


def path_of(href: str) -> str:
    parts = urlsplit(href)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_landing_links(client):
    doc = client.get("/").json()
    rels = {ln["rel"] for ln in doc["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= rels
    html = client.get("/", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and "OneMap" in html.text


def test_conformance(client):
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in classes


def test_openapi_is_valid(client):
    from openapi_spec_validator import validate

    spec = client.get("/api").json()
    validate(spec)
    assert "/collections/{collectionId}/items" in spec["paths"]


def test_collections_list(client):
    doc = client.get("/collections").json()
    ids = {c["id"] for c in doc["collections"]}
    assert set(VECTOR) <= ids
    parcels = next(c for c in doc["collections"] if c["id"] == "parcels")
    assert parcels["itemType"] == "feature"
    assert any(ln["rel"] == "items" and ln["type"] == "application/geo+json" for ln in parcels["links"])
    english = client.get("/collections/parcels", headers={"Accept-Language": "en"}).json()
    assert english["title"].startswith("Registered")


@pytest.mark.parametrize("collection_id", VECTOR)
def test_first_page_of_every_collection(client, collection_id):
    r = client.get(f"/collections/{collection_id}/items")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    assert doc["numberReturned"] == len(doc["features"]) > 0
    dt.datetime.strptime(doc["timeStamp"], "%Y-%m-%dT%H:%M:%SZ")
    for f in doc["features"]:
        geom = shape(f["geometry"])
        assert geom.is_valid and not geom.is_empty
        minx, miny, maxx, maxy = geom.bounds
        assert 121.3 < minx < maxx < 121.8 and 29.6 < miny < maxy < 30.0


def test_bbox_filters_by_intersection(client):
    doc = client.get("/collections/parcels/items", params={"bbox": ",".join(map(str, BBOX)), "limit": 500}).json()
    assert doc["features"]
    box = shapely.box(*BBOX)
    assert all(shape(f["geometry"]).intersects(box) for f in doc["features"])


def test_limit_and_properties(client):
    doc = client.get("/collections/parcels/items", params={"limit": 3, "properties": "area_m2,unit_code"}).json()
    assert doc["numberReturned"] == 3
    for f in doc["features"]:
        assert list(f["properties"]) == ["unit_code", "area_m2"]
        assert f["id"] == f["properties"]["unit_code"]
        parse_unit_code(f["id"])


def test_datetime_interval_and_open_ends(client):
    doc = client.get("/collections/parcels/items", params={"datetime": "2020-01-01/2020-12-31", "limit": 200}).json()
    dates = [f["properties"]["registration_date"] for f in doc["features"]]
    assert dates and all("2020-01-01" <= d <= "2020-12-31" for d in dates)
    doc = client.get("/collections/parcels/items", params={"datetime": "../2016-06-30T00:00:00Z", "limit": 200}).json()
    assert all(f["properties"]["registration_date"] <= "2016-06-30" for f in doc["features"])
    one = doc["features"][0]["properties"]["registration_date"]
    doc = client.get("/collections/parcels/items", params={"datetime": one, "limit": 200}).json()
    assert {f["properties"]["registration_date"] for f in doc["features"]} == {one}


def test_paging_visits_every_feature_once(client):
    bbox = ",".join(map(str, BBOX))
    everything = client.get("/collections/parcels/items", params={"bbox": bbox, "limit": 10000}).json()
    expected = [f["id"] for f in everything["features"]]
    assert everything["numberMatched"] == len(expected) > 60
    seen, pages = [], []
    href = f"/collections/parcels/items?bbox={bbox}&limit=25"
    while href:
        doc = client.get(href).json()
        pages.append(doc)
        seen += [f["id"] for f in doc["features"]]
        nxt = [ln["href"] for ln in doc["links"] if ln["rel"] == "next"]
        href = path_of(nxt[0]) if nxt else None
    assert seen == expected
    assert "numberMatched" not in pages[0]
    prev = [ln["href"] for ln in pages[2]["links"] if ln["rel"] == "prev"][0]
    back = client.get(path_of(prev)).json()
    assert [f["id"] for f in back["features"]] == [f["id"] for f in pages[1]["features"]]
    assert parse_qs(urlsplit(prev).query)["bbox"] == [bbox]


def test_feature_by_id(client):
    first = client.get("/collections/parcels/items?limit=1").json()["features"][0]
    r = client.get(f"/collections/parcels/items/{first['id']}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    assert doc["id"] == first["id"] and doc["properties"] == first["properties"]
    assert {"self", "collection"} <= {ln["rel"] for ln in doc["links"]}
    html = client.get(f"/collections/parcels/items/{first['id']}?f=html")
    assert first["id"] in html.text and "<table>" in html.text


def test_html_pages(client):
    page = client.get("/collections/land_survey/items?f=html&limit=5")
    assert page.status_code == 200 and "land_code" in page.text
    assert "三调" in client.get("/collections?f=html").text or "土地" in client.get("/collections?f=html").text


BAD = [
    ("/collections/parcels/items?bbox=1,2,3", "bbox"),
    ("/collections/parcels/items?bbox=a,b,c,d", "bbox"),
    ("/collections/parcels/items?bbox=3300000,40600000,3310000,40500000&bbox-crs=[EPSG:4549]", "bbox"),
    ("/collections/parcels/items?bbox=121.5,29.9,121.7,29.8", "bbox"),
    ("/collections/parcels/items?bbox=200,0,201,1", "bbox"),
    ("/collections/parcels/items?bbox=0,-95,1,1", "bbox"),
    ("/collections/parcels/items?bbox=nan,1,2,3", "bbox"),
    ("/collections/parcels/items?datetime=yesterday", "datetime"),
    ("/collections/parcels/items?datetime=2020-13-01", "datetime"),
    ("/collections/parcels/items?datetime=2021-01-01/2020-01-01", "datetime"),
    ("/collections/parcels/items?datetime=../..", "datetime"),
    ("/collections/parcels/items?datetime=2020-01-01T00:00:00", "datetime"),
    ("/collections/admin_boundaries/items?datetime=2020-01-01", "datetime"),
    ("/collections/parcels/items?limit=0", "limit"),
    ("/collections/parcels/items?limit=-1", "limit"),
    ("/collections/parcels/items?limit=1.5", "limit"),
    ("/collections/parcels/items?limit=ten", "limit"),
    ("/collections/parcels/items?properties=owner_name,nope", "nope"),
    ("/collections/parcels/items?cursor=garbage!", "cursor"),
    ("/collections/parcels/items?colour=red", "colour"),
    ("/collections/parcels/items?f=xml", "f"),
]


@pytest.mark.parametrize("url,word", BAD)
def test_bad_input_is_a_clear_4xx(client, url, word):
    r = client.get(url)
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    assert body["code"] and word in body["description"]
    for leak in ("Traceback", "SELECT", ".py", "/tmp", "/work", "site-packages"):
        assert leak not in r.text


@pytest.mark.parametrize(
    "url",
    ["/collections/nowhere", "/collections/nowhere/items", "/collections/parcels/items/330212000000GB00000W99999999",
     "/collections/land_survey/items/not-a-number", "/collections/land_survey/items/999999999", "/no/such/path"],
)
def test_missing_things_are_404(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert r.json()["code"] == "NotFound"


def test_unknown_collection_answers_like_every_other_unknown(client):
    a = client.get("/collections/secret_stuff").json()
    b = client.get("/collections/nowhere").json()
    assert a["code"] == b["code"]
    assert a["description"].replace("secret_stuff", "X") == b["description"].replace("nowhere", "X")
