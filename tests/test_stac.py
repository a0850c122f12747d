"""The STAC catalog (static, pystac-built and validated) and the STAC API at /stac."""

from __future__ import annotations

import json

import pystac
import pytest

from server.stac_api.static import write_static_catalog
from server.stac_catalog.validate import validate_dict
from tests.support.rasters import acquisitions, raster_settings, sheet_ids

ITEMS = {*sheet_ids("imagery_20231115"), *sheet_ids("imagery_20240518"), "dem_2023"}


def test_static_catalog_is_built_validated_and_self_contained(raster_dir, tmp_path):
    root_file = write_static_catalog(raster_settings(raster_dir), tmp_path / "stac", "https://onemap.example")
    root = pystac.Catalog.from_file(str(root_file))
    items = {i.id: i for i in root.get_items(recursive=True)}
    assert set(items) == ITEMS
    image = items["imagery_20240518_r0c1"]
    assert image.properties["onemap:acquisition"] == "imagery_20240518"
    assert image.properties["proj:code"] == "EPSG:3857" and len(image.properties["proj:shape"]) == 2
    assert [b["common_name"] for b in image.assets["data"].extra_fields["eo:bands"]] == ["red", "green", "blue"]
    assert image.assets["data"].href == "https://onemap.example/collections/imagery/assets/imagery_20240518_r0c1"
    xyz = [link for link in image.links if link.rel == "xyz"]
    assert xyz and xyz[0].href.endswith("/tiles/WebMercatorQuad/{z}/{y}/{x}?item=imagery_20240518")
    dem = items["dem_2023"]
    assert dem.properties["proj:code"] == "EPSG:4549"
    band = dem.assets["data"].extra_fields["raster:bands"][0]
    assert band["unit"] == "m" and band["statistics"]["maximum"] > 300
    saved = json.loads((tmp_path / "stac" / "imagery" / "collection.json").read_text())
    assert saved["summaries"]["onemap:acquisition"] == ["imagery_20231115", "imagery_20240518"]
    per_acquisition = [lk for lk in saved["links"] if lk["rel"] == "related"]
    assert [lk["href"].rsplit("=", 1)[1] for lk in per_acquisition] == ["2023-11-15T02:40:00Z", "2024-05-18T02:35:00Z"]
    assert {lk["rel"]: lk["href"] for lk in saved["links"]}["root"] == "../catalog.json", "self-contained"


def test_landing_conformance_collections(raster_client):
    landing = raster_client.get("/stac").json()
    assert landing["type"] == "Catalog" and not validate_dict(landing)
    rels = {(lk["rel"], lk.get("method")) for lk in landing["links"]}
    assert {("search", "GET"), ("search", "POST"), ("conformance", None), ("data", None)} <= rels
    assert "https://api.stacspec.org/v1.0.0/item-search" in raster_client.get("/stac/conformance").json()["conformsTo"]
    collections = raster_client.get("/stac/collections").json()["collections"]
    assert [c["id"] for c in collections] == ["dem", "imagery"]
    for c in collections:
        assert not validate_dict(c), c["id"]
    assert raster_client.get("/stac/collections/parcels").status_code == 404


