"""The embedded default store: a GeoPackage read with sqlite3, its R-tree index and shapely.

Reads run in worker threads, each with its own read-only connection. Candidates come from the
R-tree by envelope; shapely then keeps only the geometries that really intersect the bbox.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import numpy as np
import orjson
import shapely

from server.catalog import Catalog, VectorCollection
from server.crs import CRS84, Crs, from_storage
from server.errors import Unavailable
from server.filters import row_predicate
from server.policy.desensitize import desensitize_geometries, mask_rows, output_digits, reduce_geometries
from server.policy.model import Restriction, checked
from server.policy.pgsql import sqlite_exclusion
from server.sources.areas import Overlap, Site, readable_fields
from server.sources.base import (
    AreaLayer,
    Extent,
    ItemQuery,
    Layers,
    Page,
    TileRequest,
    TimeInterval,
    integer_id,
    restricted_layers,
)
from server.sources.gpkg_areas import gpkg_overlaps
from server.sources.gpkg_geometry import decode_gpkg_geometry
from server.sources.gpkg_versions import data_version
from server.sources.keyset import sqlite_after, sqlite_order, typed_values


def output_geometries(wkbs: list[bytes], restriction: Restriction, srid: int, crs: Crs) -> np.ndarray:
    """Stored geometries desensitized in the storage CRS ``srid``, then in ``crs`` and rounded for output
    (millimetres in a projected CRS, else 7 decimals or the restriction's precision)."""
    geoms = shapely.from_wkb(wkbs)
    if crs.same_frame(srid) and not crs.lat_first:
        return reduce_geometries(geoms, restriction, srid)
    geoms = from_storage(desensitize_geometries(geoms, restriction, srid), srid, crs)
    digits = crs.digits if crs.digits is not None else output_digits(restriction)
    return shapely.set_coordinates(geoms, np.round(shapely.get_coordinates(geoms), digits))


def features_json(ids: list, wkbs: list[bytes], props: list[dict], restriction: Restriction, srid: int,
                  crs: Crs = CRS84) -> bytes:
    """The JSON array of GeoJSON features in ``crs``, coordinates rounded as ``output_geometries`` says."""
    if not ids:
        return b"[]"
    mask_rows(props, restriction.masked)
    texts = shapely.to_geojson(output_geometries(wkbs, restriction, srid, crs))
    return orjson.dumps(
        [
            {"type": "Feature", "id": i, "geometry": orjson.Fragment(g), "properties": p}
            for i, g, p in zip(ids, texts, props, strict=True)
        ]
    )


def _interval_where(interval: TimeInterval, temporal: str, where: list[str], params: list) -> None:
    """Add the conditions keeping rows whose date ``temporal`` is in ``interval`` (calendar dates, inclusive)."""
    if interval.start:
        where.append(f'"{temporal}" >= ?')
        params.append(interval.start.date().isoformat())
    if interval.end:
        where.append(f'"{temporal}" <= ?')
        params.append(interval.end.date().isoformat())


class GeoPackageSource:
    """Source over a GeoPackage file written by ``onemap sample`` or ``onemap import``."""

    def __init__(self, path: Path, catalog: Catalog) -> None:
        self.path = Path(path)
        self.catalog = catalog
        self._local = threading.local()
        # CPU-bound work (decoding, MVT encoding) gains nothing from more threads than cores, and a
        # burst of cache misses must not queue dozens of GIL-bound threads in front of every request.
        self._limiter = anyio.CapacityLimiter(os.cpu_count() or 2)

    async def _run(self, fn, *args):
        """Run blocking store work in a worker thread, at most one per core at a time."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        if not self.path.exists():
            raise FileNotFoundError(f"embedded store {self.path} not found; run 'onemap sample' first")

    async def close(self) -> None:
        """Thread-local connections close with their threads."""

    def _conn(self) -> sqlite3.Connection:
        """The thread's read-only connection, reopened when the file was replaced (``onemap sample``,
        ``import`` and ``overviews`` write aside and rename): never a read from a deleted file."""
        conn = getattr(self._local, "conn", None)
        held: int | None = getattr(self._local, "inode", None)
        try:
            inode: int | None = os.stat(self.path).st_ino
        except OSError:
            inode = held
        if conn is not None and inode != held:
            conn.close()
            conn = None
        if conn is None:
            try:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            except sqlite3.Error:
                raise Unavailable("The data store is not available.") from None
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA cache_size = -65536")
            conn.execute("PRAGMA mmap_size = 1073741824")
            self._local.conn, self._local.inode = conn, inode
        return conn

    # -- reads -------------------------------------------------------------------------------------

    async def query(self, collection: VectorCollection, q: ItemQuery, *, restriction: Restriction) -> Page:
        """One page of features matching ``q``, ascending by id (see ``server.sources.base``)."""
        return await self._run(self._query, collection, q, checked(restriction, collection))

    async def get(
        self, collection: VectorCollection, feature_id: str, properties: tuple[str, ...], *, restriction: Restriction,
        crs: Crs = CRS84,
    ) -> bytes | None:
        """One feature as GeoJSON bytes in ``crs``, or ``None`` when there is no such feature (or it is excluded)."""
        return await self._run(self._get, collection, feature_id, properties, checked(restriction, collection), crs)

    async def extent(self, collection: VectorCollection, *, restriction: Restriction) -> Extent:
        """Bounding box and time span of the rows the restriction keeps."""
        return await self._run(self._extent, collection, checked(restriction, collection))

    async def overlaps(self, collection: VectorCollection, site: Site, fields: tuple[str, ...], *,
                       restriction: Restriction) -> list[Overlap]:
        """Rows overlapping ``site`` with their overlap in m², measured in a worker thread (``gpkg_areas``)."""
        restriction = checked(restriction, collection)
        fields = readable_fields(fields, restriction)
        return await self._run(lambda: gpkg_overlaps(self._conn(), collection, site, fields, restriction))

    async def overlaps_many(self, layers: list[AreaLayer], site: Site) -> list[list[Overlap]]:
        """``overlaps`` of several layers over one site, measured in one worker thread."""
        checked_layers = [(c, readable_fields(fields, checked(r, c)), checked(r, c)) for c, fields, r in layers]
        return await self._run(lambda: [gpkg_overlaps(self._conn(), c, site, fields, r)
                                        for c, fields, r in checked_layers])

    async def version(self, collection: VectorCollection) -> str:
        """The collection's data version (``onemap_versions``, see ``gpkg_versions``).

        A store without versioning falls back to the file's modification stamp, which any write moves.
        """
        return await self._run(self._version, collection)

    async def check(self) -> list[str]:
        return await self._run(self._check)

    # -- SQL ---------------------------------------------------------------------------------------

    @staticmethod
    def _columns(collection: VectorCollection, properties: Sequence[str]) -> str:
        src = collection.source
        return ", ".join(f'"{c}"' for c in (src.id_field, src.geometry_field, *properties))

    @staticmethod
    def _filters(collection: VectorCollection, q: ItemQuery, restriction: Restriction) -> tuple[list[str], list]:
        """WHERE terms and parameters of a query: bbox candidates, time, keyset position, excluded rows."""
        src = collection.source
        temporal = restriction.temporal_field(collection)
        where: list[str] = []
        params: list[object] = []
        if q.bbox:
            where.append(
                f'fid IN (SELECT id FROM "rtree_{src.table}_{src.geometry_field}" '
                "WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?)"
            )
            params += [q.bbox[0], q.bbox[2], q.bbox[1], q.bbox[3]]
        if q.interval and temporal:
            _interval_where(q.interval, temporal, where, params)
        if (boundary := q.boundary(collection)) is not None:
            keys, values = boundary
            typed_values(collection, keys, values)  # a foreign cursor is a 400; SQLite compares the raw values
            after, after_params = sqlite_after(keys, values)
            where.append(after)
            params += after_params
        kept, kept_params = sqlite_exclusion(restriction)
        if kept:
            where.append(kept)
            params += kept_params
        return where, params

    def _query(self, collection: VectorCollection, q: ItemQuery, restriction: Restriction) -> Page:
        src = collection.source
        props = restriction.select(collection, q.properties)
        where, params = self._filters(collection, q, restriction)
        sort_fields = tuple(k.field for k in q.sortby)
        read = (*props, *sort_fields, *self._filter_columns(collection, q, props))
        sql = f'SELECT {self._columns(collection, read)} FROM "{src.table}"'
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {sqlite_order(q.order(collection))}"
        rows = self._matching(self._conn().execute(sql, params), q, read)
        rows = [r[: 2 + len(props) + len(sort_fields)] for r in rows]  # the filter's own columns go
        forward = q.cursor is None or q.cursor.forward
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        if not forward:
            rows.reverse()
        n = 2 + len(props)
        ids = [r[0] for r in rows]
        page = Page(
            features=features_json(ids, [r[1] for r in rows], [dict(zip(props, r[2:n], strict=True)) for r in rows],
                                   restriction, src.srid, q.crs),
            number_returned=len(rows),
        )
        if ids:
            page.next_key = ids[-1] if (more if forward else True) else None
            page.prev_key = ids[0] if (q.cursor is not None if forward else more) else None
            page.next_values, page.prev_values = tuple(rows[-1][n:]), tuple(rows[0][n:])
        if q.cursor is None and not more:
            page.number_matched = len(rows)
        return page

    @staticmethod
    def _filter_columns(collection: VectorCollection, q: ItemQuery, props: tuple[str, ...]) -> tuple[str, ...]:
        """The fields a filter reads that are not selected anyway (read after the selected ones)."""
        wanted = q.filter.fields if q.filter is not None else frozenset()
        return tuple(f for f in collection.field_names if f in wanted and f not in props)

    @staticmethod
    def _matching(cursor: sqlite3.Cursor, q: ItemQuery, names: tuple[str, ...]) -> list[tuple]:
        """Up to limit+1 rows whose geometry really intersects the bbox and that match the filter;
        geometry as WKB. ``names`` are the property columns after the id and geometry."""
        wanted = q.limit + 1
        box = shapely.from_wkb(q.bbox_area) if q.bbox_area else shapely.box(*q.bbox) if q.bbox else None
        if box is not None:
            shapely.prepare(box)
        matches = row_predicate(q.filter.expr) if q.filter is not None else None
        out: list[tuple] = []
        while len(out) < wanted:
            batch = cursor.fetchmany(max(256, wanted))
            if not batch:
                break
            wkbs = [decode_gpkg_geometry(r[1]) for r in batch]
            geoms = shapely.from_wkb(wkbs) if box is not None or matches is not None else [None] * len(batch)
            keep = shapely.intersects(box, geoms) if box is not None else [True] * len(batch)
            if matches is not None:
                rows = (dict(zip(names, r[2:], strict=True)) for r in batch)
                keep = [k and matches(row, g) for row, g, k in zip(rows, geoms, keep, strict=True)]
            out.extend((r[0], w, *r[2:]) for r, w, k in zip(batch, wkbs, keep, strict=True) if k)
        return out[:wanted]

    def _get(self, collection: VectorCollection, feature_id: str, properties: tuple[str, ...],
             restriction: Restriction, crs: Crs) -> bytes | None:
        src = collection.source
        key: str | int = feature_id
        id_field = collection.field(src.id_field)
        if id_field is not None and id_field.type == "integer":
            number = integer_id(feature_id, "The feature id")
            if number is None:
                return None
            key = number
        props = restriction.select(collection, properties)
        kept, kept_params = sqlite_exclusion(restriction)
        sql = f'SELECT {self._columns(collection, props)} FROM "{src.table}" WHERE "{src.id_field}" = ?'
        row = self._conn().execute(sql + (f" AND {kept}" if kept else ""), (key, *kept_params)).fetchone()
        if row is None:
            return None
        body = features_json([row[0]], [decode_gpkg_geometry(row[1])], [dict(zip(props, row[2:], strict=True))],
                             restriction, src.srid, crs)
        return body[1:-1]

    def _version(self, collection: VectorCollection) -> str:
        version = data_version(self._conn(), collection.id)
        if version is not None:
            return str(version)
        stat = os.stat(self.path)
        return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"

    def _extent(self, collection: VectorCollection, restriction: Restriction) -> Extent:
        src = collection.source
        conn = self._conn()
        kept, params = sqlite_exclusion(restriction, "t")
        boxes = f'"rtree_{src.table}_{src.geometry_field}"'
        if kept:  # only the rows the caller may see: join the index to the table
            boxes += f' AS r JOIN "{src.table}" AS t ON t.fid = r.id WHERE {kept}'
        row = conn.execute(f"SELECT min(minx), min(miny), max(maxx), max(maxy) FROM {boxes}", params).fetchone()
        bbox = tuple(row) if row and row[0] is not None else None
        interval = None
        if temporal := restriction.temporal_field(collection):
            where = f" WHERE {kept}" if kept else ""
            span = f'SELECT min(t."{temporal}"), max(t."{temporal}") FROM "{src.table}" AS t{where}'
            interval = tuple(conn.execute(span, params).fetchone())
        return Extent(bbox=bbox, interval=interval)

    def _check(self) -> list[str]:
        problems = []
        conn = self._conn()
        for c in self.catalog.of_kind(VectorCollection):
            cols = {r[1] for r in conn.execute(f'PRAGMA table_info("{c.source.table}")')}
            if not cols:
                problems.append(f"collection '{c.id}': table '{c.source.table}' is missing")
                continue
            missing = [f for f in (*c.field_names, c.source.geometry_field) if f not in cols]
            if missing:
                problems.append(f"collection '{c.id}': columns missing: {', '.join(missing)}")
        return problems

    # -- vector tiles ------------------------------------------------------------------------------

    async def tile(self, collection: VectorCollection, req: TileRequest, *, restriction: Restriction) -> bytes:
        """One MVT layer, encoded in a worker thread (see ``geopackage_tiles``)."""
        return await self.tiles([(collection, req)], restrictions={collection.id: checked(restriction, collection)})

    async def tiles(self, layers: Layers, *, restrictions: Mapping[str, Restriction]) -> bytes:
        """Several MVT layers in one tile; b"" when nothing falls in it."""
        from server.sources.geopackage_tiles import render_tile

        read = restricted_layers(layers, restrictions)
        return await self._run(lambda: render_tile(self._conn(), read))
