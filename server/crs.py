"""Coordinate reference systems of OGC API Features Part 2: which CRSs a collection offers, parsing
their URIs, axis order, and moving geometries between a request's CRS and the storage CRS.

Every vector collection offers CRS84 (the default, lon/lat), EPSG:4490 (CGCS2000) and EPSG:4326
(WGS 84), both lat/lon as their EPSG definitions say, EPSG:3857 (Web Mercator), its storage CRS,
and the CGCS2000 3-degree Gauss-Kruger zones (EPSG:4534-4554, central meridians 75E-135E, northing
first) whose band overlaps the collection's extent. CGCS2000 and WGS 84 are taken as one frame (they
differ by centimetres; PROJ and PostGIS transform between them as the identity), so a lon/lat store
answers all three geographic CRSs by at most swapping axes. Coordinates in a projected CRS are
rounded to millimetres (``Crs.digits``).

The functions here are shared by the item routes (``crs``, ``bbox-crs``) and any other parameter
given in a CRS (``filter-crs``): ``parse_crs`` turns a URI into a ``Crs``, ``offered`` checks it
against a collection, and ``to_storage`` brings a shapely geometry given in it to the storage CRS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from pyproj.exceptions import CRSError

from server.catalog import VectorCollection
from server.errors import InvalidParameter

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
GEOGRAPHIC = frozenset({4326, 4490})  # one frame here: CRS84, WGS 84 and CGCS2000 degrees
GK3_FIRST, GK3_FIRST_CM, GK3_COUNT = 4534, 75, 21  # CGCS2000 / 3-degree Gauss-Kruger CM 75E .. CM 135E
PROJECTED_DIGITS = 3  # millimetres
_EPSG = re.compile(r"(?:https?://www\.opengis\.net/def/crs/EPSG/[0-9.]+/|\[?EPSG:)([0-9]{1,6})\]?", re.I)
_CRS84 = re.compile(r"(?:https?://www\.opengis\.net/def/crs/OGC/(?:1\.3|0)/|\[?OGC:)CRS84\]?", re.I)


@dataclass(frozen=True)
class Crs:
    """A CRS a request may name: ``srid`` is its EPSG code (4326 for CRS84), ``lat_first`` whether its
    first axis is northing/latitude, ``projected`` whether its units are metres."""

    uri: str
    srid: int
    lat_first: bool = False
    projected: bool = False

    @property
    def header(self) -> str:
        """The ``Content-Crs`` header value."""
        return f"<{self.uri}>"

    @property
    def digits(self) -> int | None:
        """Decimal digits of output coordinates this CRS imposes (millimetres), or None (degrees: the
        restriction's precision decides)."""
        return PROJECTED_DIGITS if self.projected else None

    def same_frame(self, storage_srid: int) -> bool:
        """Whether coordinates stored in ``storage_srid`` need no transformation (an axis swap at most)."""
        return self.srid == storage_srid or (self.srid in GEOGRAPHIC and storage_srid in GEOGRAPHIC)


CRS84 = Crs(CRS84_URI, 4326)


@lru_cache(maxsize=64)
def epsg_crs(code: int) -> Crs:
    """The ``Crs`` of an EPSG code (axis order and units from its definition); ``InvalidParameter``
    when EPSG has no such code."""
    try:
        proj = ProjCRS.from_epsg(code)
    except CRSError:
        raise InvalidParameter(f"EPSG:{code} is not a known coordinate reference system.") from None
    first = proj.axis_info[0].direction.lower() if proj.axis_info else "east"
    return Crs(EPSG_URI.format(code), code, first in ("north", "south"), proj.is_projected)


def parse_crs(value: str, parameter: str = "crs") -> Crs:
    """A CRS URI (``http://www.opengis.net/def/crs/EPSG/0/4549``, ``.../OGC/1.3/CRS84``) or safe CURIE
    (``[EPSG:4549]``) as a ``Crs``; anything else is an ``InvalidParameter`` naming ``parameter``."""
    text = value.strip()
    if _CRS84.fullmatch(text):
        return CRS84
    match = _EPSG.fullmatch(text)
    if match is None:
        raise InvalidParameter(
            f"Parameter '{parameter}': '{value[:200]}' is not a CRS URI such as {EPSG_URI.format(4490)} or {CRS84_URI}."
        )
    return epsg_crs(int(match.group(1)))


def gk3_zones(bbox: tuple[float, float, float, float]) -> list[int]:
    """EPSG codes of the CGCS2000 3-degree Gauss-Kruger zones whose band overlaps a CRS84 bbox."""
    minx, _, maxx, _ = bbox
    return [GK3_FIRST + i for i in range(GK3_COUNT)
            if GK3_FIRST_CM + 3 * i - 1.5 < maxx and minx < GK3_FIRST_CM + 3 * i + 1.5]


def storage_crs(collection: VectorCollection) -> Crs:
    """The CRS the collection's geometries are stored in."""
    return epsg_crs(collection.source.srid)


def supported(collection: VectorCollection) -> list[Crs]:
    """The CRSs the collection can be served in, CRS84 first."""
    codes = [4490, 4326, 3857, collection.source.srid, *gk3_zones(collection.extent.spatial.bbox)]
    return [CRS84, *(epsg_crs(code) for code in dict.fromkeys(codes))]


def offered(collection: VectorCollection, value: str | None, parameter: str = "crs") -> Crs:
    """The CRS named by ``value`` (CRS84 when absent), which must be one the collection offers; a 400
    naming the supported ones otherwise."""
    if value is None:
        return CRS84
    crs = parse_crs(value, parameter)
    choices = supported(collection)
    if crs not in choices:
        raise InvalidParameter(
            f"Parameter '{parameter}': {crs.uri} is not supported by collection '{collection.id}'; "
            f"use one of {', '.join(c.uri for c in choices)}."
        )
    return crs


@lru_cache(maxsize=64)
def _transformer(source: int, target: int) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def _swap(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda xy: xy[:, ::-1])


def from_storage(geoms: np.ndarray, storage_srid: int, crs: Crs) -> np.ndarray:
    """Geometries stored in ``storage_srid`` (x = easting/longitude) in ``crs``'s axis order and units."""
    if not crs.same_frame(storage_srid):
        tr = _transformer(storage_srid, crs.srid)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    return _swap(geoms) if crs.lat_first else geoms


def to_storage(geom: shapely.Geometry, crs: Crs, storage_srid: int) -> shapely.Geometry:
    """A geometry given in ``crs`` (its axis order) in the storage CRS, x = easting/longitude.

    Straight edges of a geometry given in another frame are densified first (to 1/64 of its size) so
    that they stay close to straight lines after the transformation.
    """
    if crs.lat_first:
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
    if crs.same_frame(storage_srid):
        return geom
    minx, miny, maxx, maxy = shapely.bounds(geom).tolist()
    step = max(maxx - minx, maxy - miny) / 64
    if step > 0:
        geom = shapely.segmentize(geom, step)
    tr = _transformer(crs.srid, storage_srid)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def crs84_bounds(geom: shapely.Geometry, storage_srid: int) -> tuple[float, float, float, float]:
    """The CRS84 envelope of a geometry in the storage CRS."""
    if storage_srid not in GEOGRAPHIC:
        geom = to_storage(geom, Crs(EPSG_URI.format(storage_srid), storage_srid, projected=True), 4326)
    minx, miny, maxx, maxy = shapely.bounds(geom).tolist()
    return minx, miny, maxx, maxy
