"""Tiles metadata documents: tile matrix sets, tileset lists, OGC tileset metadata and TileJSON 3.0.

Tileset metadata follows OGC API - Tiles (the OGC Two Dimensional Tile Matrix Set and Tile Set
Metadata standard): ``tileMatrixSetLimits`` list every matrix where a layer is drawn, with the rows
and columns covering the collection's extent; ``layers`` describe the vector layers (one per
collection, named after it) with their properties schema. TileJSON 3.0.0 is offered for
WebMercatorQuad, the only grid TileJSON clients (MapLibre, Mapbox GL) can draw.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import morecantile

from server.catalog import VectorCollection
from server.extents import union_bbox
from server.tiling.matrix_sets import get_tms, tms_ids, tms_uri
from server.tiling.zooms import matrix_range
from server.web import JSON, link

MVT = "application/vnd.mapbox-vector-tile"
TILEJSON = "application/vnd.mapbox.tile+json"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
TEMPLATE = "{tileMatrix}/{tileRow}/{tileCol}"
JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
              "date": "string", "datetime": "string"}
TILEJSON_TYPES = {"string": "String", "integer": "Number", "number": "Number", "boolean": "Boolean",
                  "date": "String", "datetime": "String"}
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
WORLD = (-180.0, -90.0, 180.0, 90.0)  # the bounds of a tileset without collections


def _crs_uri(tms: morecantile.TileMatrixSet) -> str:
    return str(tms.crs.root) if hasattr(tms.crs, "root") else str(tms.crs)


def tms_summary(tms_id: str, base: str) -> dict[str, Any]:
    """One entry of the ``/tileMatrixSets`` list."""
    tms = get_tms(tms_id)
    entry: dict[str, Any] = {"id": tms.id, "title": tms.title or tms.id, "crs": _crs_uri(tms)}
    if tms.uri:
        entry["uri"] = tms.uri
    entry["links"] = [link(f"{base}/tileMatrixSets/{tms.id}", "self", JSON, f"The {tms.id} tile matrix set")]
    return entry


def tms_list(base: str) -> dict[str, Any]:
    """The ``/tileMatrixSets`` document."""
    return {
        "links": [link(f"{base}/tileMatrixSets", "self", JSON, "Tile matrix sets")],
        "tileMatrixSets": [tms_summary(i, base) for i in tms_ids()],
    }


@lru_cache(maxsize=16)
def tms_document(tms_id: str) -> dict[str, Any]:
    """The full tile matrix set: OGC TMS 2.0 JSON (the model morecantile validates) plus the TMS 1.0 names
    of the same values (``type``, ``identifier``, ``supportedCRS``, ``boundingBox``, each matrix's
    ``identifier`` and ``topLeftCorner``), which GDAL before 3.7 reads and newer readers ignore."""
    tms = get_tms(tms_id)
    doc = tms.model_dump(mode="json", exclude_none=True, by_alias=True)
    crs = _crs_uri(tms)
    left, bottom, right, top = tms.xy_bbox
    lat_first = str(doc.get("orderedAxes", [""])[0]).lower() in ("lat", "latitude", "y", "n", "northing")
    lower, upper = ([bottom, left], [top, right]) if lat_first else ([left, bottom], [right, top])
    doc |= {"type": "TileMatrixSetType", "identifier": tms.id, "supportedCRS": crs,
            "boundingBox": {"type": "BoundingBoxType", "crs": crs, "lowerCorner": lower, "upperCorner": upper}}
    for matrix in doc["tileMatrices"]:
        matrix |= {"identifier": matrix["id"], "topLeftCorner": matrix["pointOfOrigin"]}
    return doc


def _limits(collection: VectorCollection, tms_id: str) -> tuple[dict[str, Any], ...]:
    tms = get_tms(tms_id)
    span = matrix_range(collection, tms)
    if span is None:
        return ()
    west, south, east, north = collection.extent.spatial.bbox
    out = []
    for z in range(span[0], span[1] + 1):
        top_left = tms.tile(west, north, z, truncate=True)
        bottom_right = tms.tile(east, south, z, truncate=True)
        out.append(
            {
                "tileMatrix": tms.matrix(z).id,
                "minTileRow": top_left.y,
                "maxTileRow": bottom_right.y,
                "minTileCol": top_left.x,
                "maxTileCol": bottom_right.x,
            }
        )
    return tuple(out)


def tile_matrix_limits(collections: list[VectorCollection], tms_id: str) -> list[dict[str, Any]]:
    """The union of the collections' limits, per matrix, in matrix order."""
    merged: dict[str, dict[str, Any]] = {}
    for c in collections:
        for lim in _limits(c, tms_id):
            cur = merged.get(lim["tileMatrix"])
            if cur is None:
                merged[lim["tileMatrix"]] = dict(lim)
                continue
            for key, pick in (("minTileRow", min), ("maxTileRow", max), ("minTileCol", min), ("maxTileCol", max)):
                cur[key] = pick(cur[key], lim[key])
    return sorted(merged.values(), key=lambda d: int(d["tileMatrix"]))


