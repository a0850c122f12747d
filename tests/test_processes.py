"""OGC API Processes and the site-compliance process, on both backends, under the edition policy."""

from __future__ import annotations

import sqlite3
import time

import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer

from server.app import create_app
from server.settings import Settings
from server.sources.gpkg_geometry import decode_gpkg_geometry
from server.stores import open_store
from server.stores.jobs import COLUMNS, Job
from tests.conftest import keyed_client, settings_for
from tests.support.api_keys import issue_key
from tests.support.mislabelled import mislabelled_gpkg_dir

EXECUTE = "/processes/site-compliance/execution"
GK = "http://www.opengis.net/def/crs/EPSG/0/4550"
TO_GK = Transformer.from_crs(4490, 4550, always_xy=True)


def gk_square(lon: float, lat: float, side: float) -> dict:
    """A square of ``side`` metres in EPSG:4550 coordinates whose corner is at lon/lat, in the CRS's axis
    order (northing, easting) as OGC API Features Part 2 has it."""
    x, y = TO_GK.transform(lon, lat)
    ring = [[y, x], [y, x + side], [y + side, x + side], [y + side, x], [y, x]]
    return {"type": "Polygon", "coordinates": [ring]}


def box(x0, y0, x1, y1) -> dict:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


SITE = box(121.54, 29.84, 121.55, 29.85)


def run(client, inputs: dict, **extra):
    return client.post(EXECUTE, json={"inputs": inputs, **extra})


def test_process_list_and_description(client):
    doc = client.get("/processes").json()
    assert [p["id"] for p in doc["processes"]] == ["site-compliance"]
    desc = client.get("/processes/site-compliance").json()
    assert set(desc["inputs"]) == {"geometry", "crs", "planned_use"} and set(desc["outputs"]) == {"report"}
    assert "async-execute" in desc["jobControlOptions"]
    core = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"
    assert core in client.get("/conformance").json()["conformsTo"]
    missing = client.get("/processes/nope")
    assert missing.status_code == 404 and missing.json()["code"].endswith("no-such-process")
    assert client.post("/processes/nope/execution", json={"inputs": {}}).json()["code"].endswith("no-such-process")


def test_hand_computed_square(client):
    """A 100 m x 100 m square given in the GK zone: 10,000 m², all of it in the survey's patches."""
    square = gk_square(121.545, 29.845, 100.0)
    report = run(client, {"geometry": square, "crs": GK, "planned_use": "07"}).json()
    assert report["site"]["area_crs"] == GK
    assert report["site"]["area_m2"] == pytest.approx(10_000.0, abs=0.01)
    survey = report["layers"]["land_survey"]
    assert survey["overlap_m2"] == pytest.approx(10_000.0, abs=0.05)  # the survey covers the county without gaps
    assert sum(c["area_m2"] for c in survey["by_land_code"]) == pytest.approx(10_000.0, abs=0.05)
    assert sum(c["percent"] for c in survey["by_land_code"]) == pytest.approx(100.0, abs=0.01)
    # with a second square 500 m east, as a MultiPolygon: twice the area, the same survey area plus the new one's
    far = gk_square(121.545, 29.845, 100.0)
    (far_ring,) = far["coordinates"]
    far_ring[:] = [[n, e + 500.0] for n, e in far_ring]
    alone = run(client, {"geometry": far, "crs": GK}).json()
    both = {"type": "MultiPolygon", "coordinates": [square["coordinates"], far["coordinates"]]}
    again = run(client, {"geometry": both, "crs": GK}).json()
    assert again["site"]["area_m2"] == pytest.approx(20_000.0, abs=0.02)
    expected = survey["overlap_m2"] + alone["layers"]["land_survey"]["overlap_m2"]
    assert again["layers"]["land_survey"]["overlap_m2"] == pytest.approx(expected, abs=0.02)


