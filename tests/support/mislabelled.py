"""The whole master sample mislabelled as an internet release, on either backend.

With such a store the policy applied below the routes is all that stands between secret data and
an internet-edition caller, which is what the leak and restriction tests want to see.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import orjson
import psycopg

from server.policy.editions import load_editions
from server.policy.labels import StoreLabel, write_gpkg_label, write_pg_label
from server.raster.sample import write_sample_rasters
from server.settings import packaged

TABLES = ("admin_boundaries", "land_survey", "planning_zones", "control_lines", "parcels", "buildings")


def release_label(edition: str) -> StoreLabel:
    """The label a release for ``edition`` under the running rules would carry."""
    editions = load_editions(packaged("config"))
    rules = orjson.dumps(editions.fingerprint(edition), option=orjson.OPT_SORT_KEYS).decode()
    return StoreLabel(edition, tuple(editions.edition(edition).levels), editions.rules_version, editions.digest,
                      rules=rules)


INTERNET_LABEL = release_label("internet")


def mislabelled_gpkg_dir(target: Path, sample_dir: Path, rasters: bool = True) -> Path:
    """The master GeoPackage (and, with ``rasters``, small COGs) labelled as an internet release."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_dir / "onemap.gpkg", target / "onemap.gpkg")
    with sqlite3.connect(target / "onemap.gpkg") as conn:
        write_gpkg_label(conn, INTERNET_LABEL)
    if rasters:
        write_sample_rasters(target, scale=16)
    return target


def mislabelled_pg_url(pg_url: str, schema: str = "leak") -> str:
    """A schema holding a copy of the master tables, labelled internet; a URL searching it first."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        for t in TABLES:
            conn.execute(f"CREATE TABLE {schema}.{t} (LIKE public.{t} INCLUDING ALL)")
            conn.execute(f"INSERT INTO {schema}.{t} SELECT * FROM public.{t}")
    url = f"{pg_url}?options=-csearch_path%3D{schema},public"
    with psycopg.connect(url) as conn, conn.transaction():
        write_pg_label(conn, INTERNET_LABEL)
    return url
