"""GET /codes/{unit_code}: the unit-code profile, on both backends and under the edition policy."""

from __future__ import annotations

import re
import sqlite3

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape

from server.app import create_app
from server.settings import Settings
from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.support.mislabelled import mislabelled_gpkg_dir
from tests.support.rasters import raster_client, raster_dir  # noqa: F401


@pytest.fixture(scope="module")
def codes(sample_dir) -> dict:
    """A parcel with buildings, one of its buildings, a secret special-use parcel, from the master sample."""
    with sqlite3.connect(sample_dir / "onemap.gpkg") as conn:
        parcel, building = conn.execute(
            "SELECT p.unit_code, b.unit_code FROM parcels p JOIN buildings b ON b.parcel_code = p.parcel_code "
            "WHERE p.land_use <> '09' ORDER BY p.unit_code LIMIT 1").fetchone()
        count = conn.execute("SELECT count(*) FROM buildings WHERE parcel_code = ?", (parcel[:19],)).fetchone()[0]
        special = conn.execute("SELECT unit_code FROM parcels WHERE land_use = '09' LIMIT 1").fetchone()[0]
    return {"parcel": parcel, "building": building, "buildings": count, "special": special}


def test_profile_parts(client, codes):
    r = client.get(f"/codes/{codes['parcel']}")
    assert r.status_code == 200, r.text
    doc = r.json()
    code = doc["code"]
    assert (code["county"], code["parcel_code"]) == (codes["parcel"][:6], codes["parcel"][:19])
    assert code["ownership"]["code"] == codes["parcel"][12] and code["parcel_type"]["name"]
    assert doc["parcel"]["id"] == codes["parcel"] and doc["parcel"]["properties"]["owner_name"]
    assert len(doc["fixtures"]) == codes["buildings"]
    assert all(b["unit_code"].startswith(codes["parcel"][:19]) and b["footprint_on_parcel_m2"] > 0
               for b in doc["fixtures"])
    # the survey covers the county without gaps: its classes add up to the parcel
    assert sum(c["area_m2"] for c in doc["land_survey"]) == pytest.approx(doc["parcel_area_m2"], rel=1e-4)
    assert sum(c["area_m2"] for c in doc["planning_zones"]) == pytest.approx(doc["parcel_area_m2"], rel=1e-4)
    gk_area = shape(doc["parcel"]["geometry"]).area  # degrees², only to check the parcel is the one measured
    assert gk_area > 0 and doc["parcel_area_m2"] == pytest.approx(doc["parcel"]["properties"]["area_m2"], rel=2e-3)
    for part in ("land_survey", "planning_zones", "control_lines"):
        for c in doc[part]:
            feature = client.get(c["features"][0].replace("http://testserver", "")).json()
            assert shape(feature["geometry"]).intersects(shape(doc["parcel"]["geometry"]))
    assert doc["unavailable"] == []
    fixture = client.get(f"/codes/{codes['building']}").json()
    assert fixture["parcel"]["id"] == codes["parcel"] and fixture["code"]["fixture"]["type"] == "F"


def test_malformed_and_unknown_codes(client, codes):
    bad = client.get("/codes/330212001002JA0000XW00000000")
    assert bad.status_code == 400 and "position 19" in bad.json()["description"]
    wrong_owner = client.get("/codes/330212001002GA00001W00000000")
    assert wrong_owner.status_code == 400 and "position 14" in wrong_owner.json()["description"]
    assert "ownership J" in wrong_owner.json()["description"] or "position 13" in wrong_owner.json()["description"]
    assert client.get("/codes/330212").status_code == 400
    missing = client.get(f"/codes/{codes['parcel'][:14]}99999W00000000")
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
    no_building = client.get(f"/codes/{codes['parcel'][:19]}F99990000")
    assert no_building.status_code == 404


def test_html_page_has_a_small_map(client, codes):
    r = client.get(f"/codes/{codes['parcel']}?f=html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    path = re.search(r'<path d="(M[^"]+)"', r.text)
    assert path and path.group(1).count("M") >= 1 and codes["parcel"][:19] in r.text


def test_imagery_and_elevation(raster_client, raster_dir, codes):  # noqa: F811
    with sqlite3.connect(raster_dir / "onemap.gpkg") as conn:
        (code,) = conn.execute("SELECT unit_code FROM parcels WHERE land_use <> '09' AND rowid IN "
                               "(SELECT id FROM rtree_parcels_geom WHERE minx > 121.515 AND maxx < 121.545 "
                               "AND miny > 29.845 AND maxy < 29.87) LIMIT 1").fetchone()
    doc = raster_client.get(f"/codes/{code}").json()
    assert [a["item"] for a in doc["imagery"]] == ["imagery_20240518", "imagery_20231115"]
    tile = raster_client.get(doc["imagery"][0]["tiles"][0].replace("http://testserver", "") + "&f=png")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
    elevation = doc["elevation"]
    assert elevation["min_m"] <= elevation["mean_m"] <= elevation["max_m"] and elevation["samples"] >= 1
    point = shape(doc["parcel"]["geometry"]).representative_point()
    at = raster_client.get(f"/collections/dem/elevation?lon={point.x}&lat={point.y}").json()
    assert elevation["min_m"] - 5 <= at["properties"]["elevation"] <= elevation["max_m"] + 5


def test_government_profile_masks_and_hides(tmp_path_factory, sample_dir, codes, request):
    data_dir = mislabelled_gpkg_dir(tmp_path_factory.mktemp("gov-profile"), sample_dir, rasters=False)
    settings = Settings(data_dir=data_dir, edition="government")
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": issue_key(settings, "department")}) as gov:
        doc = gov.get(f"/codes/{codes['parcel']}").json()
        assert re.fullmatch(r".\*+", doc["parcel"]["properties"]["owner_name"])
        assert "owner_id_number" not in doc["parcel"]["properties"]
        secret = gov.get(f"/codes/{codes['special']}")
        missing = gov.get(f"/codes/{codes['special'][:14]}99999W00000000")
        assert secret.status_code == missing.status_code == 404
        assert secret.json()["description"].replace(codes["special"], "X") == \
            missing.json()["description"].replace(missing.url.path.rsplit("/", 1)[1], "X")
        narrow = TestClient(app, headers={"X-API-Key": issue_key(settings, "survey", frozenset({"land_survey"}))})
        assert narrow.get(f"/codes/{codes['parcel']}").status_code == 404
    classified = settings_for("geopackage", request)
    with TestClient(create_app(classified), headers={"X-API-Key": issue_key(classified, "c")}) as master:
        assert master.get(f"/codes/{codes['special']}").status_code == 200
        surveyed = shapely.geometry.shape(master.get(f"/codes/{codes['special']}").json()["parcel"]["geometry"])
        assert surveyed.area > 0