def test_report_content_and_verdict(client):
    report = run(client, {"geometry": SITE, "planned_use": "07"}).json()
    site_m2 = report["site"]["area_m2"]
    lines = {c["code"]: c["area_m2"] for c in report["layers"]["control_lines"]["by_line_type"]}
    assert report["unavailable_layers"] == [] and report["complete"]
    rules = {r["rule"]: r for r in report["reasons"]}
    if lines.get("permanent_basic_farmland", 0) > 0.01:
        assert report["verdict"] == "reject" and "permanent_basic_farmland" in rules
        farmland = lines["permanent_basic_farmland"]
        assert rules["permanent_basic_farmland"]["area_m2"] == pytest.approx(farmland, abs=0.01)
    outside = site_m2 - lines.get("urban_development_boundary", 0.0)
    assert rules["construction_outside_urban_boundary"]["area_m2"] == pytest.approx(outside, abs=0.02)
    zoned = {c["code"]: c["area_m2"] for c in report["layers"]["planning_zones"]["by_use_code"]}
    conflicting = sum(a for c, a in zoned.items() if c != "07")
    assert rules["planned_use_conflict"]["area_m2"] == pytest.approx(conflicting, abs=0.02)
    for p in report["layers"]["parcels"]["list"]:
        assert 0 < p["area_m2"] <= site_m2 and p["href"].endswith(p["id"])
    first = report["layers"]["parcels"]["list"][0]["href"]
    assert client.get(first.replace("http://testserver", "")).status_code == 200
    doc = run(client, {"geometry": SITE}, response="document").json()
    assert set(doc) == {"report"} and doc["report"]["site"]["planned_use"] is None


@pytest.mark.parametrize(("geometry", "says"), [
    ({"type": "Polygon", "coordinates": [[[121.54, 29.84], [121.55, 29.84], [121.55, 29.85], [121.54, 29.85]]]},
     "not closed"),
    (box(121.54, 29.84, 121.55, 29.85) | {"coordinates": [[[121.54, 29.84], [121.55, 29.85], [121.55, 29.84],
                                                           [121.54, 29.85], [121.54, 29.84]]]}, "Self-intersection"),
    ({"type": "Polygon", "coordinates": []}, "empty"),
    ({"type": "Point", "coordinates": [121.5, 29.8]}, "Polygon or MultiPolygon"),
    ({"type": "Polygon", "coordinates": [[["a", 1], [2, 3], [4, 5], ["a", 1]]]}, "malformed"),
])
def test_bad_geometry_is_a_400_saying_why(client, geometry, says):
    r = run(client, {"geometry": geometry})
    assert r.status_code == 400 and says in r.json()["description"], r.text


def test_bad_requests(client):
    cases = [
        ({"inputs": {"geometry": SITE, "colour": "red"}}, "Unknown input 'colour'"),
        ({"inputs": {"geometry": SITE}, "outputs": {"verdict": {}}}, "Unknown output 'verdict'"),
        ({"inputs": {"geometry": SITE, "crs": "EPSG:3857"}}, "Input 'crs'"),
        ({"inputs": {"geometry": SITE, "planned_use": "99"}}, "planned_use"),
        ({"inputs": {}}, "Input 'geometry' is required"),
    ]
    for body, says in cases:
        r = client.post(EXECUTE, json=body)
        assert r.status_code == 400 and says in r.json()["description"], r.text
    lat_lon = client.post(EXECUTE, json={"inputs": {"geometry": box(29.84, 121.54, 29.85, 121.55),
                                                    "crs": "http://www.opengis.net/def/crs/EPSG/0/4490"}})
    assert lat_lon.json()["site"]["area_m2"] == run(client, {"geometry": SITE}).json()["site"]["area_m2"]


def wait_for(client, url: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = client.get(url).json()
        if doc["status"] in ("successful", "failed"):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"job {url} did not finish")


def test_large_site_refused_sync_accepted_async(client):
    big = box(121.50, 29.80, 121.53, 29.83)  # about 8.7 km², over the 4 km² synchronous limit
    sync = run(client, {"geometry": big})
    assert sync.status_code == 413 and "respond-async" in sync.json()["description"]
    r = client.post(EXECUTE, json={"inputs": {"geometry": big}}, headers={"Prefer": "respond-async"})
    assert r.status_code == 201 and r.headers["Preference-Applied"] == "respond-async"
    location = r.headers["Location"].replace("http://testserver", "")
    assert r.json()["status"] in ("accepted", "running", "successful")
    done = wait_for(client, location)
    assert done["status"] == "successful"
    report = client.get(location + "/results").json()
    assert report["site"]["area_m2"] > 4_000_000 and report["layers"]["land_survey"]["overlap_m2"] > 0
    assert any(j["jobID"] == r.json()["jobID"] for j in client.get("/jobs").json()["jobs"])


