"""The STAC API's in-memory view of the raster holdings, rebuilt when a COG or the base URL changes.

The pystac objects are built once per (base URL, file versions); the API serves their JSON with
API links (self, root, parent, collection, items) in place of the static catalog's relative ones.
An asset whose file is missing or unreadable is left out of the API (and logged), so the rest of
the catalog stays available.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rasterio.errors import RasterioError
from shapely.geometry import shape

from server.assets import asset_path, file_assets, is_remote
from server.catalog import Catalog, RasterAsset, RasterCollection
from server.policy.model import Restriction, restricted_ids
from server.stac_api.search import Entry
from server.stac_catalog.build import build_collection, raster_collections, served_item

log = logging.getLogger("onemap.stac")
GEOJSON = "application/geo+json"
JSON = "application/json"
# links the API writes itself; every other link of the pystac objects is kept
_STRUCTURAL = {"self", "root", "parent", "child", "item", "items", "collection"}


@dataclass
class StacIndex:
    """Collections (JSON without structural links) and searchable items, in catalog order."""

    collections: dict[str, dict[str, Any]]
    entries: list[Entry]

    def visible(self, *, restrictions: Mapping[str, Restriction]) -> StacIndex:
        """The part a caller may see: the collections in ``restrictions`` (the caller's, by id)."""
        allowed = restricted_ids(restrictions)
        shown = {cid: doc for cid, doc in self.collections.items() if cid in allowed}
        return StacIndex(shown, [e for e in self.entries if e.collection in shown])


def _extra_links(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [link for link in doc.get("links", []) if link.get("rel") not in _STRUCTURAL]


def versions(catalog: Catalog, data_dir: Path) -> tuple:
    """A value that changes whenever a registered raster file changes."""
    out: list[tuple[str, int | None, int | None]] = []
    for c in raster_collections(catalog):
        for a in _files(c, data_dir):
            if is_remote(a):  # an object in a store: its description is read once per process
                out.append((a.id, None, None))
                continue
            try:
                st = asset_path(data_dir, a).stat()
                out.append((a.id, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((a.id, None, None))
    return tuple(out)


def _files(c: RasterCollection, data_dir: Path) -> list[RasterAsset]:
    """The files of a collection; a mosaic whose sheet index cannot be read lists none (logged)."""
    try:
        return file_assets(c, data_dir)
    except (OSError, sqlite3.Error) as exc:
        log.error("STAC items of %s left out: sheet index unreadable: %s", c.id, exc)
        return []


def resolution_caps(restrictions: Mapping[str, Restriction]) -> tuple[tuple[str, float], ...]:
    """The caller's resolution caps, by collection id (a key for the index as that caller sees it)."""
    return tuple(sorted((cid, r.max_resolution_m) for cid, r in restrictions.items() if r.max_resolution_m))


def build_index(catalog: Catalog, data_dir: Path, base: str, caps: Mapping[str, float]) -> StacIndex:
    """Read every COG's header and build the index, each asset described at the grid served under the
    resolution ``caps`` (by collection id): gsd, ``raster:bands`` resolution, ``proj:shape``/``proj:transform``
    (blocking: run it in a thread)."""
    collections: dict[str, dict[str, Any]] = {}
    entries: list[Entry] = []
    for c in raster_collections(catalog):
        items = []
        for a in _files(c, data_dir):
            try:
                item = served_item(base, c, a, data_dir, caps.get(c.id))
            except (OSError, RasterioError) as exc:
                log.error("STAC item %s left out: %s", a.id, exc)
                continue
            if item is not None:
                items.append(item)
        coll = build_collection(base, c, items)
        doc = coll.to_dict(include_self_link=False, transform_hrefs=False)
        doc["links"] = _extra_links(doc)
        collections[c.id] = doc
        for item in coll.get_items():
            idoc = item.to_dict(include_self_link=False, transform_hrefs=False)
            idoc["links"] = _extra_links(idoc)
            if item.datetime is None or item.geometry is None:  # build_item always sets both
                raise ValueError(f"STAC item {item.id} has no datetime or geometry")
            entries.append(Entry(c.id, item.id, item.datetime, shape(item.geometry), idoc))
    return StacIndex(collections, entries)


def collection_json(doc: dict[str, Any], root: str) -> dict[str, Any]:
    """A collection document with its API links."""
    url = f"{root}/collections/{doc['id']}"
    links = [
        {"rel": "self", "href": url, "type": JSON, "title": "This collection"},
        {"rel": "root", "href": root, "type": JSON, "title": "The catalog"},
        {"rel": "parent", "href": root, "type": JSON, "title": "The catalog"},
        {"rel": "items", "href": f"{url}/items", "type": GEOJSON, "title": "Items"},
    ]
    return {**doc, "links": links + doc["links"]}


def item_json(entry: Entry, root: str) -> dict[str, Any]:
    """An item document with its API links."""
    coll = f"{root}/collections/{entry.collection}"
    links = [
        {"rel": "self", "href": f"{coll}/items/{entry.id}", "type": GEOJSON, "title": "This item"},
        {"rel": "parent", "href": coll, "type": JSON, "title": "The collection"},
        {"rel": "collection", "href": coll, "type": JSON, "title": "The collection"},
        {"rel": "root", "href": root, "type": JSON, "title": "The catalog"},
    ]
    return {**entry.doc, "links": links + entry.doc["links"]}
