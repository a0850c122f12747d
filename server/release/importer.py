"""Load a release bundle into this server's store (``onemap import DIR``).

The bundle is verified first (every checksum, no unlisted file), must be for levels this server's
edition may hold, and must have been built under the running rules of its edition (the store label
the import writes is the bundle's own, whatever the flags: a bundle cannot be relabelled lower).
Its vector data goes into the store by ``Store.load_bundle``: the embedded store's file is replaced
atomically (with data versioning installed when the bundle lacks it); PostGIS tables are reloaded
through the store's writer (typed tables, COPY, keys, GiST indexes), tables of collections not in
the bundle are dropped, then data versioning, tile overviews and the store label are installed. COGs
go under ``data_dir``; COG files of catalog collections not in the bundle are removed, so nothing
above the edition stays behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from server.assets import file_assets
from server.catalog import Catalog, RasterCollection, VectorCollection, load_catalog
from server.policy.editions import load_editions
from server.policy.fingerprint import rules_problem
from server.policy.labels import StoreLabel, label_problem
from server.policy.resolve import PolicyResolver
from server.release.manifest import BundleError, read_manifest, verify
from server.settings import Settings
from server.stores import GPKG_NAME, open_store
from server.stores.files import replace_file
from server.stores.geopackage import GeoPackageStore

Progress = Callable[[str], None]


def _check_edition(settings: Settings, catalog: Catalog, doc: dict[str, Any], bundle: Path) -> StoreLabel:
    editions = load_editions(settings.config_dir)
    spec = editions.edition(settings.edition)
    above = [lv for lv in doc.get("levels", []) if not spec.allows(lv)]
    if above:
        raise BundleError(
            f"the bundle is for the '{doc.get('edition')}' edition and may hold {', '.join(above)} data, "
            f"which this server's '{settings.edition}' edition may not hold"
        )
    label = GeoPackageStore(bundle / GPKG_NAME).read_label()
    if (label.edition != doc.get("edition") or list(label.levels) != list(doc.get("levels", []))
            or label.rules is None or orjson.loads(label.rules) != doc.get("rules")):
        raise BundleError("the bundle's store label does not match its manifest")
    resolver = PolicyResolver(catalog, editions, settings.edition)
    problem = label_problem(label, settings.edition, spec) or rules_problem(
        label, catalog, editions, settings.edition, resolver.base)
    if problem:
        raise BundleError(problem)
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


def _load_rasters(settings: Settings, catalog: Catalog, doc: dict[str, Any], bundle: Path) -> None:
    rasters = catalog.of_kind(RasterCollection)
    # the files there now: every asset, and for a mosaic its index and the sheets it lists
    before = {a.path for c in rasters if c.raster.sheets is None for a in c.raster.assets}
    before |= {c.raster.sheets for c in rasters if c.raster.sheets is not None}
    before |= {a.path for c in rasters if c.raster.sheets is not None for a in file_assets(c, settings.data_dir)}
    shipped: set[str] = set()
    for entry in doc.get("collections", {}).values():
        if entry.get("kind") == "raster":
            for rel in [a["path"] for a in entry.get("assets", {}).values()] + [entry.get("sheets")]:
                if rel:
                    replace_file(bundle / rel, settings.data_dir / rel)
                    shipped.add(rel)
    for rel in sorted(before - shipped):  # what the bundle does not hold must not stay behind
        (settings.data_dir / rel).unlink(missing_ok=True)
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
    catalog = load_catalog(settings.collections_dir)
    label = _check_edition(settings, catalog, doc, bundle)
    views = _views(catalog, doc)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    open_store(settings).load_bundle(bundle / GPKG_NAME, catalog, views, label, say)
    _load_rasters(settings, catalog, doc, bundle)
    return doc
