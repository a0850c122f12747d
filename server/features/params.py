"""Parsing and validation of the OGC API Features query parameters (``datetime`` and ``limit``, which
other capabilities share, are parsed by ``server.params``).

Each parser takes the raw string a client sent and either returns a typed value or raises
``InvalidParameter`` with a description naming the parameter and what is wrong with it.
"""

from __future__ import annotations

import math

from server.catalog import Collection
from server.errors import InvalidParameter


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """A CRS84 bbox ``minx,miny,maxx,maxy`` (a 6-number 3D bbox keeps its horizontal part)."""
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
    minx, miny, maxx, maxy = values
    for name, v, lim in (("minx", minx, 180), ("maxx", maxx, 180), ("miny", miny, 90), ("maxy", maxy, 90)):
        if not -lim <= v <= lim:
            raise InvalidParameter(f"Parameter 'bbox': {name} {v} is outside -{lim}..{lim} (CRS84 degrees).")
    if minx > maxx:
        raise InvalidParameter("Parameter 'bbox': minx is greater than maxx.")
    if miny > maxy:
        raise InvalidParameter("Parameter 'bbox': miny is greater than maxy.")
    return minx, miny, maxx, maxy


def parse_properties(raw: str | None, collection: Collection, visible: tuple[str, ...]) -> tuple[str, ...]:
    """The selected property names in catalog order; every name must be a visible field."""
    if raw is None:
        return visible
    names = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [n for n in names if n not in visible]
    if unknown:
        raise InvalidParameter(
            f"Parameter 'properties': unknown property {', '.join(repr(n) for n in unknown)} "
            f"in collection '{collection.id}'."
        )
    wanted = set(names)
    return tuple(n for n in visible if n in wanted)
