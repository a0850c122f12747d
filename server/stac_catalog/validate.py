"""STAC validation that needs no network.

The core schemas (Catalog, Collection, Item, STAC 1.1.0) are validated with pystac's JSON-schema
validator against the copies pystac ships. Extension schemas are published only online, so each
extension used here (projection, raster, eo, web-map-links) is checked structurally instead: its
fields have the types and values its specification requires. Any other extension is reported.
"""

from __future__ import annotations

from typing import Any

import pystac
from pystac.validation import JsonSchemaSTACValidator

from server.stac_catalog.build import WEB_MAP_LINKS

PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
_DATA_TYPES = {t.value for t in pystac.extensions.raster.DataType}
_COMMON_NAMES = {"pan", "coastal", "blue", "green", "green05", "yellow", "red", "rededge", "rededge071",
                 "rededge075", "rededge078", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir",
                 "lwir11", "lwir12"}


def _numbers(value: Any, lengths: tuple[int, ...]) -> bool:
    return isinstance(value, list) and len(value) in lengths and all(isinstance(v, (int, float)) for v in value)


def _check_projection(fields: dict[str, Any]) -> list[str]:
    errors = []
    if not any(k in fields for k in ("proj:code", "proj:wkt2", "proj:projjson")):
        errors.append("projection: one of proj:code, proj:wkt2, proj:projjson is required")
    code = fields.get("proj:code")
    if code is not None and not (isinstance(code, str) and ":" in code):
        errors.append("projection: proj:code must be 'AUTHORITY:CODE'")
    if "proj:shape" in fields and not (
        _numbers(fields["proj:shape"], (2,)) and all(isinstance(v, int) for v in fields["proj:shape"])
    ):
        errors.append("projection: proj:shape must be two integers")
    if "proj:transform" in fields and not _numbers(fields["proj:transform"], (6, 9)):
        errors.append("projection: proj:transform must be 6 or 9 numbers")
    if "proj:bbox" in fields and not _numbers(fields["proj:bbox"], (4, 6)):
        errors.append("projection: proj:bbox must be 4 or 6 numbers")
    return errors


def _check_bands(assets: dict[str, Any]) -> list[str]:
    errors = []
    for key, asset in assets.items():
        for band in asset.get("raster:bands", []):
            if band.get("data_type") not in _DATA_TYPES | {None}:
                errors.append(f"raster: asset '{key}' has an unknown data_type")
            stats = band.get("statistics", {})
            if not all(isinstance(v, (int, float)) for v in stats.values()):
                errors.append(f"raster: asset '{key}' statistics must be numbers")
        errors.extend(f"eo: asset '{key}' has an unknown common_name"
                      for band in asset.get("eo:bands", []) if band.get("common_name") not in _COMMON_NAMES | {None})
    return errors


def _check_links(links: list[dict[str, Any]]) -> list[str]:
    return [f"web-map-links: link '{ln['href']}' needs {{z}}, {{x}} and {{y}}" for ln in links
            if ln.get("rel") == "xyz" and not all(p in ln["href"] for p in ("{z}", "{x}", "{y}"))]


def check_extensions(d: dict[str, Any]) -> list[str]:
    """Problems with the extension fields of one STAC object (as a dict); empty when fine."""
    errors = []
    fields = d.get("properties", d)
    assets = d.get("assets", {})
    for uri in d.get("stac_extensions", []):
        if uri == PROJECTION:
            errors += _check_projection(fields)
        elif uri in (RASTER, EO):
            errors += _check_bands(assets)
        elif uri == WEB_MAP_LINKS:
            errors += _check_links(d.get("links", []))
        else:
            errors.append(f"extension {uri} is not checked offline")
    return errors


def validate_dict(d: dict[str, Any]) -> list[str]:
    """Validate one STAC object given as JSON: core schema (pystac, local copies) and extensions."""
    kind = pystac.serialization.identify_stac_object_type(d)
    if kind is None:
        return ["core: not a STAC Catalog, Collection or Item"]
    try:
        JsonSchemaSTACValidator().validate_core(d, kind, d["stac_version"])
    except pystac.STACValidationError as exc:
        best = exc.source[0].message if exc.source else str(exc)
        return [f"{d.get('id')}: {best}"]
    return [f"{d.get('id')}: {e}" for e in check_extensions(d)]


def validate_tree(root: pystac.Catalog) -> list[str]:
    """Validate the root and every collection and item under it (hrefs must be set); all problems."""
    errors = validate_dict(root.to_dict())
    for child in root.get_children():
        errors += validate_dict(child.to_dict())
        for item in child.get_items():
            errors += validate_dict(item.to_dict())
    return errors