def _all_jobs(settings) -> list[Job]:
    jobs = open_store(settings).jobs()
    return [Job(*r) for r in jobs._run(f"SELECT {', '.join(COLUMNS)} FROM onemap_jobs", fetch=True)]


def test_jobs_are_the_callers_own_audited_and_kept_in_the_store(backend, request):
    settings = settings_for(backend, request)
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": issue_key(settings, "a")}) as a:
        b = TestClient(app, headers={"X-API-Key": issue_key(settings, "b")})  # the same app: no second lifespan
        r = a.post(EXECUTE, json={"inputs": {"geometry": SITE, "planned_use": "07"}},
                   headers={"Prefer": "respond-async"})
        job_id = r.json()["jobID"]
        assert wait_for(a, f"/jobs/{job_id}")["status"] == "successful"
        other = b.get(f"/jobs/{job_id}")
        assert other.status_code == 404 and other.json()["code"].endswith("no-such-job")
        assert b.get(f"/jobs/{job_id}/results").status_code == 404
        assert all(j["jobID"] != job_id for j in b.get("/jobs").json()["jobs"])
        row = next(j for j in _all_jobs(settings) if j.id == job_id)
        assert row.verdict and len(row.geometry_hash) == 32 and row.area_m2 > 0 and row.planned_use == "07"
        # a synchronous execution is recorded (audited) too, with who ran it and the verdict
        verdict = a.post(EXECUTE, json={"inputs": {"geometry": SITE}}).json()["verdict"]
        sync = [j for j in _all_jobs(settings) if j.owner == row.owner and j.id != job_id]
        assert [(j.status, j.verdict, j.geometry_hash) for j in sync] == [("successful", verdict, row.geometry_hash)]
        # a job left running by a server that stopped is reported failed, never running forever
        open_store(settings).jobs().add(Job(
            id="f" * 32, owner=row.owner, edition=row.edition, process=row.process, status="running",
            created="2020-01-01T00:00:00.000+00:00", updated="2020-01-01T00:00:00.000+00:00"))
        stale = a.get("/jobs/" + "f" * 32).json()
        assert stale["status"] == "failed" and "stopped" in stale["message"]
        assert a.get("/jobs/" + "f" * 32 + "/results").status_code == 422
    # another server (a replica, or this one restarted) answers from the store
    with TestClient(create_app(settings), headers=a.headers) as replica:
        assert replica.get(f"/jobs/{job_id}/results").json()["verdict"] == row.verdict


def test_backends_agree_per_class(request):
    """The embedded store and PostGIS give the same areas, class by class, within 0.01 m²."""
    reports = []
    for backend in ("geopackage", "postgis"):
        with keyed_client(settings_for(backend, request)) as c:
            reports.append(run(c, {"geometry": SITE, "planned_use": "07"}).json())
    gpkg, pg = reports
    assert gpkg["verdict"] == pg["verdict"] and gpkg["site"] == pg["site"]
    for layer in gpkg["layers"]:
        a, b = gpkg["layers"][layer], pg["layers"][layer]
        key = next(k for k in a if k.startswith("by_") or k == "list")
        left = {(c.get("code") or c.get("id")): c["area_m2"] for c in a[key]}
        right = {(c.get("code") or c.get("id")): c["area_m2"] for c in b[key]}
        assert left.keys() == right.keys(), layer
        for k, area in left.items():
            assert area == pytest.approx(right[k], abs=0.01), (layer, k)


