"""Load a release bundle into this server's store (``onemap import DIR``).

The bundle is verified first (every checksum, no unlisted file) and must be for levels this server's
edition may hold. Embedded store: the bundle's GeoPackage replaces ``data_dir/onemap.gpkg``
atomically (with data versioning installed when the bundle lacks it). PostGIS: its tables are reloaded through the sample's PostGIS writer (typed tables,
COPY, keys, GiST indexes), tables of collections not in the bundle are dropped, then data
versioning, tile overviews and the store label are installed. COGs go under ``data_dir``; COG files
of catalog collections not in the bundle are removed, so nothing above the edition stays behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from server.catalog import Catalog, RasterCollection, VectorCollection, load_catalog
from server.policy.editions import load_editions
from server.policy.labels import StoreLabel, read_gpkg_label, write_pg_label
from server.policy.model import Restriction
from server.release.manifest import BundleError, read_manifest, verify
from server.release.reader import gpkg_batches
from server.sample import GPKG_NAME
from server.settings import Settings

Progress = Callable[[str], None]


def _check_edition(settings: Settings, doc: dict[str, Any], bundle: Path) -> StoreLabel:
    spec = load_editions(settings.config_dir).edition(settings.edition)
    above = [lv for lv in doc.get("levels", []) if not spec.allows(lv)]
    if above:
        raise BundleError(
            f"the bundle is for the '{doc.get('edition')}' edition and may hold {', '.join(above)} data, "
            f"which this server's '{settings.edition}' edition may not hold"
        )
    label = read_gpkg_label(bundle / GPKG_NAME)
    if label.edition != doc.get("edition") or list(label.levels) != list(doc.get("levels", [])):
        raise BundleError("the bundle's store label does not match its manifest")
    return label


def _views(catalog: Catalog, doc: dict[str, Any]) -> list[VectorCollection]:
    """The bundle's vector collections, with the fields the bundle carries."""
    views = []
    for cid, entry in doc.get("collections", {}).items():
        c = catalog.get(cid)
        if entry.get("kind") != "vector":
            continue
        if not isinstance(c, VectorCollection):
            raise BundleError(f"the bundle holds collection '{cid}', which this catalog does not declare")
        fields = set(entry.get("fields", []))
        views.append(c.model_copy(update={"fields": [f for f in c.fields if f.name in fields]}))
    return views


def _load_postgis(url: str, catalog: Catalog, views: list[VectorCollection], gpkg: Path, label: StoreLabel,
                  say: Progress) -> None:
    from server.sample import write_all
    from server.sample.postgis import PostGISWriter
    from server.sources.prepare import prepare_for_serving
    from server.sources.tile_overviews import PG_SCHEMA

    def batches():
        for v in views:
            say(f"vector {v.id}")
            # the bundle holds only what its edition may: copied as it is
            yield from gpkg_batches(gpkg, v, restriction=Restriction.unrestricted(v))

    write_all(PostGISWriter(url, views), batches())
    shipped = {v.id for v in views}
    with psycopg.connect(url, autocommit=True) as conn:
        for c in catalog.of_kind(VectorCollection):
            if c.id not in shipped:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(c.source.table)))
                stale = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
                                     [PG_SCHEMA, f"{c.source.table}\\_z%"]).fetchall()
                for (name,) in stale:
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(PG_SCHEMA, name)))
    prepare_for_serving(Catalog(views), gpkg, url)
    with psycopg.connect(url) as conn, conn.transaction():
        write_pg_label(conn, label)


def _replace_file(src: Path, dst: Path, prepare: Callable[[Path], object] | None = None) -> None:
    """Copy ``src`` over ``dst`` atomically; ``prepare`` may change the copy before it is put in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.import")
    shutil.copyfile(src, tmp)
    try:
        if prepare is not None:
            prepare(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dst)


def _load_rasters(settings: Settings, catalog: Catalog, doc: dict[str, Any], bundle: Path) -> None:
    shipped: set[str] = set()
    for entry in doc.get("collections", {}).values():
        if entry.get("kind") == "raster":
            for asset in entry.get("assets", {}).values():
                _replace_file(bundle / asset["path"], settings.data_dir / asset["path"])
                shipped.add(asset["path"])
    for c in catalog.of_kind(RasterCollection):
        for asset in c.raster.assets:
            if asset.path not in shipped:
                (settings.data_dir / asset.path).unlink(missing_ok=True)
    stac = settings.data_dir / "stac"
    shutil.rmtree(stac, ignore_errors=True)
    if (bundle / "stac").is_dir():
        shutil.copytree(bundle / "stac", stac)


def import_release(settings: Settings, bundle_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Verify the bundle and load it into the configured store; returns the manifest."""
    say = progress or (lambda _m: None)
    bundle = Path(bundle_dir)
    doc = read_manifest(bundle)
    verify(bundle, doc)
    label = _check_edition(settings, doc, bundle)
    catalog = load_catalog(settings.collections_dir)
    views = _views(catalog, doc)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.database_url:
        _load_postgis(settings.database_url, catalog, views, bundle / GPKG_NAME, label, say)
    else:
        say("embedded store")
        from server.sources.prepare import prepare_for_serving

        # data versioning (a no-op for bundles that carry it); the bundle's overviews are kept
        _replace_file(bundle / GPKG_NAME, settings.gpkg_path,
                      lambda tmp: prepare_for_serving(Catalog(views), tmp, None, overviews=False))
    _load_rasters(settings, catalog, doc, bundle)
    return doc
