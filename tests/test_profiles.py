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


def test_government_life_records_show_masked_holders(tmp_path_factory, sample_dir):
    """The government edition masks the (secret) right holders of life records: shown masked, as Features
    serves them, never left out and never in clear."""
    with sqlite3.connect(sample_dir / "onemap.gpkg") as conn:
        parcel_code, = conn.execute(
            "SELECT parcel_code FROM parcel_events WHERE holder_name IS NOT NULL AND land_use <> '09' "
            "ORDER BY parcel_code LIMIT 1").fetchone()
        holders = dict(conn.execute("SELECT event_id, holder_name FROM parcel_events WHERE parcel_code = ? "
                                    "AND holder_name IS NOT NULL", (parcel_code,)).fetchall())
    data_dir = mislabelled_gpkg_dir(tmp_path_factory.mktemp("gov-life"), sample_dir, rasters=False)
    settings = Settings(data_dir=data_dir, edition="government")
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "department")}) as gov:
        r = gov.get(f"/codes/{parcel_code}W00000000")
        records = {x["event_id"]: x for stage in r.json()["life"].values() for x in stage}
        assert set(holders) <= set(records)
        for event_id, name in holders.items():
            shown = records[event_id]["holder_name"]
            assert shown == name[0] + "*" * max(len(name) - 1, 1) and name not in r.text
            item = gov.get(f"/collections/parcel_events/items/{event_id}").json()["properties"]
            assert item["holder_name"] == shown  # the same policy as Features
        assert any(x.get("mortgage_amount_cny") for x in records.values()) or "mortgage" not in r.text


def test_life_records_by_stage_in_time_order(client, codes, sample_dir):
    with sqlite3.connect(sample_dir / "onemap.gpkg") as conn:
        (built,) = conn.execute(
            "SELECT e.parcel_code FROM parcel_events e WHERE e.event_type = 'completion_acceptance' "
            "AND e.land_use <> '09' ORDER BY e.parcel_code LIMIT 1").fetchone()
        stored = conn.execute("SELECT event_id, stage, event_date FROM parcel_events WHERE parcel_code = ?",
                              (built,)).fetchall()
    doc = client.get(f"/codes/{built}W00000000").json()
    life = doc["life"]
    assert list(life) == ["planning", "approval", "supply", "use", "registration", "supervision"]
    got = {(r["event_id"], r["stage"], str(r["event_date"])) for records in life.values() for r in records}
    assert got == set(stored)
    for records in life.values():
        dates = [str(r["event_date"]) for r in records]
        assert dates == sorted(dates)
    # the order of a construction parcel's life: supply, then its permit, start, and completion
    first = {r["event_type"]: str(r["event_date"]) for records in life.values() for r in records}
    assert first["land_use_planning_permit"] >= min(first.get("transfer_contract", "9"), first.get("allocation", "9"))
    assert first["construction_start"] < first["completion_acceptance"]
    supply = life["supply"][0]
    assert len(supply["code"]) == 19 and len(life["registration"][0]["code"]) == 28
    if supply["event_type"] == "transfer_contract":
        assert supply["price_cny"] > 0 and supply["term_years"] in (40, 50, 70)
    else:
        assert supply["price_cny"] is None
    html = client.get(f"/codes/{built}W00000000?f=html").text
    assert 'id="life"' in html and 'data-stage="supply"' in html


def test_life_records_are_classified(client, sample_dir, tmp_path_factory):
    """Mortgage amounts and violation details are sensitive, holders' names secret; records of special-use
    parcels are secret rows. Queryable through Features like any other collection."""
    from server.catalog import load_catalog
    from server.policy.editions import load_editions
    from server.policy.resolve import PolicyResolver
    from tests.support import ROOT

    catalog, editions = load_catalog(ROOT / "collections"), load_editions(ROOT / "config")
    events = catalog.get("parcel_events")
    assert {f.name: f.level for f in events.fields if f.level} == {
        "mortgage_amount_cny": "sensitive", "holder_name": "secret", "details": "sensitive"}
    assert PolicyResolver(catalog, editions, "internet").policy(None).access("parcel_events") is None
    gov = PolicyResolver(catalog, editions, "government").policy("k").access("parcel_events")
    assert {"mortgage_amount_cny", "details"} <= set(gov.fields)
    assert gov.restriction.masked == {"holder_name"}  # secret, served masked as the parcels' right holders
    assert [(c.field, c.values) for c in gov.restriction.exclude] == [("land_use", ("09",))]
    page = client.get("/collections/parcel_events/items?limit=50&datetime=2020-01-01/2020-12-31").json()
    assert page["numberReturned"] > 0
    assert all(f["properties"]["event_date"].startswith("2020") for f in page["features"])
