"""The inputs of ``site-compliance``: a polygonal GeoJSON geometry in a supported CRS, a planned use.

A geometry is checked as given, never silently repaired: an unclosed ring, too few points, an empty
geometry, a non-polygonal type or an invalid polygon (self-intersection, ...) is a 400 that says why.
It is then brought to the storage CRS (CGCS2000 lon/lat, EPSG:4490) and measured in its GK zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from server.codes.classes import PLANNING_USE_CLASSES
from server.errors import InvalidParameter
from server.sources.areas import SITE_SRID, Site, transformed

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_PREFIX = "http://www.opengis.net/def/crs/EPSG/0/"
# CRS84, CGCS2000 geographic and the CGCS2000 3-degree Gauss-Kruger zones (without zone prefix).
SUPPORTED_CRS = (CRS84, f"{EPSG_PREFIX}4326", f"{EPSG_PREFIX}4490",
                 *(f"{EPSG_PREFIX}{code}" for code in range(4534, 4555)))
KNOWN_INPUTS = {"geometry", "crs", "planned_use"}


@dataclass(frozen=True)
class SiteInputs:
    """Validated inputs: the site and the planned use (a first-level planning class code) if given."""

    site: Site
    area_m2: float
    vertices: int
    planned_use: str | None


@lru_cache(maxsize=32)
def _to_storage(crs_uri: str) -> tuple[Transformer, bool]:
    """The transformer from ``crs_uri`` to lon/lat, and whether the CRS's first axis is north (lat first)."""
    crs = CRS.from_user_input("OGC:CRS84" if crs_uri == CRS84 else f"EPSG:{crs_uri.rsplit('/', 1)[1]}")
    lat_first = crs.axis_info[0].direction.lower() == "north"
    return Transformer.from_crs(crs, SITE_SRID, always_xy=True), lat_first


def _rings(geometry: dict[str, Any]) -> list[list]:
    coords = geometry.get("coordinates")
    if not isinstance(coords, list):
        raise InvalidParameter("Input 'geometry' has no 'coordinates' array.")
    polygons = [coords] if geometry["type"] == "Polygon" else coords
    return [ring for polygon in polygons if isinstance(polygon, list) for ring in polygon]


def _check_rings(geometry: dict[str, Any]) -> None:
    rings = _rings(geometry)
    if not rings:
        raise InvalidParameter("Input 'geometry' is empty.")
    for i, ring in enumerate(rings):
        if not isinstance(ring, list) or len(ring) < 4:
            raise InvalidParameter(f"Input 'geometry': ring {i + 1} has fewer than 4 positions.")
        if ring[0] != ring[-1]:
            raise InvalidParameter(f"Input 'geometry': ring {i + 1} is not closed (its last position "
                                   f"must repeat the first).")


def parse_geometry(value: Any, crs_uri: str) -> BaseGeometry:
    """The GeoJSON Polygon or MultiPolygon ``value`` (or ``{"value": ...}``, or a Feature) in EPSG:4490 lon/lat."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidParameter("Input 'geometry' must be a GeoJSON Polygon or MultiPolygon.")
    _check_rings(value)
    try:
        geom = shape(value)
    except (ValueError, TypeError, AttributeError, IndexError):
        raise InvalidParameter("Input 'geometry' has malformed coordinates.") from None
    if geom.is_empty:
        raise InvalidParameter("Input 'geometry' is empty.")
    if not geom.is_valid:
        raise InvalidParameter(f"Input 'geometry' is not a valid polygon: {shapely.is_valid_reason(geom)}.")
    transformer, lat_first = _to_storage(crs_uri)
    if lat_first:
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
    return transformed(geom, transformer)


def parse_crs(value: Any) -> str:
    """A supported CRS URI (default CRS84); ``EPSG:nnnn`` is accepted for the EPSG URI."""
    if value is None:
        return CRS84
    if isinstance(value, str) and value.upper().startswith("EPSG:"):
        value = f"{EPSG_PREFIX}{value[5:]}"
    if value not in SUPPORTED_CRS:
        raise InvalidParameter(f"Input 'crs' must be one of CRS84, EPSG:4326, EPSG:4490 or a CGCS2000 GK zone "
                               f"EPSG:4534-4554, not {str(value)[:80]!r}.")
    return value


def parse_planned_use(value: Any) -> str | None:
    """A first-level planning land/sea use code (``07``), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in PLANNING_USE_CLASSES:
        raise InvalidParameter("Input 'planned_use' must be a first-level planning use code (01-24).")
    return value


def parse_inputs(inputs: Any) -> SiteInputs:
    """Validated inputs; unknown names are a 400 naming them."""
    if not isinstance(inputs, dict):
        raise InvalidParameter("The execute request needs an 'inputs' object.")
    unknown = sorted(set(inputs) - KNOWN_INPUTS)
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise InvalidParameter(f"Unknown input {names}; inputs: {', '.join(sorted(KNOWN_INPUTS))}.")
    if "geometry" not in inputs:
        raise InvalidParameter("Input 'geometry' is required.")
    geometry = parse_geometry(inputs["geometry"], parse_crs(inputs.get("crs")))
    try:
        site = Site.of(geometry)
    except ValueError as exc:
        raise InvalidParameter(f"Input 'geometry': {exc}.") from None
    area = site.area_m2
    vertices = int(shapely.get_num_coordinates(geometry))
    return SiteInputs(site, area, vertices, parse_planned_use(inputs.get("planned_use")))
