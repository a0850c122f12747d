"""Vector tiles from the embedded GeoPackage store, and its overview builder.

Reads are plain sqlite3 on a (read-only) connection: candidates by the R-tree on the buffered tile
envelope, geometries decoded with shapely and desensitized as the caller's restriction says (in the
storage CRS, as items are; overview geometries are taken back there for it), then ``sources/mvt.py``
orders, caps, clips, quantizes and encodes exactly as the PostGIS statement does. A layer reads the
collection's overview for the tile's level when there is one (``sources/tile_overviews.py``),
otherwise the feature table.

Overviews are ordinary SQLite tables named ``onemap_tiles_<table>_z<level>`` (plain WKB in EPSG:3857,
a ``_size`` column and the catalog fields) with an R-tree ``..._rtree``; they are not registered in
``gpkg_contents``, so GeoPackage readers ignore them. ``onemap_overview_versions`` records the data
version each collection's overviews were built from; the query listing the overviews also returns the
collections whose recorded version is the current one, and the others read their table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np
import shapely

from server.catalog import Catalog, VectorCollection
from server.policy.desensitize import desensitize_geometries, mask_rows
from server.policy.model import Restriction
from server.policy.pgsql import sqlite_exclusion
from server.sources import mvt
from server.sources.base import ReadLayer, TileRequest
from server.sources.gpkg_versions import data_version
from server.sources.tile_overviews import (
    DATA_VERSIONS,
    GPKG_PREFIX,
    MERCATOR_SRID,
    OVERVIEW_VERSIONS,
    box_in,
    buffered,
    min_size,
    overview_chain,
    overview_name,
    overview_zooms,
    runtime_tolerance,
    sizes_of,
    to_mercator,
    transform_coords,
    usable_overview,
)

BATCH = 20_000


def _q(name: str) -> str:
    """A quoted SQLite identifier (names come from the catalog, which allows [a-z0-9_] only)."""
    return '"' + name.replace('"', '""') + '"'


_LIST_OVERVIEWS = (
    "SELECT name, NULL FROM sqlite_master WHERE type = 'table' AND name LIKE ? "
    "AND name NOT LIKE '%\\_rtree%' ESCAPE '\\'"
)
_FRESH = (
    f" UNION ALL SELECT NULL, b.collection FROM {OVERVIEW_VERSIONS} AS b "
    f"JOIN {DATA_VERSIONS} AS v ON v.collection = b.collection WHERE b.version = v.version"
)


def overview_state(conn: sqlite3.Connection) -> tuple[frozenset[str], frozenset[str] | None]:
    """Overview names present (without the ``onemap_tiles_`` prefix), and the collections whose
    overviews were built from their current data version (None when the store records no versions).

    One query; a store without the version tables falls back to listing the overviews alone.
    """
    try:
        rows = conn.execute(_LIST_OVERVIEWS + _FRESH, (GPKG_PREFIX + "%",)).fetchall()
        fresh: frozenset[str] | None = frozenset(r[1] for r in rows if r[0] is None)
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        rows, fresh = conn.execute(_LIST_OVERVIEWS, (GPKG_PREFIX + "%",)).fetchall(), None
    return frozenset(r[0][len(GPKG_PREFIX):] for r in rows if r[0] is not None), fresh


def _rtree_box(box: tuple[float, ...]) -> tuple[float, float, float, float]:
    """(minx, maxx, miny, maxy) for an R-tree lookup, widened to float32 like PostGIS's ``&&`` keys.

    Both indexes hold float32 boxes rounded outwards; PostGIS also rounds the query box outwards,
    so doing the same here makes both backends see the same candidates (which matters at the cap).
    """
    lo = np.array([box[0], box[1]], dtype=np.float32)
    hi = np.array([box[2], box[3]], dtype=np.float32)
    lo = np.where(lo > np.array(box[:2]), np.nextafter(lo, np.float32(-np.inf)), lo)
    hi = np.where(hi < np.array(box[2:]), np.nextafter(hi, np.float32(np.inf)), hi)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def _reproject(geoms: np.ndarray, src: int, dst: int) -> np.ndarray:
    fn = transform_coords(src, dst)
    return geoms if fn is None or not len(geoms) else shapely.transform(geoms, fn)


def _rows_to_data(rows: list[tuple], geoms: np.ndarray, sizes: np.ndarray, fields: Sequence[str]) -> mvt.LayerData:
    return mvt.LayerData(geoms, sizes, [r[2] for r in rows], [dict(zip(fields, r[3:], strict=True)) for r in rows])


def read_overview(conn: sqlite3.Connection, c: VectorCollection, req: TileRequest, name: str,
                  restriction: Restriction) -> mvt.LayerData:
    """Candidates from an overview table, in EPSG:3857 (generalized for the level, and desensitized)."""
    box = _rtree_box(box_in(buffered(req.bounds, req.extent, req.buffer), req.srid, MERCATOR_SRID))
    table = GPKG_PREFIX + name
    cols = ", ".join(_q(f) for f in (c.source.id_field, *req.properties))
    kept, kept_params = sqlite_exclusion(restriction, "o")  # rows this caller may not see
    rows = conn.execute(
        f"SELECT o._geom, o._size, {cols} FROM {_q(table)} AS o WHERE o.rowid IN "
        f"(SELECT id FROM {_q(table + '_rtree')} WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?)"
        + (f" AND {kept}" if kept else ""),
        (*box, *kept_params),
    ).fetchall()
    geoms = shapely.from_wkb([r[0] for r in rows]) if rows else np.empty(0, dtype=object)
    if restriction.reduces_geometry:  # overviews hold the full data: desensitize in the storage CRS
        stored = desensitize_geometries(_reproject(geoms, MERCATOR_SRID, c.source.srid), restriction, c.source.srid)
        geoms = _reproject(stored, c.source.srid, MERCATOR_SRID)
    sizes = np.array([r[1] for r in rows], dtype=float)
    return _rows_to_data(rows, geoms, sizes, req.properties)


def read_table(conn: sqlite3.Connection, c: VectorCollection, req: TileRequest, tolerance: float,
               restriction: Restriction) -> mvt.LayerData:
    """Candidates from the feature table, desensitized (as items are), reprojected to the tile CRS
    and generalized on the fly."""
    from server.sources.gpkg_geometry import decode_gpkg_geometry

    src = c.source
    box = _rtree_box(box_in(buffered(req.bounds, req.extent, req.buffer), req.srid, src.srid))
    cols = ", ".join(_q(f) for f in (src.id_field, *req.properties))
    rtree = f"rtree_{src.table}_{src.geometry_field}"
    kept, kept_params = sqlite_exclusion(restriction)  # rows this caller may not see
    rows = conn.execute(
        f"SELECT {_q(src.geometry_field)}, NULL, {cols} FROM {_q(src.table)} WHERE fid IN "
        f"(SELECT id FROM {_q(rtree)} WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?)"
        + (f" AND {kept}" if kept else ""),
        (*box, *kept_params),
    ).fetchall()
    rows = [r for r in rows if r[0] is not None]
    geoms = shapely.from_wkb([decode_gpkg_geometry(r[0]) for r in rows]) if rows else np.empty(0, dtype=object)
    geoms = _reproject(desensitize_geometries(geoms, restriction, src.srid), src.srid, req.srid)
    data = _rows_to_data(rows, geoms, sizes_of(geoms, src.geometry_type), req.properties)
    return mvt.generalize(data, src.geometry_type, tolerance, min_size(src.geometry_type, req.min_area))


def render_tile(conn: sqlite3.Connection, layers: Sequence[ReadLayer]) -> bytes:
    """The MVT bytes for these layers, each with its caller's restriction (blocking: run it in a
    worker thread); b"" when empty."""
    available, fresh = overview_state(conn) if layers else (frozenset(), None)
    encoded = []
    for c, req, restriction in layers:
        overview = usable_overview(c, req.zoom, available, fresh)
        if overview is not None:
            data = read_overview(conn, c, req, overview, restriction)
            data.geoms = _reproject(data.geoms, MERCATOR_SRID, req.srid)
        else:
            data = read_table(conn, c, req, runtime_tolerance(req.simplify, req.zoom, available), restriction)
        mask_rows(data.props, restriction.masked)
        encoded.append((c.id, mvt.layer_features(c, data, req), req.extent))
    return mvt.encode(encoded)


# -- building overviews ------------------------------------------------------------------------------


def build_overviews(conn: sqlite3.Connection, catalog: Catalog) -> list[str]:
    """(Re)build every vector collection's overviews in the GeoPackage; returns their names.

    ``conn`` must be writable. Rows are streamed in batches; each batch goes down the whole chain of
    levels (finest first, each simplified from the one before) so memory stays bounded. It all runs
    in one write transaction, so readers see the old overviews until the new ones are complete, and
    the data version recorded for each collection is exactly the one its overviews were built from.
    """
    if not conn.in_transaction:
        conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {OVERVIEW_VERSIONS} (collection TEXT PRIMARY KEY, version INTEGER)")
    built: list[str] = []
    for c in catalog.of_kind(VectorCollection):
        _drop_overviews(conn, c)
        zooms = list(reversed(overview_zooms(c)))
        if not zooms:
            continue
        fields = c.field_names
        for zoom in zooms:
            table = GPKG_PREFIX + overview_name(c, zoom)
            conn.execute(f"CREATE TABLE {_q(table)} (_geom BLOB, _size REAL, {', '.join(_q(f) for f in fields)})")
            conn.execute(f"CREATE VIRTUAL TABLE {_q(table + '_rtree')} USING rtree(id, minx, maxx, miny, maxy)")
            built.append(table)
        _fill_overviews(conn, c)
        conn.execute(
            f"INSERT OR REPLACE INTO {OVERVIEW_VERSIONS} (collection, version) VALUES (?, ?)",
            (c.id, data_version(conn, c.id)),
        )
    conn.commit()
    return built


def _fill_overviews(conn: sqlite3.Connection, c: VectorCollection) -> None:
    from server.sources.gpkg_geometry import decode_gpkg_geometry

    src, fields = c.source, c.field_names
    cols = ", ".join(_q(f) for f in fields)
    cursor = conn.cursor()
    cursor.execute(f"SELECT {_q(src.geometry_field)}, {cols} FROM {_q(src.table)} ORDER BY fid")
    while batch := cursor.fetchmany(BATCH):
        batch = [r for r in batch if r[0] is not None]
        geoms = to_mercator(shapely.from_wkb([decode_gpkg_geometry(r[0]) for r in batch]), src.srid)
        for zoom, rows, level_geoms, sizes in overview_chain(c, geoms):
            values = [batch[i][1:] for i in rows]
            _insert(conn, GPKG_PREFIX + overview_name(c, zoom), level_geoms, sizes, values, fields)


def _insert(conn: sqlite3.Connection, table: str, geoms, sizes, values, fields: Sequence[str]) -> None:
    """Append rows and their R-tree entries (same rowid)."""
    if not len(geoms):
        return
    start = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {_q(table)}").fetchone()[0] + 1
    ids = range(start, start + len(geoms))
    columns = ", ".join(["rowid", "_geom", "_size", *(_q(f) for f in fields)])
    marks = ", ".join("?" * (len(fields) + 3))
    conn.executemany(
        f"INSERT INTO {_q(table)} ({columns}) VALUES ({marks})",
        [(i, w, float(s), *v) for i, w, s, v in zip(ids, shapely.to_wkb(geoms), sizes, values, strict=True)],
    )
    b = shapely.bounds(geoms)
    conn.executemany(
        f"INSERT INTO {_q(table + '_rtree')} VALUES (?, ?, ?, ?, ?)",
        [(i, float(r[0]), float(r[2]), float(r[1]), float(r[3])) for i, r in zip(ids, b, strict=True)],
    )


def _drop_overviews(conn: sqlite3.Connection, c: VectorCollection) -> None:
    prefix = GPKG_PREFIX + f"{c.source.table}_z"
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?", (prefix + "%",))
    for (name,) in rows.fetchall():
        if name[len(prefix):].removesuffix("_rtree").isdigit():
            conn.execute(f"DROP TABLE IF EXISTS {_q(name)}")
