"""Items as CSV (with WKT geometry, for spreadsheets) and FlatGeobuf (for GDAL, QGIS and bulk download).

Both are made from the page the source built under the caller's restriction (the same GeoJSON bytes:
masked fields masked, rows excluded, geometries desensitized, transformed and rounded), so every
format is under the same policy. A page holds at most ``ONEMAP_MAX_LIMIT`` features; a bulk download
follows the ``next`` link (a ``Link`` header in these formats).

CSV: UTF-8 with a byte order mark (spreadsheets then read Chinese text right), one header row of the
selected property names and ``wkt``, coordinates in the axis order of the response CRS as in GeoJSON.
FlatGeobuf: written without its optional spatial index, so features stay in the page's order and the
file is a plain header-then-features stream any reader can consume from the first byte; coordinates in
the conventional GIS order (easting/longitude first), the CRS in the file header.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import orjson
import shapely
from pyogrio.raw import write as ogr_write
from shapely.geometry import shape

from server.catalog import VectorCollection
from server.crs import CRS84, Crs

CSV = "text/csv; charset=utf-8"
FLATGEOBUF = "application/flatgeobuf"
_NUMPY_TYPES = {"integer": "int64", "number": "float64", "boolean": "bool", "date": "datetime64[D]"}


def _features(page_json: bytes) -> list[dict[str, Any]]:
    return orjson.loads(page_json)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def to_csv(page_json: bytes, properties: tuple[str, ...]) -> bytes:
    """A page of GeoJSON features as CSV: the properties, then the geometry as WKT."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*properties, "wkt"])
    for f in _features(page_json):
        wkt = shapely.to_wkt(shape(f["geometry"]), rounding_precision=-1) if f.get("geometry") else ""
        writer.writerow([*(_cell(f["properties"].get(p)) for p in properties), wkt])
    return "\ufeff".encode() + out.getvalue().encode()


def _column(values: list[Any], kind: str) -> np.ndarray:
    """One attribute column for GDAL: typed where its values allow, text otherwise; nulls kept."""
    numpy_type = _NUMPY_TYPES.get(kind)
    if numpy_type == "int64" and None in values:
        numpy_type = "float64"
    if numpy_type == "float64":
        return np.array([np.nan if v is None else v for v in values], dtype=numpy_type)
    if numpy_type is not None and (numpy_type == "datetime64[D]" or None not in values):
        return np.array(values, dtype=numpy_type)
    return np.array(values, dtype=object)


def to_flatgeobuf(page_json: bytes, collection: VectorCollection, properties: tuple[str, ...], crs: Crs) -> bytes:
    """A page of GeoJSON features (easting/longitude first) as a FlatGeobuf file in ``crs``."""
    features = _features(page_json)
    geoms = shapely.to_wkb([shape(f["geometry"]) for f in features], flavor="iso")
    columns = []
    for name in properties:
        spec = collection.field(name)
        columns.append(_column([f["properties"].get(name) for f in features], spec.type if spec else "string"))
    out = io.BytesIO()
    ogr_write(
        out, np.array(geoms, dtype=object), columns, list(properties), driver="FlatGeobuf", layer=collection.id,
        geometry_type=collection.source.geometry_type, crs="OGC:CRS84" if crs == CRS84 else f"EPSG:{crs.srid}",
        layer_options={"SPATIAL_INDEX": "NO"},
    )
    return out.getvalue()
