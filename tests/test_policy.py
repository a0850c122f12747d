"""Editions, classification and the per-caller policy, resolved from the shipped configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from server.catalog import load_catalog
from server.policy.desensitize import mask_value, reduce_geometries
from server.policy.editions import EditionError, check_against_catalog, load_editions
from server.policy.labels import MASTER, StoreLabel, label_problem
from server.policy.model import Restriction
from server.policy.resolve import PolicyResolver, restricted, zoom_for_resolution
from tests.support import ROOT

CATALOG = load_catalog(ROOT / "collections")
EDITIONS = load_editions(ROOT / "config")


def policy(edition: str, key: str | None = None, scopes: frozenset[str] | None = None):
    return PolicyResolver(CATALOG, EDITIONS, edition).policy(key, scopes)


def test_shipped_rules_match_the_catalog():
    assert check_against_catalog(EDITIONS, CATALOG) == []
    assert set(EDITIONS.editions) == {"internet", "government", "classified"}
    assert EDITIONS.edition("internet").anonymous and not EDITIONS.edition("government").anonymous
    assert not EDITIONS.edition("classified").anonymous


def test_catalog_is_classified_realistically():
    parcels = CATALOG.get("parcels")
    assert parcels.classification.level == "sensitive"
    assert parcels.field("owner_name").level == parcels.field("owner_id_number").level == "secret"
    assert [(r.field, r.values, r.level) for r in parcels.classification.rows] == [("land_use", ["09"], "secret")]
    assert CATALOG.get("control_lines").classification.level == "sensitive"
    assert CATALOG.get("land_survey").classification.level == "public"
    assert CATALOG.get("imagery").classification.level == "public"


def test_internet_sees_public_collections_only():
    p = policy("internet")
    assert set(p.collections) == {"admin_boundaries", "land_survey", "planning_zones", "imagery", "dem"}
    assert p.access("parcels") is None and p.access("control_lines") is None and p.anonymous
    survey = p.access("land_survey")
    assert [(c.field, c.values) for c in survey.restriction.exclude] == [("class_code", ("09",))]
    assert survey.restriction.precision == 5 and survey.max_zoom == 16
    assert survey.view.tiles.maxzoom == 16 and survey.restriction.max_zoom == 16
    assert restricted(CATALOG.get("land_survey"), survey.restriction) == survey.view


def test_government_masks_names_and_drops_id_numbers():
    p = policy("government", "k1")
    parcels = p.access("parcels")
    assert "owner_id_number" not in parcels.fields and "owner_id_number" not in parcels.view.field_names
    assert "owner_name" in parcels.fields and parcels.masked == {"owner_name"}
    assert "owner_name" not in parcels.queryable
    assert [(c.field, c.values) for c in parcels.restriction.exclude] == [("land_use", ("09",))]
    assert p.access("buildings").restriction.exclude[0].values == ("特殊用途",)


def test_classified_sees_everything_unrestricted():
    p = policy("classified", "k1")
    assert set(p.collections) == set(CATALOG.ids)
    assert all(a.restriction.empty and a.restriction == Restriction.unrestricted(CATALOG.get(a.id))
               for a in p.collections.values())
    assert p.access("parcels").fields == CATALOG.get("parcels").field_names


def test_key_scopes_narrow_the_edition():
    p = policy("classified", "k2", frozenset({"parcels", "nonexistent"}))
    assert tuple(p.collections) == ("parcels",)
    assert policy("internet", "k3", frozenset({"parcels"})).collections == {}


def test_cache_scope_is_stable_and_separates_what_differs():
    a, b = policy("government", "k1"), PolicyResolver(CATALOG, EDITIONS, "government").policy("k9")
    assert a.cache_scope == b.cache_scope  # same edition and scope: shareable, whoever asks
    scoped = policy("government", "k1", frozenset({"parcels"}))
    scopes = {policy(e).cache_scope for e in ("internet", "government", "classified")} | {scoped.cache_scope}
    assert len(scopes) == 4 and a.cache_scope.startswith("government-")


def test_policy_is_immutable():
    p = policy("internet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.edition = "classified"  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.collections["parcels"] = p.collections["land_survey"]  # type: ignore[index]


def test_imagery_resolution_cap():
    assert zoom_for_resolution(0.5, 29.95) == 18  # 0.517 m ground pixels at 30N
    assert zoom_for_resolution(30.0, 30.0) == 12
    dem = policy("internet").access("dem")
    assert dem.max_resolution_m == 30.0 and dem.view.raster.resolution_m == 30.0 and dem.view.raster.maxzoom == 12
    imagery = policy("internet").access("imagery")
    assert imagery.max_resolution_m == 0.5 and imagery.view.raster.resolution_m == 1.04  # already coarser


def test_masking_and_geometry_reduction():
    assert mask_value("张三丰") == "张**" and mask_value("李四") == "李*" and mask_value("王") == "王*"
    assert mask_value(None) is None and mask_value("") == ""
    import shapely

    g = shapely.from_wkt(["POLYGON ((121.1234567 29.7654321, 121.2 29.7654321, 121.2 29.9, 121.1234567 29.7654321))"])
    out = reduce_geometries(g, Restriction("land_survey", (), precision=3), 4490)
    assert sorted(map(tuple, shapely.get_coordinates(out).tolist())) == [
        (121.123, 29.765), (121.2, 29.765), (121.2, 29.9), (121.2, 29.9)]
    assert shapely.is_valid(out).all()


def test_bad_rules_are_reported_by_key(tmp_path: Path):
    doc = yaml.safe_load((ROOT / "config" / "editions.yaml").read_text(encoding="utf-8"))
    doc["editions"]["government"]["collections"] = {
        "parcels": {"mask": ["unit_code", "area_m2"], "drop": ["nope"]},
        "no_such": {"precision": 3},
    }
    (tmp_path / "editions.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    problems = "\n".join(check_against_catalog(load_editions(tmp_path), CATALOG))
    assert "id field 'unit_code' cannot be removed or masked" in problems
    assert "'area_m2' is not a string field" in problems and "field 'nope'" in problems
    assert "collection 'no_such' is not in the catalog" in problems
    doc["editions"]["internet"]["levels"] = ["top"]
    (tmp_path / "editions.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(EditionError, match=r"editions\.internet\.levels\.0"):
        load_editions(tmp_path)


def test_unknown_edition_names_the_known_ones():
    with pytest.raises(EditionError, match="'intranet' is not defined.*classified, government, internet"):
        PolicyResolver(CATALOG, EDITIONS, "intranet")


def test_store_labels_against_editions():
    internet = EDITIONS.edition("internet")
    problem = label_problem(MASTER, "internet", internet)
    assert "unlabelled master store" in problem and "sensitive, secret" in problem
    assert label_problem(StoreLabel("internet", ("public",)), "internet", internet) is None
    gov = StoreLabel("government", ("public", "sensitive"))
    assert "labelled for the 'government' edition" in label_problem(gov, "internet", internet)
    assert label_problem(gov, "classified", EDITIONS.edition("classified")) is None


def test_the_app_validates_the_configured_edition(tmp_path: Path):
    from server.app import create_app
    from server.settings import Settings

    with pytest.raises(EditionError, match="edition 'intranet' is not defined"):
        create_app(Settings(data_dir=tmp_path, edition="intranet"))


def test_row_rules_must_read_visible_fields(tmp_path: Path):
    doc = yaml.safe_load((ROOT / "config" / "editions.yaml").read_text(encoding="utf-8"))
    doc["editions"]["internet"]["collections"]["land_survey"]["drop"] = ["class_code"]
    (tmp_path / "editions.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(EditionError, match="rows are excluded by field\\(s\\) class_code, which the edition hides"):
        PolicyResolver(CATALOG, load_editions(tmp_path), "internet")
