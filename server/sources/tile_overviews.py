"""What both backends share to build vector tiles: the pre-generalized copies and the query boxes.

Generalization is done once, at load time, not per request. For every WebMercatorQuad level ``z``
from a collection's ``tiles.minzoom`` up to ``min(tiles.maxzoom, TOP_ZOOM)`` the loader writes an
*overview*: a copy of the collection in EPSG:3857 whose geometries are simplified with
``simplify_px`` pixels of level ``z`` (GEOS topology-preserving simplifier, the same code in PostGIS
and shapely) and from which features smaller than ``min_area_px`` pixels² (lines: shorter than
sqrt(min_area_px) pixels) are dropped. Each overview is built from the next finer one, so the chain
costs one pass over the source table. A ``size`` column (area or length in EPSG:3857 units) orders
features biggest-first for the per-tile cap.

A tile at an equivalent level ``z`` reads overview ``z``: a bounding-box lookup on a small,
index-friendly table with no per-row reprojection (WebMercatorQuad) or one cheap inverse Mercator
(geographic grids). Above ``TOP_ZOOM``, or when no overview exists, tiles read the source table with
an ``&&`` on the tile envelope transformed into the table's SRID, and generalize on the fly.

Both backends build their overviews with this module's ``overview_chain`` (shapely/GEOS), so the
pre-generalized geometries are identical whatever the database's own GEOS version; the backends
differ only in the final clip-and-quantize step, by a tile unit or so.

Overviews are rebuilt by the load step (``build_overviews`` in the backend modules) whenever the data
or a collection's ``tiles`` settings change, and by ``onemap overviews`` (``server.stores.prepare``).

Staleness. Each build records, per collection, the data version it read (``OVERVIEW_VERSIONS``:
PostGIS ``onemap_tiles.onemap_overview_versions``, GeoPackage a table of that name in the file).
A collection whose current version (``onemap_versions``) differs has been edited since: its tiles
read the source table and generalize on the fly, as without overviews, until the next rebuild.
PostGIS checks this inside the tile statement (no extra round trip, same snapshot as the data);
the embedded store in the query that lists the overviews. A store without either table (built
before versions were recorded, or without data versioning) uses its overviews as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer

from server.catalog import VectorCollection
from server.extents import as_bbox

TOP_ZOOM = 14
MERCATOR_SRID = 3857
WMQ_PX0 = 2 * math.pi * 6378137 / 256  # metres per pixel at WebMercatorQuad level 0
MAX_LAT = 85.0511287798066
POLYGONS = ("Polygon", "MultiPolygon")
LINES = ("LineString", "MultiLineString")

PG_SCHEMA = "onemap_tiles"  # PostGIS: overviews live in their own schema
GPKG_PREFIX = "onemap_tiles_"  # GeoPackage: unregistered tables (invisible to GeoPackage readers)
GEOGRAPHIC = (4326, 4490)  # longitude/latitude CRSs treated alike for tile geometry
DATA_VERSIONS = "onemap_versions"  # per collection: the current data version (trigger-maintained)
OVERVIEW_VERSIONS = "onemap_overview_versions"  # per collection: the data version its overviews were built from


def overview_zooms(collection: VectorCollection) -> range:
    """The levels that get an overview, finest last."""
    spec = collection.tiles
    return range(spec.minzoom, min(spec.maxzoom, TOP_ZOOM) + 1)


def overview_name(collection: VectorCollection, zoom: int) -> str:
    """Table name of one overview (PostGIS: inside ``PG_SCHEMA``; GeoPackage: add ``GPKG_PREFIX``)."""
    return f"{collection.source.table}_z{zoom}"


def pixel_size(zoom: int) -> float:
    """EPSG:3857 units per 256-px-tile pixel at a WebMercatorQuad level."""
    return WMQ_PX0 / 2**zoom


def overview_tolerance(collection: VectorCollection, zoom: int) -> float:
    """Simplification tolerance of overview ``zoom``, in EPSG:3857 units."""
    return collection.tiles.simplify_px * pixel_size(zoom)


def min_size(geometry_type: str, min_area: float) -> float:
    """The smallest ``size`` kept, given a minimum area: area for polygons, length for lines, 0 for points."""
    if geometry_type in POLYGONS:
        return min_area
    if geometry_type in LINES:
        return math.sqrt(min_area)
    return 0.0


def overview_min_size(collection: VectorCollection, zoom: int) -> float:
    """The smallest feature ``size`` kept in overview ``zoom``, in EPSG:3857 units (or units²)."""
    min_area = collection.tiles.min_area_px * pixel_size(zoom) ** 2
    return min_size(collection.source.geometry_type, min_area)


def usable_overview(
    collection: VectorCollection, zoom: int, available: frozenset[str], fresh: frozenset[str] | None = None
) -> str | None:
    """The overview to read for a tile at equivalent level ``zoom``, or None to read the table.

    ``fresh``: the collections whose overviews match their current data version (None: not known,
    the overviews are used as they are); a collection not in it reads its table.
    """
    if zoom > TOP_ZOOM or zoom not in overview_zooms(collection):
        return None
    if fresh is not None and collection.id not in fresh:
        return None
    name = overview_name(collection, zoom)
    return name if name in available else None


def runtime_tolerance(tolerance: float, zoom: int, available: frozenset[str]) -> float:
    """The simplification to apply when reading the source table (no overview for this level).

    Above ``TOP_ZOOM`` none: half a pixel is a metre or two there and the tile grid's snap is the only
    generalization needed (this also keeps both backends identical, whatever their GEOS versions).
    Without any overview at all (data loaded without the overview step), the requested tolerance.
    """
    return 0.0 if zoom > TOP_ZOOM and available else tolerance


@lru_cache(maxsize=64)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def buffered(bounds: tuple[float, float, float, float], extent: int, buffer: int) -> tuple[float, ...]:
    """The tile bounds grown by ``buffer`` tile units on each side."""
    minx, miny, maxx, maxy = bounds
    dx, dy = (maxx - minx) * buffer / extent, (maxy - miny) * buffer / extent
    return minx - dx, miny - dy, maxx + dx, maxy + dy


def box_in(bounds: tuple[float, ...], src: int, dst: int) -> tuple[float, float, float, float]:
    """A box given in ``src`` as a covering box in ``dst`` (latitudes clamped for Mercator)."""
    minx, miny, maxx, maxy = bounds
    if src in GEOGRAPHIC and dst in GEOGRAPHIC or src == dst:
        return minx, miny, maxx, maxy
    if src in GEOGRAPHIC and dst == MERCATOR_SRID:
        miny, maxy = max(miny, -MAX_LAT), min(maxy, MAX_LAT)
        minx, maxx = max(minx, -180.0), min(maxx, 180.0)
    if src == MERCATOR_SRID:
        limit = math.pi * 6378137
        minx, miny, maxx, maxy = (max(minx, -limit), max(miny, -limit), min(maxx, limit), min(maxy, limit))
    return as_bbox(_transformer(src, dst).transform_bounds(minx, miny, maxx, maxy, densify_pts=21))


def transform_coords(src: int, dst: int):
    """A function mapping an (n, 2) coordinate array from ``src`` to ``dst`` (for shapely.transform)."""
    if src == dst or (src in GEOGRAPHIC and dst in GEOGRAPHIC):
        return None
    transformer = _transformer(src, dst)

    def apply(coords):
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        coords = coords.copy()
        coords[:, 0], coords[:, 1] = x, y
        return coords

    return apply


def sizes_of(geoms: np.ndarray, geometry_type: str) -> np.ndarray:
    """The ``size`` used for dropping and ordering: area for polygons, length for lines, 0 for points."""
    if geometry_type in POLYGONS:
        return shapely.area(geoms)
    if geometry_type in LINES:
        return shapely.length(geoms)
    return np.zeros(len(geoms))


def to_mercator(geoms: np.ndarray, srid: int) -> np.ndarray:
    """Source geometries reprojected to EPSG:3857 (the overviews' CRS)."""
    fn = transform_coords(srid, MERCATOR_SRID)
    return geoms if fn is None or not len(geoms) else shapely.transform(geoms, fn)


def overview_chain(
    collection: VectorCollection, geoms: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Generalize one batch of EPSG:3857 geometries down the overview levels, finest first.

    Yields ``(zoom, rows, geometries, sizes)`` where ``rows`` indexes the kept features in the batch.
    Each level simplifies the previous level's result (GEOS topology-preserving simplifier).
    """
    kind = collection.source.geometry_type
    rows = np.arange(len(geoms))
    for zoom in reversed(overview_zooms(collection)):
        geoms = shapely.simplify(geoms, overview_tolerance(collection, zoom), preserve_topology=True)
        sizes = sizes_of(geoms, kind)
        keep = (sizes >= overview_min_size(collection, zoom)) & ~shapely.is_empty(geoms) & ~shapely.is_missing(geoms)
        geoms, sizes, rows = geoms[keep], sizes[keep], rows[keep]
        snapped = snap_to_tile_grid(geoms, zoom, collection.tiles.extent)
        ok = ~shapely.is_empty(snapped)
        yield zoom, rows[ok], snapped[ok], sizes[ok]


def grid_size(zoom: int, extent: int) -> float:
    """One tile unit at a WebMercatorQuad level, in EPSG:3857 metres (the grid aligns with tile edges)."""
    return pixel_size(zoom) * 256 / extent


def snap_to_tile_grid(geoms: np.ndarray, zoom: int, extent: int) -> np.ndarray:
    """Geometries snapped to the level's tile-unit grid, valid, polygons' exterior rings counter-clockwise.

    Stored this way an overview feature lying inside a WebMercatorQuad tile of its level needs only
    an affine transform to become MVT geometry (y flips, so exteriors end clockwise as MVT wants);
    ``ST_AsMVTGeom`` (or the embedded clip) then only runs for features crossing the tile's edge.
    """
    snapped = shapely.set_precision(geoms, grid_size(zoom, extent))
    return shapely.orient_polygons(snapped, exterior_cw=False)
