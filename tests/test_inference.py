"""No inference from what is missing: holes in coverage layers and gaps in ids of a release.

An attacker with a lower edition's store reconstructs the holes of every coverage layer (the layer's
area minus the union of its published rows, the placeholders left out as the attacker would spot
them) and the ids. For both editions, releases built from either backend's master store and loaded
into a store of the same backend must give back no secret outline: each hole stays at least half the
fill grid from the secret outline (Hausdorff) and overlaps it no more than the outline grown by a
quarter of the grid would (IoU),
and the ids are a dense 1..n in an order that changes from one build to the next.
"""

from __future__ import annotations

import os

import numpy as np
import psycopg
import pyproj
import pytest
import shapely

from server.catalog import VectorCollection, load_catalog
from server.policy.editions import load_editions
from server.policy.model import Restriction
from server.policy.resolve import PolicyResolver
from server.release import build_release, import_release
from server.settings import Settings
from server.stores import open_store

COVERAGE = {"land_survey": ("class_code", "09"), "planning_zones": ("use_code", "15")}
EDITIONS = ("government", "internet")


def clean_settings(**kw) -> Settings:
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    return Settings(**kw)


def fresh_database(pg_url: str, name: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    return url


def rows(settings: Settings, cid: str, edition: str | None = None) -> list[dict]:
    """Every row of a collection as a store of ``settings`` serves it to ``edition`` (None: unrestricted)."""
    catalog = load_catalog(settings.collections_dir)
    c = catalog.get(cid)
    assert isinstance(c, VectorCollection)
    if edition is None:
        view, restriction = c, Restriction.unrestricted(c)
    else:
        access = PolicyResolver(catalog, load_editions(settings.config_dir), edition).policy().collections[cid]
        view, restriction = access.view, access.restriction
    return [{**{k: v[i] for k, v in b.columns.items()}, "geom": g}
            for b in open_store(settings).batches(view, restriction=restriction) for i, g in enumerate(b.geoms)]


class Plane:
    def __init__(self) -> None:
        self._t = pyproj.Transformer.from_crs("EPSG:4490", "EPSG:4549", always_xy=True)

    def __call__(self, g):
        return shapely.transform(g, lambda xy: np.column_stack(self._t.transform(xy[:, 0], xy[:, 1])))


@pytest.fixture(scope="module", params=["geopackage", "postgis"])
def released(request, sample_dir, tmp_path_factory) -> dict:
    """Per edition: (the master settings, the settings of a store loaded from its release)."""
    base = tmp_path_factory.mktemp(f"inference-{request.param}")
    url = request.getfixturevalue("pg_url") if request.param == "postgis" else None
    master = clean_settings(data_dir=sample_dir, database_url=url)
    out = {}
    for edition in EDITIONS:
        build_release(master, edition, base / f"{edition}-bundle", overviews=False)
        target_url = fresh_database(url, f"inference_{edition}") if url else None
        target = clean_settings(data_dir=base / f"{edition}-store", database_url=target_url, edition=edition)
        import_release(target, base / f"{edition}-bundle")
        out[edition] = (master, target)
    return out


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("cid", sorted(COVERAGE))
def test_holes_do_not_give_back_secret_outlines(released, edition, cid):
    master, target = released[edition]
    grid = load_editions(master.config_dir).release[cid].coverage.grid_m
    field, secret_value = COVERAGE[cid]
    plane = Plane()
    every = rows(master, cid)
    secrets = [plane(r["geom"]) for r in every if r[field] == secret_value]
    assert secrets, "the sample has secret rows in every coverage layer"
    area = shapely.union_all([plane(r["geom"]) for r in every])
    published = rows(target, cid, edition)
    assert not [r for r in published if r[field] == secret_value]
    placeholder = load_editions(master.config_dir).release[cid].coverage.placeholder
    real = [plane(r["geom"]) for r in published if any(r[k] != v for k, v in placeholder.items())]
    holes = shapely.difference(area, shapely.union_all(real))
    for secret in secrets:
        hole = shapely.intersection(holes, secret.buffer(3 * grid))
        assert hole.area > 0
        iou = shapely.intersection(hole, secret).area / shapely.union(hole, secret).area
        assert shapely.hausdorff_distance(hole, secret) >= grid / 2
        assert iou <= secret.area / secret.buffer(grid / 4).area, iou  # grown by >= grid/4 everywhere
        # with the placeholders, nothing of the secret area is left uncovered
        everything = shapely.union_all([plane(r["geom"]) for r in published])
        assert shapely.difference(secret, everything.buffer(0.5)).area < 0.01 * secret.area


@pytest.mark.parametrize("edition", EDITIONS)
def test_released_ids_are_dense_and_carry_no_sequence(released, edition, tmp_path):
    master, target = released[edition]
    serves = PolicyResolver(load_catalog(master.collections_dir), load_editions(master.config_dir), edition).base
    for cid in set(load_editions(master.config_dir).release) & set(serves):
        published = rows(target, cid, edition)
        ids = sorted(r["id"] for r in published)
        assert ids == list(range(1, len(ids) + 1)), cid
    again = tmp_path / "again"
    build_release(master, edition, again, overviews=False)
    store = clean_settings(data_dir=again, edition=edition)
    first = {round(r["geom"].centroid.x, 6): r["id"] for r in rows(target, "land_survey", edition)}
    second = {round(r["geom"].centroid.x, 6): r["id"] for r in rows(store, "land_survey", edition)}
    same = [k for k in first if second.get(k) == first[k]]
    assert len(same) < 0.05 * len(first)


def test_unit_codes_keep_their_value(released):
    master, target = released["government"]
    secret_free = {r["unit_code"] for r in rows(master, "parcels") if r["land_use"] != "09"}
    assert {r["unit_code"] for r in rows(target, "parcels", "government")} == secret_free
