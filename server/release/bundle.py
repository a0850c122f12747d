"""Build a release bundle for a lower edition from the current store (``onemap release``).

The bundle, a directory::

    onemap.gpkg        the embedded store: only the collections, fields and rows the edition may hold,
                       masked, generalized and rounded as its rules say, with tile overviews and a label
    rasters/...        the COGs of the visible raster collections, coarsened to the edition's cap
    stac/...           a static STAC catalog of those rasters (pystac, validated)
    manifest.json      edition, levels, rule version and digest, per-collection counts, checksums

Nothing above the edition is ever written into the bundle: every read is given the edition's
resolved ``Restriction`` of its collection, rows and columns are filtered in the reading SQL and the
rest is applied before a batch reaches the writer. The release rules of ``editions.yaml`` then fill
the holes removed rows leave in coverage layers and re-key ids (``inference.py``; only there are
removed rows read, by id and geometry, to compute the fill).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pystac

from server.assets import file_assets, sheet_index
from server.catalog import Catalog, Collection, RasterCollection, VectorCollection, load_catalog
from server.policy.editions import ReleaseRules, check_against_catalog, load_editions
from server.policy.labels import StoreLabel
from server.policy.model import Restriction, checked
from server.policy.rasters import coarsen_cog, ground_resolution_m, within_resolution
from server.policy.resolve import PolicyResolver
from server.release.inference import release_batches
from server.release.manifest import BundleError, write_manifest
from server.settings import Settings
from server.sheets import SheetIndex
from server.stores import GPKG_NAME, Store, open_store
from server.stores.batches import write_all
from server.stores.geopackage import GeoPackageStore

DEFAULT_BASE = "http://localhost:8000"
Progress = Callable[[str], None]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_vectors(store: Store, vectors: list[tuple[VectorCollection, Restriction]],
                   release: dict[str, ReleaseRules], bundle: Store, label: StoreLabel, say: Progress,
                   overviews: bool) -> dict[str, int]:
    """Copy the visible rows of ``vectors`` from ``store`` into the bundle's store, with the release
    rules applied (``inference.py``), prepared and labelled."""
    def batches():
        for view, restriction in vectors:
            say(f"vector {view.id}")
            yield from release_batches(store, view, restriction, release.get(view.id), say)

    views = [view for view, _ in vectors]
    counts = {v.id: 0 for v in views} | write_all(bundle.writer(views), batches())
    say("data versions and tile overviews" if overviews else "data versions")
    bundle.prepare(Catalog(views), overviews=overviews)
    bundle.write_label(label)
    return counts


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    if root.resolve() not in path.parents:
        raise BundleError(f"asset path '{rel}' leaves the data directory")
    return path


def _write_rasters(settings: Settings, rasters: list[tuple[RasterCollection, Restriction]], out: Path,
                   say: Progress) -> tuple[dict[str, Any], list[Collection]]:
    docs: dict[str, Any] = {}
    shipped: list[Collection] = []
    for view, restriction in rasters:
        cap = checked(restriction, view).max_resolution_m
        assets, kept = {}, []
        for asset in file_assets(view, settings.data_dir):  # a mosaic's sheets, each capped
            src = _inside(settings.data_dir, asset.path)
            if not src.is_file():
                say(f"raster {asset.id}: no file, skipped")
                continue
            dst = _inside(out, asset.path)
            dst.parent.mkdir(parents=True, exist_ok=True)
            coarsened = False
            if cap is not None and not within_resolution(src, cap):
                say(f"raster {asset.id}: coarsening to {cap} m")
                coarsen_cog(src, dst, cap)
                coarsened = True
            else:
                shutil.copyfile(src, dst)
            assets[asset.id] = {"path": asset.path, "resolution_m": round(ground_resolution_m(dst), 3),
                                "coarsened": coarsened}
            kept.append(asset)
        if not kept:
            continue
        docs[view.id] = {"kind": "raster", "assets": assets, "max_resolution_m": cap}
        if view.raster.sheets is not None:
            docs[view.id]["sheets"] = _write_index(settings, view, {a.path for a in kept}, out)
            shipped.append(view)
        else:
            shipped.append(view.model_copy(update={"raster": view.raster.model_copy(update={"assets": kept})}))
    return docs, shipped


def _write_index(settings: Settings, view: RasterCollection, shipped: set[str], out: Path) -> str:
    """The bundle's sheet index of a mosaic: the shipped sheets only, described as written."""
    index = sheet_index(view, settings.data_dir)
    target = SheetIndex(_inside(out, view.raster.sheets or ""))
    by_acquisition: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for sheet in index.sheets() if index is not None else []:
        if sheet.path in shipped:
            by_acquisition.setdefault((sheet.acquisition, sheet.datetime), []).append((sheet.name, sheet.path))
    for (acquisition, when), files in by_acquisition.items():
        target.add(out, acquisition, when, files)
    return view.raster.sheets or ""


def _write_stac(rasters: list[Collection], out: Path, base_url: str) -> None:
    from server.stac_catalog.build import build_catalog
    from server.stac_catalog.validate import validate_tree

    root = build_catalog(Catalog(rasters), out, base_url.rstrip("/"))
    root.normalize_hrefs(str(out / "stac"))
    problems = validate_tree(root)
    if problems:
        raise BundleError("the release STAC catalog does not validate: " + "; ".join(problems))
    root.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)


def build_release(settings: Settings, edition: str, out_dir: Path, base_url: str = DEFAULT_BASE,
                  progress: Progress | None = None, overviews: bool = True) -> dict[str, Any]:
    """Write the bundle for ``edition`` into ``out_dir`` (new or empty); returns the manifest.

    ``overviews=False`` leaves the tile overviews out (tiles then generalize on the fly; the
    PostGIS import always builds them).
    """
    say = progress or (lambda _m: None)
    catalog = load_catalog(settings.collections_dir)
    editions = load_editions(settings.config_dir)
    if problems := check_against_catalog(editions, catalog):
        raise BundleError("\n".join(problems))
    resolver = PolicyResolver(catalog, editions, edition)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} is not empty; give a new directory")
    store = open_store(settings)
    source = store.read_label()
    out.mkdir(parents=True, exist_ok=True)
    rules = editions.fingerprint(edition)
    label = StoreLabel(edition, tuple(resolver.spec.levels), editions.rules_version, editions.digest, _now(),
                       orjson.dumps(rules, option=orjson.OPT_SORT_KEYS).decode())
    access = list(resolver.policy().collections.values())
    try:
        vectors = [(a.view, a.restriction) for a in access if isinstance(a.view, VectorCollection)]
        counts = _write_vectors(store, vectors, editions.release, GeoPackageStore(out / GPKG_NAME), label, say,
                                overviews)
        rasters = [(a.view, a.restriction) for a in access if isinstance(a.view, RasterCollection)]
        raster_docs, shipped = _write_rasters(settings, rasters, out, say)
        if shipped:
            _write_stac(shipped, out, base_url)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    collections: dict[str, Any] = {
        a.id: {"kind": "vector", "features": counts[a.id], "fields": list(a.fields), **a.describe()}
        for a in access if a.id in counts
    }
    collections.update(raster_docs)
    doc = {
        "edition": edition, "levels": list(label.levels), "rules_version": label.rules_version,
        "rules_digest": label.rules_digest, "rules": rules, "created": label.released,
        "source": {"store": store.kind, "edition": source.edition or "master"},
        "collections": collections,
    }
    write_manifest(out, doc)
    return doc
