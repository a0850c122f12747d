"""STAC API Filter, Sort and Fields on /stac/search (GET and POST), and /stac/queryables."""

from __future__ import annotations

import pytest

from tests.support import rasters

raster_dir, raster_client = rasters.raster_dir, rasters.raster_client  # the fixtures this module uses

S = "/stac/search"
HILLS = "S_INTERSECTS(geometry, POINT(121.66 29.77))"


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_conformance_and_queryables(raster_client):
    classes = raster_client.get("/stac/conformance").json()["conformsTo"]
    for ext in ("item-search#filter", "item-search#sort", "item-search#fields"):
        assert any(c.endswith(ext) for c in classes), ext
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json" in classes
    r = raster_client.get("/stac/queryables")
    assert r.headers["content-type"] == "application/schema+json"
    props = r.json()["properties"]
    assert props["datetime"] == {"type": "string", "title": "Acquisition time", "format": "date-time"}
    assert {"id", "collection", "gsd", "geometry"} <= set(props)


@pytest.mark.parametrize("text,expected", [
    ("collection = 'imagery'", ["imagery_20231115", "imagery_20240518"]),
    ("T_AFTER(datetime, TIMESTAMP('2024-01-01T00:00:00Z'))", ["imagery_20240518"]),
    ("datetime < TIMESTAMP('2024-01-01T00:00:00Z') AND collection = 'imagery'", ["imagery_20231115"]),
    ("id LIKE 'dem%' OR gsd > 100", ["dem_2023"]),
    (HILLS, ["dem_2023"]),
    ("NOT " + HILLS, ["imagery_20231115", "imagery_20240518"]),
])
def test_filter_get_and_post(raster_client, text, expected):
    got = sorted(_ids(raster_client.get(S, params={"filter": text})))
    assert rasters.acquisitions(got) == expected and len(got) == sum(4 if "imagery" in e else 1 for e in expected)
    assert sorted(_ids(raster_client.post(S, json={"filter": text, "filter-lang": "cql2-text"}))) == got


def test_filter_json_in_a_post_and_its_next_link(raster_client):
    body = {"filter": {"op": "=", "args": [{"property": "collection"}, "imagery"]}, "limit": 1,
            "sortby": [{"field": "properties.datetime", "direction": "desc"}, {"field": "id", "direction": "asc"}]}
    body["limit"] = 4  # one acquisition's sheets a page
    first = raster_client.post(S, json=body).json()
    assert [f["id"] for f in first["features"]] == rasters.sheet_ids("imagery_20240518") and first["numberMatched"] == 8
    nxt = next(k for k in first["links"] if k["rel"] == "next")
    assert nxt["body"]["filter"] == body["filter"] and "filter_lang" not in nxt["body"]
    assert _ids(raster_client.post(S, json=nxt["body"])) == rasters.sheet_ids("imagery_20231115")


def test_sortby(raster_client):
    assert rasters.acquisitions(_ids(raster_client.get(S, params={"sortby": "-datetime"}))) == [
        "imagery_20240518", "imagery_20231115", "dem_2023"]
    assert _ids(raster_client.get(S, params={"sortby": "+collection,-id"})) == [
        "dem_2023", *rasters.sheet_ids("imagery_20240518")[::-1], *rasters.sheet_ids("imagery_20231115")[::-1]]
    r = raster_client.get(S, params={"sortby": "cloud_cover"})
    assert r.status_code == 400 and "unknown field 'cloud_cover'" in r.json()["description"]


def test_fields(raster_client):
    doc = raster_client.get(S, params={"fields": "id,properties.datetime", "ids": "dem_2023"}).json()
    item = doc["features"][0]
    assert set(item) == {"type", "stac_version", "id", "links", "properties"}
    assert set(item["properties"]) == {"datetime"}
    doc = raster_client.post(S, json={"fields": {"exclude": ["assets", "properties.gsd"]}, "ids": ["dem_2023"]}).json()
    item = doc["features"][0]
    assert "assets" not in item and "gsd" not in item["properties"] and "datetime" in item["properties"]
    again = raster_client.get(S, params={"ids": "dem_2023"}).json()["features"][0]
    assert "assets" in again and "gsd" in again["properties"], "the index's documents stay whole"


@pytest.mark.parametrize("params,needle", [
    ({"filter": "platform = 3"}, "cannot compare platform (string)"),
    ({"filter": "cloud_cover < 10"}, "unknown property 'cloud_cover'"),
    ({"filter": "S_INTERSECTS(geometry, POLYGON((1 1, 2 2)))"}, "geometry does not parse"),
    ({"filter-lang": "cql2-json"}, "apply to a 'filter'"),
    ({"fields": ""}, None),
])
def test_bad_extension_input(raster_client, params, needle):
    r = raster_client.get(S, params=params)
    if needle is None:
        assert r.status_code == 200
        return
    assert r.status_code == 400 and needle in r.json()["description"]


def test_an_over_long_post_filter_is_refused(raster_client):
    r = raster_client.post(S, json={"filter": "gsd = 1 OR " * 5_000 + "gsd = 1"})  # 55 KB: over the filter limit
    assert r.status_code == 400 and "characters long" in r.json()["description"]
    r = raster_client.post(S, json={"filter": "gsd = 1 OR " * 100_000 + "gsd = 1"})  # 1.1 MB: over the body limit
    assert r.status_code == 413 and r.json()["status"] == 413