def test_narrow_key_gets_results_without_hidden_layers(backend, request):
    settings = settings_for(backend, request)
    with TestClient(create_app(settings),
                    headers={"X-API-Key": issue_key(settings, "survey only", frozenset({"land_survey"}))}) as c:
        report = run(c, {"geometry": SITE, "planned_use": "07"}).json()
    assert set(report["layers"]) == {"land_survey"}
    assert report["unavailable_layers"] == ["control_lines", "planning_zones", "parcels"]
    assert not report["complete"]
    assert {r["rule"] for r in report["not_evaluated"]} == {
        "ecological_red_line", "permanent_basic_farmland", "construction_outside_urban_boundary",
        "planned_use_conflict"}
    assert {r["rule"] for r in report["reasons"]} <= {"cropland_occupied"}


def test_government_edition_never_counts_secret_rows(tmp_path_factory, sample_dir, request):
    """Over a secret special-use parcel, the government edition's report has neither the parcel nor the
    special-use survey and zone classes: their rows are not read, so no area comes from them."""
    with sqlite3.connect(sample_dir / "onemap.gpkg") as conn:
        code, blob = conn.execute("SELECT unit_code, geom FROM parcels WHERE land_use = '09' LIMIT 1").fetchone()
    special = shapely.from_wkb(decode_gpkg_geometry(blob))
    site = shapely.geometry.mapping(special.buffer(0.001, join_style="mitre").envelope)
    data_dir = mislabelled_gpkg_dir(tmp_path_factory.mktemp("gov"), sample_dir, rasters=False)
    classified = keyed_client(settings_for("geopackage", request))
    gov_settings = Settings(data_dir=data_dir, edition="government")
    with classified as master, TestClient(create_app(gov_settings),
                                         headers={"X-API-Key": issue_key(gov_settings, "department")}) as gov:
        full = run(master, {"geometry": site}).json()
        seen = run(gov, {"geometry": site}).json()
    assert code in {p["id"] for p in full["layers"]["parcels"]["list"]}
    assert code not in {p["id"] for p in seen["layers"]["parcels"]["list"]} and code not in str(seen)
    assert "09" in {c["code"] for c in full["layers"]["land_survey"]["by_land_code"]}
    assert "09" not in {c["code"] for c in seen["layers"]["land_survey"]["by_land_code"]}
    assert seen["layers"]["land_survey"]["overlap_m2"] < full["layers"]["land_survey"]["overlap_m2"]
    assert "15" not in {c["code"] for c in seen["layers"]["planning_zones"]["by_use_code"]}
    assert seen["site"] == full["site"]



def _config_dir(tmp_path, change):
    import shutil

    import yaml

    from tests.support import ROOT

    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    doc = yaml.safe_load((target / "compliance.yaml").read_text(encoding="utf-8"))
    change(doc)
    (target / "compliance.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return target


def test_slow_run_is_cancelled_with_a_503_and_a_bad_rules_file_is_a_503(request, tmp_path):
    slow = _config_dir(tmp_path / "slow", lambda d: d["limits"].update(timeout_s=0.001))
    settings = settings_for("geopackage", request, config_dir=slow)
    with keyed_client(settings) as c:
        r = run(c, {"geometry": SITE})
        assert r.status_code == 503 and "cancelled" in r.json()["description"] and r.headers["Retry-After"]
        assert not (set(r.json()) - {"code", "description", "status"})
    broken = _config_dir(tmp_path / "broken", lambda d: d["rules"][0].update(kind="nearby"))
    with keyed_client(settings_for("geopackage", request, config_dir=broken)) as c:
        r = run(c, {"geometry": SITE})
        assert r.status_code == 503 and "compliance.yaml" not in r.text and str(tmp_path) not in r.text


def test_anonymous_callers_list_no_jobs(tmp_path_factory, sample_dir):
    data_dir = mislabelled_gpkg_dir(tmp_path_factory.mktemp("anon-jobs"), sample_dir, rasters=False)
    with TestClient(create_app(Settings(data_dir=data_dir, edition="internet"))) as anon:
        r = anon.post(EXECUTE, json={"inputs": {"geometry": SITE}}, headers={"Prefer": "respond-async"})
        job = r.json()["jobID"]
        assert wait_for(anon, f"/jobs/{job}")["status"] == "successful"
        assert anon.get("/jobs").json()["jobs"] == []
        report = anon.get(f"/jobs/{job}/results").json()
        assert set(report["unavailable_layers"]) == {"control_lines", "parcels"}
