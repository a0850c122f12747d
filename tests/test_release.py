"""Releases between networks: build on the master store, verify, import into a lower edition's store.

The decisive check: an internet-edition store built from a release (embedded or PostGIS) holds no
secret or sensitive value anywhere in its bytes, and its server refuses a store above its edition.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import orjson
import psycopg
import pytest
import shapely
import yaml
from fastapi.testclient import TestClient
from shapely.geometry import shape

from server.app import create_app
from server.policy.labels import read_gpkg_label
from server.policy.rasters import ground_resolution_m
from server.policy.runtime import StoreRefused
from server.release import BundleError, build_release, import_release
from server.settings import Settings
from tests.support.rasters import make_data_dir

PG_DUMP = Path("/usr/lib/postgresql/15/bin/pg_dump")


def settings(**kw) -> Settings:
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    return Settings(**kw)


def secrets_of(gpkg: Path, sql: str, min_len: int = 3) -> set[bytes]:
    with sqlite3.connect(gpkg) as conn:
        values = {v for (v,) in conn.execute(sql) if v and len(v) >= min_len}
    return {v.encode() for v in values}


@pytest.fixture(scope="module")
def master(tmp_path_factory, sample_dir) -> Path:
    """A master data directory: the sample vector store and small real COGs."""
    return make_data_dir(tmp_path_factory.mktemp("master"), sample_dir)


@pytest.fixture(scope="module")
def internet_secrets(master) -> set[bytes]:
    """Values an internet store must never hold: owner names and ID numbers, every parcel and building id,
    control line names."""
    gpkg = master / "onemap.gpkg"
    found = secrets_of(gpkg, "SELECT owner_name FROM parcels") | secrets_of(gpkg, "SELECT owner_id_number FROM parcels")
    found |= secrets_of(gpkg, "SELECT unit_code FROM parcels") | secrets_of(gpkg, "SELECT unit_code FROM buildings")
    found |= secrets_of(gpkg, "SELECT line_name FROM control_lines", 4)
    assert len(found) > 3000
    return found


@pytest.fixture(scope="module")
def internet_bundle(master, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "internet"
    build_release(settings(data_dir=master), "internet", out)
    return out


def all_bytes(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def exercise(s: Settings) -> None:
    """Serve the store as the internet edition for a few requests (audit and admin files get written)."""
    with TestClient(create_app(s)) as c:
        assert [x["id"] for x in c.get("/collections").json()["collections"]] == [
            "admin_boundaries", "dem", "imagery", "land_survey", "planning_zones"]
        survey = c.get("/collections/land_survey/items", params={"limit": 5000}).json()
        assert survey["numberReturned"] > 1000
        assert all(f["properties"]["class_code"] != "09" for f in survey["features"])
        shapes = [shape(f["geometry"]) for f in survey["features"]]
        assert {g.geom_type for g in shapes} == {"MultiPolygon"} and all(g.is_valid for g in shapes)
        assert all(round(x, 5) == x for x in shapely.get_coordinates(shapes[:50]).ravel())
        assert c.get("/collections/parcels/items").status_code == 404


def test_internet_store_from_a_release_holds_no_secret(internet_bundle, internet_secrets, tmp_path):
    store = tmp_path / "internet-store"
    import_release(settings(data_dir=store, edition="internet"), internet_bundle)
    exercise(settings(data_dir=store, edition="internet"))
    blob = all_bytes(store)
    assert b"onemap_audit" in blob and len(blob) > 1_000_000  # the whole store, admin file included
    leaked = [s.decode() for s in internet_secrets if s in blob]
    assert not leaked, leaked[:5]
    assert read_gpkg_label(store / "onemap.gpkg").edition == "internet"


def test_release_from_postgis_into_postgis(master, pg_url, internet_bundle, internet_secrets, tmp_path):
    bundle = tmp_path / "from-pg"
    doc = build_release(settings(data_dir=master, database_url=pg_url), "internet", bundle, overviews=False)
    gpkg_doc = orjson.loads((internet_bundle / "manifest.json").read_bytes())
    assert {k: v.get("features") for k, v in doc["collections"].items()} == {
        k: v.get("features") for k, v in gpkg_doc["collections"].items()}
    assert doc["source"] == {"store": "postgis", "edition": "master"}
    target = pg_url.rsplit("/", 1)[0] + "/onemap_internet"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS onemap_internet")
        conn.execute("CREATE DATABASE onemap_internet")
    with psycopg.connect(target, autocommit=True) as conn:  # hidden data left over from earlier must go
        conn.execute("CREATE EXTENSION postgis")
        conn.execute("CREATE TABLE parcels AS SELECT 'LEFTOVER-SECRET'::text AS owner_name")
    s = settings(data_dir=tmp_path / "pg-rasters", database_url=target, edition="internet")
    import_release(s, bundle)
    exercise(s)
    dump = subprocess.run([str(PG_DUMP), "--no-owner", "-d", target], capture_output=True, check=True).stdout
    assert b"onemap_audit" in dump and b"LEFTOVER-SECRET" not in dump
    leaked = [v.decode() for v in internet_secrets if v in dump]
    assert not leaked, leaked[:5]


def test_government_release_masks_drops_and_excludes(master, tmp_path):
    bundle, store = tmp_path / "gov", tmp_path / "gov-store"
    doc = build_release(settings(data_dir=master), "government", bundle, overviews=False)
    assert doc["collections"]["parcels"]["restriction"]["masked"] == ["owner_name"]
    assert "owner_id_number" not in doc["collections"]["parcels"]["fields"]
    gpkg = master / "onemap.gpkg"
    secret = (secrets_of(gpkg, "SELECT owner_id_number FROM parcels")
              | secrets_of(gpkg, "SELECT owner_name FROM parcels"))
    secret |= secrets_of(gpkg, "SELECT unit_code FROM parcels WHERE land_use = '09'")
    secret |= secrets_of(gpkg, "SELECT unit_code FROM buildings WHERE building_use = '特殊用途'")
    import_release(settings(data_dir=store, edition="government"), bundle)
    blob = all_bytes(store)
    assert not [s.decode() for s in secret if s in blob]
    with sqlite3.connect(store / "onemap.gpkg") as conn:
        names = [n for (n,) in conn.execute("SELECT owner_name FROM parcels LIMIT 200")]
        assert all(n[1:] == "*" * (len(n) - 1) for n in names) and len(names) == 200
        columns = {r[1] for r in conn.execute("PRAGMA table_info(parcels)")}
        assert "owner_id_number" not in columns and conn.execute(
            "SELECT count(*) FROM parcels WHERE land_use = '09'").fetchone()[0] == 0


def test_master_store_refused_by_a_lower_edition(master):
    refusal = "'internet' edition, which may hold only public data.*unlabelled master"
    internet = settings(data_dir=master, edition="internet")
    with pytest.raises(StoreRefused, match=refusal), TestClient(create_app(internet)):
        pass


def test_bundle_checks(internet_bundle, tmp_path, master):
    s = settings(data_dir=tmp_path / "target", edition="internet")
    tampered = tmp_path / "tampered"
    shutil.copytree(internet_bundle, tampered)
    cog = tampered / "rasters" / "dem_2023.tif"
    data = bytearray(cog.read_bytes())
    data[-10] ^= 0xFF
    cog.write_bytes(bytes(data))
    (tampered / "rasters" / "extra.tif").write_bytes(b"x")
    problems = "unlisted file rasters/extra.tif.*checksum mismatch for rasters/dem_2023.tif"
    with pytest.raises(BundleError, match=problems):
        import_release(s, tampered)
    assert not (tmp_path / "target" / "onemap.gpkg").exists()
    gov = tmp_path / "gov"
    build_release(settings(data_dir=master), "government", gov, overviews=False)
    with pytest.raises(BundleError, match="'government' edition and may hold sensitive data.*'internet'"):
        import_release(s, gov)
    with pytest.raises(BundleError, match="not empty"):
        build_release(settings(data_dir=master), "internet", internet_bundle)


def test_imagery_is_coarsened_to_the_edition_cap(master, tmp_path):
    config = tmp_path / "config"
    shutil.copytree(Path(Settings().config_dir), config)
    doc = yaml.safe_load((config / "editions.yaml").read_text(encoding="utf-8"))
    doc["editions"]["internet"]["max_imagery_resolution_m"] = 20.0
    doc["editions"]["internet"]["collections"]["dem"] = {"max_resolution_m": 200.0}
    (config / "editions.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    bundle = tmp_path / "coarse"
    manifest = build_release(settings(data_dir=master, config_dir=config), "internet", bundle, overviews=False)
    for cid, cap in (("imagery", 20.0), ("dem", 200.0)):
        for asset in manifest["collections"][cid]["assets"].values():
            assert asset["coarsened"] and asset["resolution_m"] >= cap * 0.99
            assert ground_resolution_m(bundle / asset["path"]) >= cap * 0.99
    assert (bundle / "stac" / "catalog.json").is_file()
    items = list((bundle / "stac").rglob("imagery_*.json"))
    assert items and all(orjson.loads(p.read_bytes())["properties"]["gsd"] == 20.0 for p in items)
