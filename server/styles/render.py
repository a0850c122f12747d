"""Turn a stored style template into the document one caller gets.

Four steps, each a pure function of the template and the collections the caller may see (as the
caller may see them: ``server.policy.visible_collections``, zooms capped per edition):
1. keep only the layers of visible collections, drop the sources no layer uses any more;
2. take each source's zoom range and bounds from those collections (one truth: collections/*.yaml
   and the edition rules), and raise each layer's ``minzoom`` to its collection's;
3. set the map's initial centre and zoom to the visible data;
4. replace the ``{base_url}`` placeholder in tile URLs with the server's public base URL.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

from server.catalog import Collection, RasterCollection
from server.extents import Bbox, union_bbox
from server.styles.store import PLACEHOLDER, StyleTemplate, layer_collection

_VIEWPORT_PX = 800  # the width the initial zoom is chosen for


def filter_layers(doc: dict[str, Any], visible: Iterable[str]) -> dict[str, Any]:
    """A copy of the style without the layers of hidden collections and without unused sources."""
    allowed = set(visible)
    out = copy.deepcopy(doc)
    out["layers"] = [
        layer for layer in out["layers"] if (c := layer_collection(layer)) is None or c in allowed
    ]
    used = {layer["source"] for layer in out["layers"] if "source" in layer}
    out["sources"] = {sid: s for sid, s in out["sources"].items() if sid in used}
    meta = out.get("metadata") or {}
    if "onemap:compose" in meta:  # part styles are named after collections: list only the allowed ones
        meta["onemap:compose"] = [e for e in meta["onemap:compose"] if e.get("style") in allowed]
    return out


def _zooms(c: Collection) -> tuple[int, int]:
    if isinstance(c, RasterCollection):
        return c.raster.minzoom, c.raster.maxzoom
    return c.tiles.minzoom, c.tiles.maxzoom


def _source_collections(doc: dict[str, Any], by_id: dict[str, Collection]) -> dict[str, list[Collection]]:
    found: dict[str, list[Collection]] = {}
    for layer in doc["layers"]:
        c = by_id.get(layer_collection(layer) or "")
        if c is not None and c not in found.setdefault(layer["source"], []):
            found[layer["source"]].append(c)
    return found


def apply_catalog(doc: dict[str, Any], by_id: dict[str, Collection]) -> None:
    """Set source zoom ranges and bounds, and layer minzooms, from the collections (in place)."""
    for sid, collections in _source_collections(doc, by_id).items():
        source = doc["sources"][sid]
        zooms = [_zooms(c) for c in collections]
        source["minzoom"] = min(z[0] for z in zooms)
        source["maxzoom"] = max(z[1] for z in zooms)
        bounds = union_bbox(collections)
        if bounds is not None:
            source["bounds"] = list(bounds)
    for layer in doc["layers"]:
        c = by_id.get(layer_collection(layer) or "")
        if c is not None:
            minzoom = max(layer.get("minzoom", 0), _zooms(c)[0])
            if minzoom > 0:
                layer["minzoom"] = minzoom


def initial_view(bbox: Bbox, viewport_px: int = _VIEWPORT_PX) -> tuple[list[float], float]:
    """Centre and a whole zoom level at which the box fits a viewport of the given width."""
    west, south, east, north = bbox
    center = [round((west + east) / 2, 6), round((south + north) / 2, 6)]
    lat = math.radians(center[1])
    span = max(east - west, (north - south) / max(math.cos(lat), 0.1), 1e-6)
    zoom = math.floor(math.log2(viewport_px * 360.0 / (512.0 * span)))
    return center, float(min(max(zoom, 0), 18))


def _rewrite(value: Any, base: str) -> Any:
    if isinstance(value, str) and value.startswith(PLACEHOLDER):
        return base + value[len(PLACEHOLDER):]
    if isinstance(value, list):
        return [_rewrite(v, base) for v in value]
    return value


def rewrite_urls(doc: dict[str, Any], base: str) -> None:
    """Point tile, TileJSON, sprite and glyph URLs at ``base`` (in place)."""
    base = base.rstrip("/")
    for source in doc["sources"].values():
        for key in ("tiles", "url", "data"):
            if key in source:
                source[key] = _rewrite(source[key], base)
    for key in ("sprite", "glyphs"):
        if key in doc:
            doc[key] = _rewrite(doc[key], base)


def render_style(template: StyleTemplate, base: str, visible: Iterable[Collection]) -> dict[str, Any] | None:
    """The served MapLibre document, or None when the caller may see none of its collections."""
    by_id = {c.id: c for c in visible if c.id in template.collections}
    if not by_id:
        return None
    doc = filter_layers(template.doc, by_id)
    apply_catalog(doc, by_id)
    bbox = union_bbox(by_id.values())
    if bbox is not None:
        doc["center"], doc["zoom"] = initial_view(bbox)
    rewrite_urls(doc, base)
    return doc
