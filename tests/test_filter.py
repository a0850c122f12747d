"""CQL2 filtering (Features Part 3) on items, on both backends, checked against an independent oracle.

Each filter of the corpus comes with a plain-Python test of a feature; every backend must return
exactly the features the oracle picks from the unfiltered collection, so both backends agree.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import urlencode

import pytest
import shapely
from shapely.geometry import shape

from server.filters.pgsql import INNER_MARGIN, inner_square, pg_filter
from server.filters.tree import Compare, Lit, Logic, Not, Prop, Spatial

POLY = "POLYGON((121.52 29.82, 121.56 29.82, 121.56 29.85, 121.52 29.85, 121.52 29.82))"
AREA = shapely.from_wkt(POLY)
# a diagonal strip too thin for an inner square, across many parcels' bounding boxes
STRIP = shapely.LineString([(121.47, 29.79), (121.62, 29.90)]).buffer(0.00005, 2)
# a round site with a hole (rows inside its inner square are admitted without the exact test on PostGIS)
RING = shapely.Point(121.54, 29.835).buffer(0.012, 50).difference(shapely.Point(121.545, 29.835).buffer(0.003, 20))


def _date(f):
    value = f["properties"]["registration_date"]
    return dt.date.fromisoformat(value) if value else None


def _area(f):
    return f["properties"]["area_m2"]


def _use(f):
    return f["properties"]["land_use"]


CORPUS = [
    ("area_m2 > 80000", lambda f: _area(f) is not None and _area(f) > 80000),
    ("area_m2 <= 30000 AND land_use = '0702'",
     lambda f: _area(f) is not None and _area(f) <= 30000 and _use(f) == "0702"),
    ("land_use <> '0101' OR area_m2 < 20000", lambda f: (_use(f) is not None and _use(f) != "0101")
     or (_area(f) is not None and _area(f) < 20000)),
    ("NOT (land_use = '0101')", lambda f: _use(f) is not None and _use(f) != "0101"),
    ("land_use LIKE '0_0%'", lambda f: re.fullmatch("0.0.*", _use(f) or "") is not None),
    ("unit_code LIKE '%GB0001_W%'", lambda f: re.search("GB0001.W", f["id"]) is not None),
    ("land_use IN ('0102', '0201', '0702')", lambda f: _use(f) in ("0102", "0201", "0702")),
    ("land_use NOT IN ('0101', '0702')", lambda f: _use(f) is not None and _use(f) not in ("0101", "0702")),
    ("area_m2 BETWEEN 40000 AND 60000", lambda f: _area(f) is not None and 40000 <= _area(f) <= 60000),
    ("town_code IS NULL", lambda f: f["properties"]["town_code"] is None),
    ("town_code IS NOT NULL", lambda f: f["properties"]["town_code"] is not None),
    ("area_m2 * 2 + 10 > 150000", lambda f: _area(f) is not None and _area(f) * 2 + 10 > 150000),
    ("area_m2 / 0 > 1", lambda f: False),
    ("land_use > '05H1'", lambda f: _use(f) is not None and _use(f) > "05H1"),
    (f"S_INTERSECTS(geometry, {POLY})", lambda f: shape(f["geometry"]).intersects(AREA)),
    (f"S_INTERSECTS(geometry, {RING.wkt})", lambda f: shape(f["geometry"]).intersects(RING)),
    (f"S_WITHIN(geometry, {POLY})", lambda f: shape(f["geometry"]).within(AREA)),
    (f"S_DISJOINT(geometry, {POLY}) AND area_m2 > 90000", lambda f: shape(f["geometry"]).disjoint(AREA)
     and _area(f) > 90000),
    (f"S_INTERSECTS(geometry, {RING.wkt}) OR area_m2 > 90000",  # PostGIS: candidates meet one or the other
     lambda f: shape(f["geometry"]).intersects(RING) or _area(f) > 90000),
    (f"NOT S_INTERSECTS(geometry, {POLY}) OR land_use = '0702'",  # nothing cheaper implied: no candidates
     lambda f: not shape(f["geometry"]).intersects(AREA) or _use(f) == "0702"),
    (f"NOT S_INTERSECTS(geometry, {STRIP.wkt})", lambda f: not shape(f["geometry"]).intersects(STRIP)),
    (f"NOT (S_WITHIN(geometry, {POLY}) AND area_m2 > 50000)",
     lambda f: not (shape(f["geometry"]).within(AREA) and _area(f) > 50000)),
    ("S_CONTAINS(geometry, POINT(121.54 29.835))",
     lambda f: shape(f["geometry"]).contains(shapely.Point(121.54, 29.835))),
    ("S_INTERSECTS(geometry, BBOX(121.50, 29.80, 121.53, 29.83))",
     lambda f: shape(f["geometry"]).intersects(shapely.box(121.50, 29.80, 121.53, 29.83))),
    ("T_BEFORE(registration_date, DATE('2017-06-01'))",
     lambda f: _date(f) is not None and _date(f) < dt.date(2017, 6, 1)),
    ("T_AFTER(registration_date, TIMESTAMP('2022-03-01T12:00:00Z'))",
     lambda f: _date(f) is not None and _date(f) > dt.date(2022, 3, 1)),
    ("T_INTERSECTS(registration_date, INTERVAL('2019-01-01', '2019-12-31'))",
     lambda f: _date(f) is not None and dt.date(2019, 1, 1) <= _date(f) <= dt.date(2019, 12, 31)),
    ("T_DURING(registration_date, INTERVAL('2020-01-01', '..'))",
     lambda f: _date(f) is not None and _date(f) > dt.date(2020, 1, 1)),
    ("registration_date >= DATE('2021-01-01') AND NOT T_AFTER(registration_date, DATE('2022-01-01'))",
     lambda f: _date(f) is not None and dt.date(2021, 1, 1) <= _date(f) <= dt.date(2022, 1, 1)),
    ("'a' < 'b' AND land_use >= '0702'", lambda f: _use(f) is not None and _use(f) >= "0702"),
    ("TRUE", lambda f: True),
]

JSON_CORPUS = [
    ({"op": "and", "args": [{"op": ">", "args": [{"property": "area_m2"}, 50000]},
                            {"op": "in", "args": [{"property": "land_use"}, ["0101", "0702"]]}]},
     lambda f: _area(f) is not None and _area(f) > 50000 and _use(f) in ("0101", "0702")),
    ({"op": "s_intersects", "args": [{"property": "geometry"}, json.loads(shapely.to_geojson(AREA))]},
     lambda f: shape(f["geometry"]).intersects(AREA)),
    ({"op": "t_intersects", "args": [{"property": "registration_date"}, {"interval": ["2019-01-01", "2019-12-31"]}]},
     lambda f: _date(f) is not None and dt.date(2019, 1, 1) <= _date(f) <= dt.date(2019, 12, 31)),
]


@pytest.fixture(scope="module")
def everything(client):
    doc = client.get("/collections/parcels/items", params={"limit": 10000}).json()
    assert doc["numberReturned"] == len(doc["features"]) > 1000
    return doc["features"]


def _ids(client, **params):
    r = client.get("/collections/parcels/items", params={"limit": 10000, **params})
    assert r.status_code == 200, r.text
    return [f["id"] for f in r.json()["features"]]


@pytest.mark.parametrize("text,oracle", CORPUS, ids=[c[0][:60] for c in CORPUS])
def test_cql2_text_matches_the_oracle(client, everything, text, oracle):
    expected = [f["id"] for f in everything if oracle(f)]
    assert _ids(client, filter=text) == expected


@pytest.mark.parametrize("doc,oracle", JSON_CORPUS, ids=["and-in", "s_intersects", "t_intersects"])
def test_cql2_json_matches_the_oracle(client, everything, doc, oracle):
    expected = [f["id"] for f in everything if oracle(f)]
    assert expected
    assert _ids(client, filter=json.dumps(doc), **{"filter-lang": "cql2-json"}) == expected


def test_corpus_is_not_trivial(everything):
    sizes = [sum(map(oracle, everything)) for _, oracle in CORPUS]
    assert sum(1 for s in sizes if 0 < s < len(everything)) >= len(sizes) - 4  # IS NULL, /0, TRUE, IS NOT NULL


def test_filter_pages_with_bbox_and_cursor(client, everything):
    text = "area_m2 > 30000 AND land_use IN ('0101', '0702', '0201')"
    box = (121.50, 29.80, 121.58, 29.86)
    expected = [f["id"] for f in everything
                if f["properties"]["area_m2"] > 30000 and _use(f) in ("0101", "0702", "0201")
                and shape(f["geometry"]).intersects(shapely.box(*box))]
    assert len(expected) > 25
    query = urlencode({"limit": 10, "bbox": ",".join(map(str, box)), "filter": text})
    got, url = [], f"/collections/parcels/items?{query}"
    for _ in range(100):
        if url is None:
            break
        doc = client.get(url).json()
        got += [f["id"] for f in doc["features"]]
        url = next((k["href"] for k in doc["links"] if k["rel"] == "next"), None)  # carries the filter
    assert url is None and got == expected


def test_epsg4490_filter_crs_is_lat_lon(client):
    swapped = "POLYGON((29.82 121.52, 29.82 121.56, 29.85 121.56, 29.85 121.52, 29.82 121.52))"
    crs84 = _ids(client, filter=f"S_INTERSECTS(geometry, {POLY})")
    assert crs84 and _ids(client, filter=f"S_INTERSECTS(geometry, {swapped})",
                          **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4490"}) == crs84


def test_conformance_declares_filtering(client):
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter" in classes
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in classes
    assert "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions" in classes
    assert not any("temporal-functions" in c or "arithmetic" in c for c in classes)


@pytest.mark.parametrize("polygon", [RING, AREA, shapely.MultiPolygon([AREA, shapely.box(121.6, 29.9, 121.61, 29.91)])])
def test_the_inner_square_lies_inside_the_polygon_with_a_margin(polygon):
    square = shapely.box(*inner_square(polygon))
    assert polygon.contains(square.buffer(INNER_MARGIN * 0.99, join_style="mitre"))
    radius = shapely.maximum_inscribed_circle(polygon).length
    assert square.area > 0.9 * 2 * (radius - INNER_MARGIN * 2) ** 2  # near the largest square in that circle


def test_a_polygon_too_thin_for_an_inner_square_gets_none():
    assert inner_square(shapely.box(121.5, 29.8, 121.6, 29.8001)) == (None, None, None, None)


BIG = Compare(">", Prop("area_m2", "number"), Lit(50000.0, "number"))
SITE_TEST = Spatial("intersects", AREA)
_BIG_SQL = '("area_m2" > %(f0)s::double precision)'
_OVERLAP = '"geom" && (SELECT ST_GeomFromWKB(%({})s, 4490))'


@pytest.mark.parametrize("tree, near", [
    (SITE_TEST, _OVERLAP.format("f0")),
    (Logic("and", (BIG, SITE_TEST)), f"({_BIG_SQL} AND {_OVERLAP.format('f1')})"),
    (Logic("or", (BIG, Spatial("within", AREA))), f"({_BIG_SQL} OR {_OVERLAP.format('f1')})"),
    (Logic("and", (BIG, Not(SITE_TEST))), f"({_BIG_SQL})"),
    (Logic("or", (BIG, Not(SITE_TEST))), None),
    (Spatial("disjoint", AREA), None),
    (BIG, None),
])
def test_candidates_leave_out_only_exact_geometry_tests(tree, near):
    """``near`` (what PostGIS reads a page's candidates by) is implied by the filter and holds no exact
    test; ``None`` when there is no test to leave out or nothing cheaper is implied. Filter geometries
    are computed once per statement (scalar subqueries)."""
    found = pg_filter(tree, "geom", 4490, True)
    assert (None if found.near is None else found.near.as_string(None)) == near
    exact = found.exact.as_string(None)
    assert "ST_GeomFromWKB" not in exact.replace("(SELECT ST_GeomFromWKB", "")
