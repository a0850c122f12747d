"""OGC API Features Part 2: collection CRS lists, crs and bbox-crs on items and item, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from server.crs import CRS84_URI, gk3_zones, parse_crs
from server.errors import InvalidParameter

EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
ITEMS = "/collections/parcels/items"


def coords(doc: dict) -> list[np.ndarray]:
    return [shapely.get_coordinates(shape(f["geometry"])) for f in doc["features"]]


def test_parse_crs_forms():
    assert parse_crs(CRS84_URI).srid == 4326 and not parse_crs(CRS84_URI).lat_first
    gk = parse_crs(EPSG.format(4549))
    assert (gk.srid, gk.lat_first, gk.projected, gk.digits) == (4549, True, True, 3)
    assert parse_crs("[EPSG:3857]").lat_first is False
    assert parse_crs("http://www.opengis.net/def/crs/EPSG/0/4490").lat_first is True
    for bad in ("EPSG", "http://example.com/crs/4549", "http://www.opengis.net/def/crs/EPSG/0/99999999"):
        with pytest.raises(InvalidParameter):
            parse_crs(bad)


def test_zones_cover_the_extent():
    assert gk3_zones((121.40, 29.75, 121.70, 29.95)) == [4549, 4550]
    assert gk3_zones((119.0, 29.0, 120.0, 30.0)) == [4549]
    assert gk3_zones((73.0, 20.0, 136.0, 50.0)) == list(range(4534, 4555))


def test_collection_lists_its_crs(client):
    doc = client.get("/collections/parcels").json()
    assert doc["crs"][0] == CRS84_URI
    assert {EPSG.format(c) for c in (4490, 4326, 3857, 4549)} <= set(doc["crs"])
    assert doc["storageCrs"] == EPSG.format(4490) and doc["storageCrs"] in doc["crs"]
    conformance = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conformance


def test_items_in_a_gauss_kruger_zone(client):
    base = client.get(ITEMS, params={"limit": 5})
    gk = client.get(ITEMS, params={"limit": 5, "crs": EPSG.format(4549)})
    assert gk.status_code == 200 and gk.headers["content-crs"] == f"<{EPSG.format(4549)}>"
    assert base.headers["content-crs"] == f"<{CRS84_URI}>"
    to_gk = Transformer.from_crs(4490, 4549, always_xy=True)
    for lonlat, northeast in zip(coords(base.json()), coords(gk.json()), strict=True):
        east, north = to_gk.transform(lonlat[:, 0], lonlat[:, 1])
        assert np.abs(northeast[:, 0] - north).max() < 0.02 and np.abs(northeast[:, 1] - east).max() < 0.02
        assert northeast[:, 0].min() > 3_290_000 and 300_000 < northeast[:, 1].min() < 700_000
        assert np.allclose(northeast, np.round(northeast, 3), rtol=0, atol=1e-9)  # millimetres


@pytest.mark.parametrize("code", [4490, 4326])
def test_geographic_crs_is_lat_lon(client, code):
    base = client.get(ITEMS, params={"limit": 3}).json()
    swapped = client.get(ITEMS, params={"limit": 3, "crs": EPSG.format(code)}).json()
    for a, b in zip(coords(base), coords(swapped), strict=True):
        assert np.array_equal(a[:, ::-1], b)


def test_web_mercator(client):
    doc = client.get(ITEMS, params={"limit": 2, "crs": EPSG.format(3857)}).json()
    xy = np.vstack(coords(doc))
    assert xy[:, 0].min() > 13_500_000 and 3_400_000 < xy[:, 1].min() < 3_500_000


def test_item_in_crs(client):
    first = client.get(ITEMS, params={"limit": 1}).json()["features"][0]
    r = client.get(f"{ITEMS}/{first['id']}", params={"crs": EPSG.format(4490)})
    assert r.status_code == 200 and r.headers["content-crs"] == f"<{EPSG.format(4490)}>"
    got = shapely.get_coordinates(shape(r.json()["geometry"]))
    assert np.array_equal(got, shapely.get_coordinates(shape(first["geometry"]))[:, ::-1])


def test_bbox_crs_projected_is_exact(client):
    """A box given in EPSG:4549 (northing first) selects what intersects that box, not its lon/lat envelope."""
    to_gk = Transformer.from_crs(4490, 4549, always_xy=True)
    e0, n0 = to_gk.transform(121.52, 29.82)
    e1, n1 = to_gk.transform(121.54, 29.835)
    bbox = f"{n0},{e0},{n1},{e1}"
    doc = client.get(ITEMS, params={"bbox": bbox, "bbox-crs": EPSG.format(4549), "limit": 1000,
                                    "crs": EPSG.format(4549)}).json()
    assert doc["features"] and doc["numberMatched"] == len(doc["features"])
    box = shapely.box(n0, e0, n1, e1)
    assert all(shape(f["geometry"]).intersects(box) for f in doc["features"])
    everything = client.get(ITEMS, params={"bbox": "121.51,29.81,121.55,29.845", "limit": 2000,
                                           "crs": EPSG.format(4549)}).json()
    expected = {f["id"] for f in everything["features"] if shape(f["geometry"]).intersects(box)}
    assert {f["id"] for f in doc["features"]} == expected


def test_bbox_crs_lat_lon(client):
    lonlat = client.get(ITEMS, params={"bbox": "121.52,29.82,121.54,29.835", "limit": 500}).json()
    latlon = client.get(ITEMS, params={"bbox": "29.82,121.52,29.835,121.54", "limit": 500,
                                       "bbox-crs": EPSG.format(4490)}).json()
    assert [f["id"] for f in lonlat["features"]] == [f["id"] for f in latlon["features"]] != []


@pytest.mark.parametrize("params, words", [
    ({"crs": EPSG.format(2000)}, ["crs", "not supported", CRS84_URI, EPSG.format(4549)]),
    ({"crs": "EPSG:4549x"}, ["crs", "not a CRS URI"]),
    ({"bbox-crs": EPSG.format(32651), "bbox": "1,2,3,4"}, ["bbox-crs", "not supported"]),
    ({"crs": EPSG.format(99999)}, ["EPSG:99999"]),
])
def test_bad_crs_is_400(client, params, words):
    r = client.get(ITEMS, params=params)
    assert r.status_code == 400
    body = r.json()
    assert all(w in body["description"] for w in words), body
    assert client.get(f"{ITEMS}/x", params={"crs": EPSG.format(2000)}).status_code == 400