def test_items_and_item(raster_client):
    page = raster_client.get("/stac/collections/imagery/items").json()
    assert page["numberMatched"] == page["numberReturned"] == 8, "one item per sheet"
    for item in page["features"]:
        assert not validate_dict(item), item["id"]
        assert {lk["rel"] for lk in item["links"]} >= {"self", "parent", "collection", "root", "xyz"}
    one = raster_client.get("/stac/collections/imagery/items/imagery_20231115_r1c0")
    assert one.headers["content-type"] == "application/geo+json" and one.json()["id"] == "imagery_20231115_r1c0"
    # the sheets of one acquisition tile its footprint: four quarters, together the acquisition's bbox
    boxes = [f["bbox"] for f in page["features"] if f["properties"]["onemap:acquisition"] == "imagery_20231115"]
    assert len(boxes) == 4 and len({round(b[0], 6) for b in boxes}) == 2 and len({round(b[1], 6) for b in boxes}) == 2
    assert raster_client.get("/stac/collections/imagery/items/dem_2023").status_code == 404


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_search_get_filters(raster_client):
    s = "/stac/search"
    assert set(_ids(raster_client.get(s))) == ITEMS
    assert _ids(raster_client.get(f"{s}?collections=dem")) == ["dem_2023"]
    assert _ids(raster_client.get(f"{s}?ids=imagery_20240518_r0c0,nope")) == ["imagery_20240518_r0c0"]
    # the DEM covers the whole county, the imagery only the town: a bbox in the hills finds the DEM only
    assert _ids(raster_client.get(f"{s}?bbox=121.65,29.76,121.68,29.78")) == ["dem_2023"]
    since_2024 = raster_client.get(f"{s}?bbox=121.52,29.85,121.53,29.86&datetime=2024-01-01T00:00:00Z/..")
    assert acquisitions(_ids(since_2024)) == ["imagery_20240518"] and len(_ids(since_2024)) < 4, "the bbox's sheets"
    assert _ids(raster_client.get(f"{s}?datetime=2023-11-15T02:40:00Z")) == sheet_ids("imagery_20231115")
    assert _ids(raster_client.get(f"{s}?datetime=2023-11-15")) == sheet_ids("imagery_20231115"), "a whole day"
    readme = f"{s}?bbox=121.5,29.8,121.6,29.9&datetime=2024-01-01/.."  # the README's example
    assert _ids(raster_client.get(readme)) == sheet_ids("imagery_20240518")
    point = json.dumps({"type": "Point", "coordinates": [121.52, 29.87]})  # in the north-west sheets
    assert set(_ids(raster_client.get(s, params={"intersects": point}))) == {
        "imagery_20231115_r0c0", "imagery_20240518_r0c0", "dem_2023"}


def test_search_paging_get_and_post(raster_client):
    seen, url = [], "/stac/search?limit=1"
    for _ in range(12):
        page = raster_client.get(url).json()
        seen += [f["id"] for f in page["features"]]
        nxt = [lk for lk in page["links"] if lk["rel"] == "next"]
        if not nxt:
            break
        url = nxt[0]["href"]
    assert sorted(seen) == sorted(ITEMS) and page["numberMatched"] == 9
    body, seen = {"limit": 2, "collections": ["imagery", "dem"]}, []
    for _ in range(6):
        page = raster_client.post("/stac/search", json=body).json()
        seen += [f["id"] for f in page["features"]]
        nxt = [lk for lk in page["links"] if lk["rel"] == "next"]
        if not nxt:
            break
        assert nxt[0]["method"] == "POST"
        body = nxt[0]["body"]
    assert sorted(seen) == sorted(ITEMS)


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("bbox=1,2,3", "bbox"),
        ("bbox=0,95,1,96", "bbox"),
        ("datetime=soon", "datetime"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("token=xyz", "token"),
        ("intersects={bad", "intersects"),
        ("bbox=1,2,3,4&intersects=" + json.dumps({"type": "Point", "coordinates": [1, 2]}), "either"),
        ("colour=red", "colour"),
    ],
)
def test_search_bad_input_is_400(raster_client, query, needle):
    r = raster_client.get(f"/stac/search?{query}")
    assert r.status_code == 400 and needle in r.json()["description"]


def test_search_post_bad_body(raster_client):
    assert raster_client.post("/stac/search", content=b"{not json").status_code == 400
    r = raster_client.post("/stac/search", json={"filter": {"op": "="}})
    assert r.status_code == 400 and "filter" in r.json()["description"]
    assert raster_client.post("/stac/search", json={"intersects": {"type": "Circle"}}).status_code == 400
