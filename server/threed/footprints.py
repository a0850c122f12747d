"""The footprints a caller may see, read through the source, with their heights and terrain bases.

Rows and fields come from ``Source.query`` under the caller's ``Restriction`` (excluded rows are never
read, masked fields are masked, geometries are generalized as the edition says). A footprint's base is
the lowest DEM height under its vertices (sampled by ``server.elevation`` no finer than the caller may
read the DEM), so no corner floats above the terrain; its top is the base plus its height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from server.catalog import ExtrudeSpec, VectorCollection
from server.elevation import dem_dataset, heights_at
from server.policy.model import Restriction
from server.sources.base import Cursor, ItemQuery

PAGE = 5000


@dataclass
class Footprint:
    """One feature to extrude: id, polygons, metadata values, base and height (m).

    A polygon is its rings (lon/lat arrays, first point not repeated): the exterior first and
    counter-clockwise, holes clockwise."""

    id: str
    polygons: list[list[np.ndarray]]
    properties: dict[str, Any]
    height: float
    base: float = 0.0

    @property
    def anchor(self) -> tuple[float, float]:
        """The point that files the footprint in one tile: the centre of its bounding box."""
        west, south, east, north = self.bounds
        return (west + east) / 2, (south + north) / 2

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """West, south, east, north of all its polygons."""
        outer = np.concatenate([p[0] for p in self.polygons])
        (west, south), (east, north) = outer.min(axis=0), outer.max(axis=0)
        return float(west), float(south), float(east), float(north)


def metadata_fields(collection: VectorCollection, restriction: Restriction) -> tuple[str, ...]:
    """The fields carried as metadata: the configured ones the caller may see, id field first."""
    spec = _spec(collection)
    wanted = set(spec.properties or collection.field_names) | {collection.source.id_field}
    shown = restriction.select(collection, wanted)
    idf = collection.source.id_field
    return (idf, *[n for n in shown if n != idf]) if idf in shown else shown


def _spec(collection: VectorCollection) -> ExtrudeSpec:
    assert collection.extrude is not None  # routes serve only collections that declare it
    return collection.extrude


def height_of(spec: ExtrudeSpec, props: dict[str, Any]) -> float:
    """The height (m): the height field, else floors x floor height, else the default (fields hidden)."""
    value = props.get(spec.height_field)
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return float(value)
    floors = props.get(spec.floors_field) if spec.floors_field else None
    if isinstance(floors, int) and floors > 0:
        return floors * spec.floor_height_m
    return spec.default_height_m


def _ring(coords: list, ccw: bool) -> np.ndarray | None:
    closed = np.asarray(coords, dtype=np.float64)[:, :2]
    if len(closed) and (closed[0] != closed[-1]).any():
        closed = np.vstack([closed, closed[:1]])
    if len(closed) < 4:
        return None
    x, y = closed[:, 0], closed[:, 1]
    area = float(x[:-1] @ y[1:] - x[1:] @ y[:-1])
    if area == 0:
        return None
    ring = closed[:-1]
    return ring if (area > 0) == ccw else ring[::-1].copy()


def _polygons(geometry: dict) -> list[list[np.ndarray]]:
    """The polygons of a GeoJSON (Multi)Polygon as oriented open rings; degenerate ones dropped."""
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    parts = coords if kind == "MultiPolygon" else [coords] if kind == "Polygon" else []
    out = []
    for rings in parts:
        outer = _ring(rings[0], True) if rings else None
        if outer is not None:
            holes = [h for h in (_ring(r, False) for r in rings[1:]) if h is not None]
            out.append([outer, *holes])
    return out


async def read_footprints(source, collection: VectorCollection, restriction: Restriction,
                          bbox: tuple[float, float, float, float] | None) -> list[Footprint]:
    """Every footprint the caller may see (intersecting ``bbox`` when given), page by page."""
    spec = _spec(collection)
    fields = metadata_fields(collection, restriction)
    extra = tuple(n for n in (spec.height_field, spec.floors_field) if n)
    props = restriction.select(collection, set(fields) | set(extra))
    out: list[Footprint] = []
    cursor: Cursor | None = None
    while True:
        q = ItemQuery(properties=props, limit=PAGE, bbox=bbox, cursor=cursor)
        page = await source.query(collection, q, restriction=restriction)
        for f in orjson.loads(page.features):
            polygons = _polygons(f["geometry"]) if f.get("geometry") else []
            if polygons:
                values = {n: f["properties"].get(n) for n in fields if n != collection.source.id_field}
                out.append(Footprint(str(f["id"]), polygons, {collection.source.id_field: str(f["id"]), **values},
                                     height_of(spec, f["properties"])))
        if page.next_key is None:
            return out
        cursor = Cursor(page.next_key)


def set_bases(footprints: list[Footprint], dem_path: Path | None, cap_m: float | None) -> None:
    """Put each footprint's base at the lowest DEM height under its vertices (0 without a DEM)."""
    if dem_path is None or not footprints:
        return
    src = dem_dataset(dem_path, cap_m)
    if src is None:
        return
    with src:
        coords = [np.concatenate([r for p in f.polygons for r in p]) for f in footprints]
        sizes = np.array([len(c) for c in coords])
        allc = np.concatenate(coords)
        heights = heights_at(src, allc[:, 0], allc[:, 1])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for f, low in zip(footprints, np.minimum.reduceat(heights, starts), strict=True):
        f.base = float(low)
