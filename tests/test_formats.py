"""Items as CSV (WKT) and FlatGeobuf, queryables and sortables: content on every backend, and the same
policy in every format (a government caller sees the right holder's name masked, never its ID number)."""

from __future__ import annotations

import csv
import io
import shutil
import sqlite3
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape

from server.app import create_app
from server.settings import Settings
from tests.support.api_keys import issue_key
from tests.support.mislabelled import release_label

ITEMS = "/collections/parcels/items"
GK = "http://www.opengis.net/def/crs/EPSG/0/4549"


def read_csv(body: bytes) -> list[dict[str, str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(body.decode()[1:])))


def read_fgb(body: bytes, tmp_path) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    path = tmp_path / "page.fgb"
    path.write_bytes(body)
    meta, _, geoms, fields = pyogrio.raw.read(path)
    return meta, geoms, dict(zip(meta["fields"].tolist(), fields, strict=True))


def test_csv_page(client):
    geojson = client.get(ITEMS, params={"limit": 15, "sortby": "-area_m2"}).json()
    r = client.get(ITEMS, params={"limit": 15, "sortby": "-area_m2", "f": "csv"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = read_csv(r.content)
    assert list(rows[0])[-1] == "wkt" and [row["unit_code"] for row in rows] == [f["id"] for f in geojson["features"]]
    for row, f in zip(rows, geojson["features"], strict=True):
        assert shapely.equals_exact(shapely.from_wkt(row["wkt"]), shape(f["geometry"]), 1e-9)
        assert float(row["area_m2"]) == f["properties"]["area_m2"] and row["land_use_name"] == f["properties"][
            "land_use_name"]
    following = parse_qs(urlsplit(r.headers["link"].split(">")[0][1:]).query)
    assert following["f"] == ["csv"] and 'rel="next"' in r.headers["link"]


def test_flatgeobuf_page_in_a_projected_crs(client, tmp_path):
    geojson = client.get(ITEMS, params={"limit": 25, "crs": GK, "properties": "unit_code,area_m2"}).json()
    r = client.get(ITEMS, params={"limit": 25, "crs": GK, "properties": "unit_code,area_m2", "f": "fgb"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/flatgeobuf"
    assert r.headers["content-crs"] == f"<{GK}>"
    meta, geoms, fields = read_fgb(r.content, tmp_path)
    assert meta["crs"] == "EPSG:4549" and meta["geometry_type"] == "MultiPolygon"
    assert list(fields) == ["unit_code", "area_m2"] and fields["area_m2"].dtype == np.float64
    assert list(fields["unit_code"]) == [f["id"] for f in geojson["features"]]
    for g, f in zip(geoms, geojson["features"], strict=True):
        northing_first = shapely.get_coordinates(shape(f["geometry"]))
        assert np.array_equal(shapely.get_coordinates(shapely.from_wkb(g)), northing_first[:, ::-1])


def test_formats_are_advertised(client):
    doc = client.get(ITEMS, params={"limit": 1}).json()
    types = {ln["type"] for ln in doc["links"] if ln["rel"] in ("self", "alternate")}
    assert {"application/geo+json", "text/html", "text/csv; charset=utf-8", "application/flatgeobuf"} <= types
    collection = client.get("/collections/parcels").json()
    rels = {ln["rel"]: ln for ln in collection["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/queryables" in rels
    assert {ln["type"] for ln in collection["links"] if ln["rel"] == "items"} >= {"text/csv; charset=utf-8",
                                                                              "application/flatgeobuf"}
    spec = client.get("/api").json()
    f_param = next(p for p in spec["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
                   if p["name"] == "f")
    assert f_param["schema"]["enum"] == ["json", "html", "csv", "fgb"]


def test_queryables_and_sortables(client):
    r = client.get("/collections/parcels/queryables")
    assert r.status_code == 200 and r.headers["content-type"] == "application/schema+json"
    doc = r.json()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema" and doc["type"] == "object"
    assert doc["properties"]["land_use"]["title"] == "用途编码" and "09" in doc["properties"]["land_use"]["enum"]
    assert doc["properties"]["unit_code"]["x-ogc-role"] == "id"
    assert [q["id"] for q in doc["queryables"]] == [p for p in doc["properties"] if p != "geom"]  # the drafts' list
    plain = client.get("/collections/parcels/queryables", headers={"Accept": "application/geo+json, application/json"})
    assert plain.headers["content-type"] == "application/json" and plain.json() == doc
    sortables = client.get("/collections/parcels/sortables", headers={"Accept-Language": "en"}).json()
    assert "geom" not in sortables["properties"] and sortables["properties"]["area_m2"]["title"] == "Area (m²)"
    assert client.get("/collections/dem/queryables").status_code == 404
    assert client.get("/collections/parcels/queryables", params={"x": "1"}).status_code == 400


@pytest.fixture(scope="module")
def government(sample_dir, tmp_path_factory):
    """A client of the government edition (the right holder's name masked, the ID number hidden, the
    special-use parcels excluded) over a copy of the sample labelled for it."""
    from server.policy.labels import write_gpkg_label

    data_dir = tmp_path_factory.mktemp("government")
    shutil.copy(sample_dir / "onemap.gpkg", data_dir / "onemap.gpkg")
    with sqlite3.connect(data_dir / "onemap.gpkg") as conn:
        write_gpkg_label(conn, release_label("government"))
    settings = Settings(data_dir=data_dir, edition="government")
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings)}) as c:
        yield c


def test_the_same_policy_in_every_format(government, tmp_path):
    params = {"limit": 30, "sortby": "land_use"}
    features = government.get(ITEMS, params=params).json()["features"]
    names = [f["properties"]["owner_name"] for f in features]
    assert all(n and n[1:] == "*" * (len(n) - 1) for n in names)
    assert all("owner_id_number" not in f["properties"] for f in features)
    rows = read_csv(government.get(ITEMS, params={**params, "f": "csv"}).content)
    assert [r["owner_name"] for r in rows] == names and "owner_id_number" not in rows[0]
    _, _, fields = read_fgb(government.get(ITEMS, params={**params, "f": "fgb"}).content, tmp_path)
    assert list(fields["owner_name"]) == names and "owner_id_number" not in fields


def test_hidden_and_masked_fields_are_not_queryable(government):
    doc = government.get("/collections/parcels/queryables").json()
    queryables = doc["properties"]
    assert {q["id"] for q in doc["queryables"]} == set(queryables) - {"geom"}
    assert "owner_id_number" not in queryables and "owner_name" not in queryables and "area_m2" in queryables
    assert "09" not in queryables["land_use"]["enum"]  # its rows are excluded: the code says nothing
    for field in ("owner_id_number", "owner_name"):
        for param in ("sortby", "properties"):
            hidden = government.get(ITEMS, params={param: field if param == "properties" else f"-{field}"})
            missing = government.get(ITEMS, params={param: "no_such" if param == "properties" else "-no_such"})
            if param == "properties" and field == "owner_name":
                assert hidden.status_code == 200  # visible, served masked
                continue
            assert hidden.status_code == missing.status_code == 400
            assert hidden.json()["description"] == missing.json()["description"].replace("no_such", field)
