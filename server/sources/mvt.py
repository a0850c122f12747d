"""Mapbox Vector Tile encoding outside the database (the embedded store), with mapbox-vector-tile.

The steps mirror what PostGIS does with ``ST_AsMVTGeom``/``ST_AsMVT`` so that both backends give the
same tiles: order biggest-first and cap, move into tile space (y down), snap to the integer grid
(keeping geometries valid), clip to the buffered tile, drop what vanished or is smaller than half a
tile unit, then encode. Geometries arrive already in the tile matrix set's CRS, as shapely arrays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import mapbox_vector_tile
import numpy as np
import shapely

from server.catalog import VectorCollection
from server.sources.base import TileRequest

POINTS = ("Point", "MultiPoint")


@dataclass
class LayerData:
    """The candidate features of one layer, in the tile CRS: geometries, sizes, ids and properties."""

    geoms: np.ndarray
    sizes: np.ndarray
    ids: list
    props: list[dict]


def order_and_cap(data: LayerData, max_features: int) -> LayerData:
    """Biggest first (ties by id), at most ``max_features`` of them, as the SQL ``ORDER BY .. LIMIT``."""
    order = sorted(range(len(data.ids)), key=lambda i: (-data.sizes[i], data.ids[i]))[:max_features]
    return LayerData(
        data.geoms[order] if order else data.geoms[:0],
        data.sizes[order] if order else data.sizes[:0],
        [data.ids[i] for i in order],
        [data.props[i] for i in order],
    )


def generalize(data: LayerData, geometry_type: str, simplify: float, min_size: float) -> LayerData:
    """Drop features below ``min_size`` (area or length in CRS units) and simplify the rest."""
    keep = data.sizes >= min_size if min_size > 0 and geometry_type not in POINTS else None
    if keep is not None:
        idx = np.flatnonzero(keep)
        data = LayerData(data.geoms[idx], data.sizes[idx], [data.ids[i] for i in idx], [data.props[i] for i in idx])
    if simplify > 0 and geometry_type not in POINTS and len(data.ids):
        data.geoms = shapely.simplify(data.geoms, simplify, preserve_topology=True)
    return data


def to_tile_space(geoms: np.ndarray, bounds: tuple[float, ...], extent: int) -> np.ndarray:
    """Map CRS coordinates to tile units, origin top-left, y down."""
    minx, miny, maxx, maxy = bounds
    sx, sy = extent / (maxx - minx), extent / (maxy - miny)

    def affine(coords: np.ndarray) -> np.ndarray:
        out = np.empty_like(coords)
        out[:, 0] = (coords[:, 0] - minx) * sx
        out[:, 1] = (maxy - coords[:, 1]) * sy
        return out

    return shapely.transform(geoms, affine)


def clip_and_snap(geoms: np.ndarray, extent: int, buffer: int, geometry_type: str) -> np.ndarray:
    """Snap to whole tile units, clip to the buffered tile, snap the cut edges; vanished ones become None.

    Snapping before clipping follows PostGIS (grid first, then the clip in integer space), so both
    backends agree at the tile edges; sub-half-unit features and sub-unit² slivers are dropped.
    """
    lo, hi = -float(buffer), float(extent + buffer)
    out = np.array(geoms, dtype=object)
    if geometry_type not in POINTS:
        b = shapely.bounds(out)
        tiny = ((b[:, 2] - b[:, 0]) < 0.5) & ((b[:, 3] - b[:, 1]) < 0.5)
        out[tiny] = None
        out = shapely.clip_by_rect(shapely.set_precision(out, 1.0), lo, lo, hi, hi)
    else:
        inside = shapely.intersects(out, shapely.box(lo, lo, hi, hi))
        out[~inside] = None
    out = shapely.set_precision(out, 1.0)
    gone = shapely.is_missing(out) | shapely.is_empty(out)
    if geometry_type not in POINTS:
        dims = shapely.get_dimensions(out)
        gone |= dims != (2 if "Polygon" in geometry_type else 1)
    if "Polygon" in geometry_type:
        gone |= shapely.area(out) < 1.0  # slivers under one tile unit², as PostGIS drops them
    out[gone] = None
    return out


def property_value(value, kind: str):
    """A value as PostGIS's ``ST_AsMVT`` would encode it after the tile SQL's casts; None is omitted."""
    if value is None:
        return None
    if kind == "boolean":
        return bool(value)
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "datetime":
        return iso_utc(value)
    return str(value)


def iso_utc(value) -> str:
    """A datetime (or ISO text) as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def layer_features(collection: VectorCollection, data: LayerData, req: TileRequest) -> list[dict]:
    """The features of one layer ready for ``mapbox_vector_tile.encode`` (possibly none)."""
    if not data.ids:
        return []
    geometry_type = collection.source.geometry_type
    data = order_and_cap(data, req.max_features)
    geoms = clip_and_snap(to_tile_space(data.geoms, req.bounds, req.extent), req.extent, req.buffer, geometry_type)
    kinds = {f.name: f.type for f in collection.fields}
    features = []
    for geom, props in zip(geoms, data.props, strict=True):
        if geom is None:
            continue
        values = {k: property_value(v, kinds[k]) for k, v in props.items()}
        features.append({"geometry": geom, "properties": {k: v for k, v in values.items() if v is not None}})
    return features


def encode(layers: list[tuple[str, list[dict], int]]) -> bytes:
    """The MVT bytes of the non-empty (name, features, extent) layers, in order; b"" when all are empty."""
    named = [{"name": name, "features": feats} for name, feats, _ in layers if feats]
    if not named:
        return b""
    options = {name: {"extents": extent} for name, feats, extent in layers if feats}
    return mapbox_vector_tile.encode(
        named,
        per_layer_options=options,
        default_options={"y_coord_down": True, "check_winding_order": True},
    )
