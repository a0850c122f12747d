"""Parsing and validation of the OGC API Features query parameters (``datetime`` and ``limit``, which
other capabilities share, are parsed by ``server.params``).

Each parser takes the raw string a client sent and either returns a typed value or raises
``InvalidParameter`` with a description naming the parameter and what is wrong with it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import shapely

from server.catalog import VectorCollection
from server.crs import CRS84, Crs, crs84_bounds, to_storage
from server.errors import InvalidParameter
from server.policy.model import Restriction
from server.queryables import field_for, unknown_field
from server.sources.keyset import SortKey

MAX_SORT_KEYS = 8


def parse_bbox(raw: str | None, crs: Crs = CRS84) -> tuple[float, float, float, float] | None:
    """A bbox in ``crs`` (``bbox-crs``; CRS84 ``minx,miny,maxx,maxy`` by default), four numbers in that
    CRS's axis order (a 6-number 3D bbox keeps its horizontal part). In degrees, a west edge east of the
    east edge is a box crossing the antimeridian (OGC API Features 7.15.3); ``bbox_filter`` splits it."""
    if raw is None:
        return None
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameter(
            f"Parameter 'bbox' needs 4 (or 6) comma-separated numbers, got {len(parts)}."
        )
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameter("Parameter 'bbox' must contain only numbers.") from None
    if not all(math.isfinite(v) for v in values):
        raise InvalidParameter("Parameter 'bbox' must contain only finite numbers.")
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if crs.lat_first:
        values = [values[1], values[0], values[3], values[2]]
    minx, miny, maxx, maxy = values
    if not crs.projected:
        _check_degrees(minx, miny, maxx, maxy)
    if minx > maxx and crs.projected:
        raise InvalidParameter("Parameter 'bbox': the minimum easting/longitude is greater than the maximum.")
    if miny > maxy:
        raise InvalidParameter("Parameter 'bbox': the minimum northing/latitude is greater than the maximum.")
    return minx, miny, maxx, maxy


def _check_degrees(minx: float, miny: float, maxx: float, maxy: float) -> None:
    for name, v, lim in (("minx", minx, 180), ("maxx", maxx, 180), ("miny", miny, 90), ("maxy", maxy, 90)):
        if not -lim <= v <= lim:
            raise InvalidParameter(f"Parameter 'bbox': {name} {v} is outside -{lim}..{lim} (degrees).")


def bbox_filter(bbox: tuple[float, float, float, float] | None, crs: Crs,
                collection: VectorCollection) -> tuple[tuple[float, float, float, float] | None, bytes | None]:
    """A parsed bbox (easting/longitude first) as the items query takes it: its CRS84 envelope and, when
    it was given in a projected CRS or crosses the antimeridian, the exact area as WKB in the storage CRS."""
    if bbox is not None and not crs.projected and bbox[0] > bbox[2]:  # east of minx to 180, -180 to maxx
        west, south, east, north = bbox
        halves = shapely.MultiPolygon([shapely.box(west, south, 180, north), shapely.box(-180, south, east, north)])
        area = to_storage(halves, replace(crs, lat_first=False), collection.source.srid)
        return (-180.0, south, 180.0, north), shapely.to_wkb(area)
    if bbox is None or not crs.projected:
        return bbox, None
    area = to_storage(shapely.box(*bbox), replace(crs, lat_first=False), collection.source.srid)
    return crs84_bounds(area, collection.source.srid), shapely.to_wkb(area)


def parse_properties(raw: str | None, collection: VectorCollection, visible: tuple[str, ...]) -> tuple[str, ...]:
    """The selected property names in catalog order; every name must be a visible field (anything else
    is the one unknown-field error)."""
    if raw is None:
        return visible
    names = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [n for n in names if n not in visible]
    if unknown:
        raise unknown_field(collection, unknown[0], "properties")
    wanted = set(names)
    return tuple(n for n in visible if n in wanted)


def parse_sortby(raw: str | None, collection: VectorCollection, restriction: Restriction) -> tuple[SortKey, ...]:
    """``sortby``: comma-separated ``+field`` (or ``field``, ascending) and ``-field`` (descending), each
    a sortable field of the caller at most once (at most ``MAX_SORT_KEYS``)."""
    if raw is None:
        return ()
    keys: list[SortKey] = []
    for token in raw.split(","):
        name = token.strip()  # a '+' sent unencoded arrives as a space
        descending = name.startswith("-")
        name = name[1:].strip() if name[:1] in ("+", "-") else name
        if not name:
            raise InvalidParameter("Parameter 'sortby': empty sort key; use +field or -field, comma-separated.")
        field_for(collection, restriction, name, "sortby")
        if any(k.field == name for k in keys):
            raise InvalidParameter(f"Parameter 'sortby': property {name!r} is given more than once.")
        keys.append(SortKey(name, descending))
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidParameter(f"Parameter 'sortby': at most {MAX_SORT_KEYS} sort keys.")
    return tuple(keys)
