"""The small map of a profile page: the parcel's outline as an SVG path, drawn in its GK zone."""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import shape

from server.sources.areas import SITE_SRID, gk_zone_epsg, project

SIZE = 240.0


def outline(geometry: dict[str, Any]) -> dict[str, Any]:
    """``{"path": <SVG path data>, "size": px, "width_m", "height_m"}`` for a GeoJSON (Multi)Polygon."""
    geom = shape(geometry)
    gk = project(geom, SITE_SRID, gk_zone_epsg(geom.centroid.x))
    minx, miny, maxx, maxy = gk.bounds
    span = max(maxx - minx, maxy - miny) or 1.0
    scale = (SIZE - 20) / span
    parts = []
    for ring in shapely.get_rings(shapely.get_parts(gk)):
        xy = shapely.get_coordinates(ring)
        points = " L".join(f"{10 + (x - minx) * scale:.1f},{SIZE - 10 - (y - miny) * scale:.1f}" for x, y in xy)
        parts.append(f"M{points} Z")
    return {"path": " ".join(parts), "size": int(SIZE), "width_m": round(maxx - minx, 1),
            "height_m": round(maxy - miny, 1)}
