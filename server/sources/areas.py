"""Areas of a site's overlap with the rows of a layer, in metres, in a CGCS2000 Gauss-Kruger zone.

Both backends compute the same thing: each row's geometry, desensitized as the caller's restriction
says (the geometry the caller could read), is projected with the site into the site's 3-degree GK zone
(EPSG:4534-4554, central meridians 75E-135E), intersected with it and measured there - never in
degrees. A site across a zone boundary (every 3 degrees, at 1.5E + 3k) is cut at the boundary and each
part measured in its own zone, as a surveyor would: an area is the sum of its parts' areas. PostGIS
does it in one statement per layer (``sql/overlaps.sql``); the embedded store with pyproj and shapely
(``overlap_areas``). Overlaps smaller than ``MIN_OVERLAP_M2`` (a shared edge, a floating-point sliver)
are not reported by either.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from server.policy.model import Restriction, RestrictionError

GK3_FIRST_EPSG = 4534  # CGCS2000 / 3-degree Gauss-Kruger CM 75E; +1 per 3 degrees up to 4554 (CM 135E)
GK3_MERIDIANS = range(75, 136, 3)
MIN_OVERLAP_M2 = 1e-3
SITE_SRID = 4490  # a site is given in CGCS2000 lon/lat


def gk_zone_epsg(lon: float) -> int:
    """The EPSG code of the CGCS2000 3-degree GK zone (without zone prefix) whose band holds ``lon``."""
    meridian = 3 * round(lon / 3)
    if meridian not in GK3_MERIDIANS:
        raise ValueError(f"longitude {lon} is outside the CGCS2000 Gauss-Kruger zones (73.5E-136.5E)")
    return GK3_FIRST_EPSG + (meridian - 75) // 3


def zone_parts(geometry: BaseGeometry) -> tuple[tuple[int, BaseGeometry], ...]:
    """The polygonal parts of ``geometry`` in each GK zone band it crosses, with the zone's EPSG code."""
    minx, miny, maxx, maxy = geometry.bounds
    first, last = gk_zone_epsg(minx), gk_zone_epsg(maxx)
    if first == last:
        return ((first, geometry),)
    parts = []
    for epsg in range(first, last + 1):
        meridian = 75 + 3 * (epsg - GK3_FIRST_EPSG)
        band = shapely.box(meridian - 1.5, miny - 1, meridian + 1.5, maxy + 1)
        polygons = [g for g in shapely.get_parts(shapely.intersection(geometry, band))
                    if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty]
        if polygons:
            parts.append((epsg, shapely.union_all(polygons)))
    return tuple(parts)


@dataclass(frozen=True)
class Site:
    """A polygonal site in the storage CRS (lon/lat, EPSG:4490), the GK zone of its centroid (``epsg``) and
    its parts per zone (one part unless it crosses a zone boundary), each measured in its own zone."""

    geometry: BaseGeometry
    epsg: int
    parts: tuple[tuple[int, BaseGeometry], ...]

    @classmethod
    def of(cls, geometry: BaseGeometry) -> Site:
        """The site cut along the zone boundaries it crosses."""
        return cls(geometry, gk_zone_epsg(geometry.centroid.x), zone_parts(geometry))

    @property
    def area_m2(self) -> float:
        """The site's area: each part measured in its own zone."""
        return float(sum(project(part, SITE_SRID, epsg).area for epsg, part in self.parts))

    @property
    def zones(self) -> list[int]:
        """The EPSG codes of the zones its parts are measured in."""
        return [epsg for epsg, _ in self.parts]

    @property
    def wkb(self) -> bytes:
        """The geometry as WKB, for a bound statement parameter."""
        return shapely.to_wkb(self.geometry)


class Overlap(NamedTuple):
    """One row overlapping a site: its id, the values of the fields asked for, and the overlap in m²
    (a named tuple: a 1 km² site in a town yields thousands, made cheaply)."""

    id: Any
    values: tuple[Any, ...]
    area_m2: float


@lru_cache(maxsize=64)
def _to_zone(srid: int, epsg: int) -> Transformer:
    return Transformer.from_crs(srid, epsg, always_xy=True)


def project(geoms: Any, srid: int, epsg: int) -> Any:
    """Geometries (lon/lat in ``srid``) projected to the GK zone ``epsg`` (x = easting)."""
    return transformed(geoms, _to_zone(srid, epsg))


def transformed(geoms: Any, transformer: Transformer) -> Any:
    """Geometries with every coordinate pair (x, y) put through ``transformer``."""
    def apply(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))

    return shapely.transform(geoms, apply)


def overlap_areas(geoms: np.ndarray, site: Site, srid: int) -> np.ndarray:
    """The area in m² of each geometry's intersection with ``site``, each part of the site measured in
    its own zone."""
    total = np.zeros(len(geoms))
    if not len(geoms):
        return total
    for epsg, part in site.parts:
        zone_part = project(part, SITE_SRID, epsg)
        total += shapely.area(shapely.intersection(project(geoms, srid, epsg), zone_part))
    return total


def readable_fields(fields: tuple[str, ...], restriction: Restriction) -> tuple[str, ...]:
    """``fields`` when the restriction shows every one of them unmasked; ``RestrictionError`` otherwise
    (grouping areas by a hidden or masked value would reveal it)."""
    hidden = [f for f in fields if f not in restriction.fields or f in restriction.masked]
    if hidden:
        raise RestrictionError(f"fields {hidden} of '{restriction.collection}' are not readable by this caller")
    return fields