def tile_fields(c: VectorCollection) -> list:
    """The catalog fields a collection's tiles carry (``tiles.properties``, all when unset; the id always)."""
    wanted = c.tiles.properties
    return [f for f in c.fields if wanted is None or f.name in wanted or f.name == c.source.id_field]


def _geometry_dimension(c: VectorCollection) -> int:
    kind = c.source.geometry_type
    return 2 if "Polygon" in kind else 1 if "Line" in kind else 0


def vector_layer(c: VectorCollection, tms_id: str, lang: str = "zh") -> dict[str, Any]:
    """The OGC description of the collection's layer in a tileset."""
    title = c.title.en if lang == "en" else c.title.zh
    layer: dict[str, Any] = {
        "id": c.id,
        "title": title,
        "dataType": "vector",
        "geometryDimension": _geometry_dimension(c),
        "featureType": c.id,
        "propertiesSchema": {
            "type": "object",
            "properties": {
                f.name: {"type": JSON_TYPES[f.type], "title": f.title.en if lang == "en" else f.title.zh}
                | ({"format": f.type} if f.type in ("date", "datetime") else {})
                for f in tile_fields(c)
            },
        },
        "boundingBox": _bbox(c.extent.spatial.bbox),
    }
    span = matrix_range(c, get_tms(tms_id))
    if span:
        layer["minTileMatrix"], layer["maxTileMatrix"] = str(span[0]), str(span[1])
    return layer


def _bbox(b) -> dict[str, Any]:
    return {"lowerLeft": [b[0], b[1]], "upperRight": [b[2], b[3]], "crs": CRS84}


def tileset(
    collections: list[VectorCollection], tms_id: str, url: str, base: str, title: str, lang: str = "zh"
) -> dict[str, Any]:
    """OGC tileset metadata for these vector collections in one grid (``url`` = the tileset's URL)."""
    tms = get_tms(tms_id)
    doc: dict[str, Any] = {
        "title": title,
        "dataType": "vector",
        "crs": _crs_uri(tms),
        "links": [
            link(url, "self", JSON, "This tileset metadata"),
            link(f"{base}/tileMatrixSets/{tms.id}", REL + "tiling-scheme", JSON, f"The {tms.id} tile matrix set"),
            link(f"{url}/{TEMPLATE}", "item", MVT, "Vector tiles (MVT)", templated=True),
        ],
        "tileMatrixSetLimits": tile_matrix_limits(collections, tms_id),
        "layers": [vector_layer(c, tms_id, lang) for c in collections],
        "boundingBox": _bbox(union_bbox(collections) or WORLD),
        "tileMatrixSetURI": tms_uri(tms, base),
    }
    if tms.id == "WebMercatorQuad":
        doc["links"].append(link(f"{url}?f=tilejson", "alternate", TILEJSON, "This tileset as TileJSON 3.0"))
    return doc


def tileset_entry(url: str, base: str, tms_id: str, data_type: str, title: str) -> dict[str, Any]:
    """One entry of a tilesets list."""
    tms = get_tms(tms_id)
    entry: dict[str, Any] = {"title": title, "dataType": data_type, "crs": _crs_uri(tms),
                             "tileMatrixSetURI": tms_uri(tms, base)}
    entry["links"] = [
        link(url, "self", JSON, f"{title} ({tms.id})"),
        link(f"{base}/tileMatrixSets/{tms.id}", REL + "tiling-scheme", JSON, f"The {tms.id} tile matrix set"),
    ]
    return entry


def tilesets_list(prefix: str, base: str, data_type: str, title: str) -> dict[str, Any]:
    """The list of tilesets under ``prefix`` (one per offered grid)."""
    return {
        "links": [link(prefix, "self", JSON, "Tilesets")],
        "tilesets": [tileset_entry(f"{prefix}/{i}", base, i, data_type, title) for i in tms_ids()],
    }


def tilejson(
    collections: list[VectorCollection], url: str, name: str, description: str, lang: str = "zh"
) -> dict[str, Any]:
    """TileJSON 3.0.0 for a WebMercatorQuad tileset (``url`` = the tileset's URL)."""
    wmq = get_tms("WebMercatorQuad")
    spans = [s for s in (matrix_range(c, wmq) for c in collections) if s]
    minzoom = min((s[0] for s in spans), default=0)
    maxzoom = max((s[1] for s in spans), default=0)
    bounds = union_bbox(collections) or WORLD
    return {
        "tilejson": "3.0.0",
        "name": name,
        "description": description,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [f"{url}/{{z}}/{{y}}/{{x}}"],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": list(bounds),
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, max(minzoom, min(maxzoom, 12))],
        "vector_layers": [
            {
                "id": c.id,
                "description": c.title.en if lang == "en" else c.title.zh,
                "minzoom": s[0],
                "maxzoom": s[1],
                "fields": {f.name: TILEJSON_TYPES[f.type] for f in tile_fields(c)},
            }
            for c in collections
            if (s := matrix_range(c, wmq))
        ],
    }
