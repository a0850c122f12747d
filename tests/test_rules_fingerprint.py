"""The store and the running rules agree: a store prepared under other rules is refused, naming them.

On both backends: a store labelled with the rules of its release is served; the same store with the
rules tightened since (here the internet edition's generalization of the land survey) is refused at
start-up with the difference named, and a running server stops serving (503) when the store under it
changes to such a one. Rows of a coverage layer are never excluded at serve time from a store that
still holds them, and ``onemap import`` cannot put a bundle under a lower edition.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys

import orjson
import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient

from server.app import create_app
from server.policy import runtime
from server.policy.labels import StoreLabel, write_gpkg_label, write_pg_label
from server.policy.runtime import StoreRefused
from server.release import BundleError, build_release, import_release
from server.settings import packaged
from tests.support.mislabelled import mislabelled_gpkg_dir, mislabelled_pg_url, release_label
from tests.test_inference import clean_settings

LOOSER = 1.0  # land_survey generalize_m of the internet edition at "release"; the running rules say 2.0


def loosened(label: StoreLabel) -> StoreLabel:
    """``label`` as if its release had been built when the land survey was generalized by only 1 m."""
    rules = orjson.loads(label.rules or "{}")
    rules["edition"]["collections"]["land_survey"]["generalize_m"] = LOOSER
    return StoreLabel(label.edition, label.levels, label.rules_version, label.rules_digest, label.released,
                      orjson.dumps(rules, option=orjson.OPT_SORT_KEYS).decode())


@pytest.fixture(scope="module", params=["geopackage", "postgis"])
def store(request, sample_dir, tmp_path_factory):
    """(settings of an internet store labelled with the running rules, ``relabel(label)``)."""
    if request.param == "geopackage":
        data_dir = mislabelled_gpkg_dir(tmp_path_factory.mktemp("fingerprint"), sample_dir, rasters=False)

        def relabel(label: StoreLabel) -> None:
            with sqlite3.connect(data_dir / "onemap.gpkg") as conn:
                write_gpkg_label(conn, label)

        return clean_settings(data_dir=data_dir, edition="internet"), relabel
    url = mislabelled_pg_url(request.getfixturevalue("pg_url"), schema="fingerprint")

    def relabel_pg(label: StoreLabel) -> None:
        with psycopg.connect(url) as conn, conn.transaction():
            write_pg_label(conn, label)

    data_dir = tmp_path_factory.mktemp("fingerprint-pg")
    return clean_settings(data_dir=data_dir, database_url=url, edition="internet"), relabel_pg


def test_store_under_other_rules_is_refused_naming_them(store):
    settings, relabel = store
    relabel(loosened(release_label("internet")))
    try:
        changed = r"edition\.collections\.land_survey\.generalize_m: 1\.0 at release, 2\.0 now.*--edition internet"
        with pytest.raises(StoreRefused, match=changed), TestClient(create_app(settings)):
            pass
        relabel(StoreLabel("internet", ("public",)))
        with pytest.raises(StoreRefused, match="records no rules"), TestClient(create_app(settings)):
            pass
    finally:
        relabel(release_label("internet"))


def test_store_changed_under_a_running_server(store, monkeypatch):
    settings, relabel = store
    monkeypatch.setattr(runtime, "LABEL_RECHECK_S", 0.0)
    try:
        with TestClient(create_app(settings)) as client:
            r = client.get("/collections/land_survey/items?limit=1")
            assert r.status_code == 200 and r.json()["features"]
            relabel(loosened(release_label("internet")))
            r = client.get("/collections/land_survey/items?limit=1")
            assert r.status_code == 503 and "generalize_m" not in r.text and "features" not in r.json()
    finally:
        relabel(release_label("internet"))


def test_coverage_rows_are_not_excluded_at_serve_time(sample_dir, tmp_path):
    config = tmp_path / "config"
    shutil.copytree(packaged("config"), config)
    doc = yaml.safe_load((config / "editions.yaml").read_text(encoding="utf-8"))
    doc["editions"]["classified"]["collections"] = {
        "land_survey": {"exclude": [{"field": "class_code", "values": ["12"]}]}}
    (config / "editions.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    settings = clean_settings(data_dir=sample_dir, config_dir=config)
    refused = "removes rows of the coverage layer 'land_survey'.*onemap release"
    with pytest.raises(StoreRefused, match=refused), TestClient(create_app(settings)):
        pass


def test_import_cannot_lower_the_edition(sample_dir, tmp_path):
    gov = tmp_path / "gov"
    build_release(clean_settings(data_dir=sample_dir), "government", gov, overviews=False)
    target = tmp_path / "target"
    cmd = [sys.executable, "-m", "server.cli", "import", str(gov), "--edition", "internet", "--data-dir", str(target)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "'government' edition and may hold sensitive data" in done.stderr
    assert not (target / "onemap.gpkg").exists()
    manifest = gov / "manifest.json"  # a manifest edited to claim a lower edition does not match the store
    doc = orjson.loads(manifest.read_bytes())
    manifest.write_bytes(orjson.dumps({**doc, "edition": "internet", "levels": ["public"]}))
    with pytest.raises(BundleError, match="store label does not match its manifest"):
        import_release(clean_settings(data_dir=target, edition="internet"), gov)
    tighter = tmp_path / "config"
    shutil.copytree(packaged("config"), tighter)
    rules = yaml.safe_load((tighter / "editions.yaml").read_text(encoding="utf-8"))
    rules["editions"]["government"]["collections"]["parcels"]["drop"] = ["owner_name"]
    (tighter / "editions.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    manifest.write_bytes(orjson.dumps(doc))
    with pytest.raises(BundleError, match=r"collections\.parcels\.drop: \[\] at release, \[\"owner_name\"\] now"):
        import_release(clean_settings(data_dir=target, edition="government", config_dir=tighter), gov)
