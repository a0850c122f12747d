"""The PostGIS source: psycopg 3 async pool, one SQL statement per response.

The database builds the GeoJSON (text concatenated around ``ST_AsGeoJSON`` and ``json_build_object`` of
the properties, ``string_agg`` for a page) and the paging keys in one statement; Python receives the
JSON text and passes it on as bytes (``json`` values load as the raw wire text, unparsed). Identifiers
come only from the catalog through ``psycopg.sql.Identifier``; every client value is a bound parameter.
SQL text longer than a line lives in ``sql/*.sql`` and is composed with ``psycopg.sql``; composed
statements are cached per query shape, and psycopg prepares the ones that repeat.

Failures a client may retry (statement timeout, lost or unreachable database, exhausted pool) become
``Unavailable`` (503 + Retry-After). A connection found dead (the server restarted or terminated
it) is dropped by the pool and the read is retried on another connection, so the source heals
without a restart.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from cachetools import LRUCache
from psycopg import sql
from psycopg.adapt import Buffer, Loader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from server.catalog import Catalog, VectorCollection
from server.crs import CRS84, Crs
from server.errors import InvalidParameter, Unavailable
from server.filters import OUT_OF_RANGE, PgCondition, once, pg_filter
from server.pgconn import read_conninfo
from server.policy.desensitize import output_digits
from server.policy.model import Restriction, checked
from server.policy.pgsql import pg_exclusion, pg_geometry, pg_property
from server.settings import Settings
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
from server.sources.keyset import order_keys, pg_after, pg_order, typed_values
from server.sources.postgis_areas import AreaStatements, many_from_rows, overlaps_from_rows
from server.sources.postgis_page import bbox_condition, inner_box, page_of, page_rows
from server.sources.postgis_schema import VERSION_QUERY, load_sql, problems, template
from server.sources.postgis_tiles import TileStatements

log = logging.getLogger("onemap.sources.postgis")

LONLAT_SRIDS = frozenset({4326, 4490})  # stored as lon/lat degrees: CRS84 coordinates apply directly
ACQUIRE_TIMEOUT_S = 5.0
INTEGER_ID = re.compile(r"-?[1-9][0-9]{0,18}|0")


class JsonBytesLoader(Loader):
    """Load ``json`` values as the raw UTF-8 bytes the server sent: no parse, no re-encode."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


class PostGISSource:
    """Vector collections stored in PostGIS tables (see ``server.sources.base`` for the contract)."""

    def __init__(self, settings: Settings, catalog: Catalog, acquire_timeout: float = ACQUIRE_TIMEOUT_S) -> None:
        self._catalog = catalog
        self._timeout_ms = settings.statement_timeout_ms
        self._attempts = settings.pool_max_size + 1
        # statements by shape, as text: composing psycopg's objects into bytes costs more than the read
        self._statements: LRUCache[tuple, str] = LRUCache(maxsize=1024)
        self._extents: dict[tuple[str, Restriction], tuple[str, Extent]] = {}
        self._tiles = TileStatements()
        self._areas = AreaStatements()
        self._pool = AsyncConnectionPool(
            read_conninfo(settings.database_url or "", settings.database_read_urls),
            min_size=settings.pool_min_size,
            max_size=max(settings.pool_max_size, settings.pool_min_size),
            kwargs={"autocommit": True, "application_name": "onemap", "connect_timeout": 10},
            configure=self._configure,
            timeout=acquire_timeout,
            open=False,
            name="onemap-postgis",
        )

    async def _configure(self, conn: psycopg.AsyncConnection) -> None:
        """Per new connection: statement timeout, UTC, no JIT, no parallel plans, and JSON delivered as bytes.

        JIT compilation pays off for long analytic queries; for a page or a tile it costs more than the
        query itself (hundreds of ms when the planner's estimate of a branch not taken is high). Parallel
        workers are the same trade: a polygon filter (``ST_Intersects`` is costed high) gets a parallel plan
        whose worker start-up costs ten times the work itself, and under concurrent requests the workers
        only take the cores the other requests need.
        """
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false), set_config('TimeZone', 'UTC', false),"
            " set_config('jit', 'off', false), set_config('max_parallel_workers_per_gather', '0', false)",
            [f"{self._timeout_ms}ms"],
        )
        conn.adapters.register_loader("json", JsonBytesLoader)

    async def open(self) -> None:
        """Open the pool; connections are made in the background so a down database does not block start-up."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    def pool_stats(self) -> dict[str, int]:
        """The read pool's sizes and counters (psycopg_pool's ``get_stats``), for the metrics."""
        return self._pool.get_stats()

    # -- running statements -------------------------------------------------------------------

    async def _fetch(self, query: str | sql.SQL | sql.Composed, params: Any = None, *, many: bool = False) -> Any:
        """Run one read; retry on another connection if this one was dead; map retryable failures."""
        for _ in range(self._attempts):
            conn: psycopg.AsyncConnection | None = None
            try:
                async with self._pool.connection() as conn:
                    cur = await conn.execute(query, params)
                    return await (cur.fetchall() if many else cur.fetchone())
            except psycopg.DataError:  # a filter's arithmetic out of range, for instance
                raise InvalidParameter(OUT_OF_RANGE) from None
            except psycopg.errors.QueryCanceled:
                raise Unavailable("The query took too long and was cancelled; retry shortly.") from None
            except PoolTimeout:
                raise Unavailable("The database is not reachable or busy; retry shortly.") from None
            except psycopg.OperationalError as exc:
                if conn is None or not conn.closed:  # closed also covers a broken connection
                    log.warning("database error: %s", exc)
                    raise Unavailable("The database is not reachable; retry shortly.") from None
                log.info("dropping a lost database connection and retrying: %s", exc)
        raise Unavailable("The database is not reachable; retry shortly.")

    # -- composing statements -----------------------------------------------------------------

    @staticmethod
    def _feature(c: VectorCollection, properties: Sequence[str], restriction: Restriction, crs: Crs) -> sql.Composed:
        """The expression building one GeoJSON Feature from a row in ``crs`` (masked, generalized and
        rounded as the caller's restriction says, in the storage CRS, before the transformation)."""
        src = c.source
        geom: sql.Composable = pg_geometry(
            sql.Identifier(src.geometry_field), restriction, src.srid, src.geometry_type.startswith("Multi")
        )
        if not crs.same_frame(src.srid):
            geom = sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(crs.srid))
        if crs.lat_first:
            geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
        pairs = sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(p), pg_property(p, restriction)) for p in properties
        )
        digits = crs.digits if crs.digits is not None else output_digits(restriction)
        return template("feature_object").format(
            id=sql.Identifier(src.id_field), geometry=geom, properties=pairs, precision=sql.Literal(digits),
        )

    @staticmethod
    def _envelope(c: VectorCollection) -> sql.Composable:
        srid = c.source.srid
        env = "ST_MakeEnvelope(%(xmin)s, %(ymin)s, %(xmax)s, %(ymax)s, {})"
        if srid in LONLAT_SRIDS:
            return once(sql.SQL(env).format(sql.Literal(srid)))
        return once(sql.SQL("ST_Transform(" + env + ", {})").format(sql.Literal(4326), sql.Literal(srid)))

    def _page_sql(
        self, c: VectorCollection, props: tuple[str, ...], q: ItemQuery, shape: tuple[bool, ...],
        restriction: Restriction, after: sql.Composable | None, condition: PgCondition | None = None,
    ) -> str:
        """The page statement for a query shape: (bbox?, start?, end?, bbox area?, which cursor values are
        null) with ``q``'s order and CRS; ``after`` is the keyset predicate of the cursor, if any, and
        ``condition`` a filter's (its values are parameters: a filter of the same form reuses the statement)."""
        condition_text = None if condition is None else condition.exact.as_string(None)  # implies ``near``
        key = (c.id, props, shape, restriction.key, q.crs, q.sortby, None if q.cursor is None else q.cursor.forward,
               condition_text)
        if (found := self._statements.get(key)) is not None:
            return found
        has_bbox, has_start, has_end, has_area = shape[:4]
        src = c.source
        temporal = sql.Identifier(restriction.temporal_field(c) or "")
        geom = sql.Identifier(src.geometry_field)
        where: list[sql.Composable] = []
        if has_bbox:
            exact = once(sql.SQL("ST_GeomFromWKB(%(area)s, {})").format(sql.Literal(src.srid))) if has_area else None
            if exact is None and src.srid not in LONLAT_SRIDS:
                exact = self._envelope(c)  # the bbox transformed: not a box in the storage CRS
            where.append(bbox_condition(geom, self._envelope(c), exact, src.srid))
        if has_start:
            where.append(sql.SQL("{} >= %(t0)s").format(temporal))
        if has_end:
            where.append(sql.SQL("{} <= %(t1)s").format(temporal))
        if after is not None:
            where.append(after)
        kept, _ = pg_exclusion(restriction)  # rows this caller may not see
        if kept is not None:
            where.append(kept)
        sort_fields = [k.field for k in q.sortby]
        columns = list(dict.fromkeys((src.id_field, src.geometry_field, *props, *sort_fields)))
        reading = q.order(c)
        lead = reading[0] if reading[0].field != src.id_field else None
        composed = template("page").format(
            rows=page_rows(sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(src.table), where,
                           pg_order(reading), lead, shape[4] if len(shape) > 4 else None, condition),
            order=pg_order(reading),
            output_order=pg_order(order_keys(q.sortby, src.id_field, True)),
            reverse_order=pg_order(order_keys(q.sortby, src.id_field, False)),
            keys=sql.SQL(", ").join(map(sql.Identifier, [src.id_field, *sort_fields])),
            feature=self._feature(c, props, restriction, q.crs),
        )
        text = self._statements[key] = composed.as_string(None)
        return text

    # -- parameters ---------------------------------------------------------------------------

    @staticmethod
    def _time_params(c: VectorCollection, temporal: str, interval: TimeInterval) -> dict[str, Any]:
        """Interval ends as bound values: calendar dates (UTC) for a date field, instants otherwise."""
        field = c.field(temporal)
        as_date = field is not None and field.type == "date"
        params: dict[str, Any] = {}
        for name, value in (("t0", interval.start), ("t1", interval.end)):
            if value is not None:
                params[name] = _utc(value).date() if as_date else _utc(value)
        return params

    # -- the Source protocol ------------------------------------------------------------------

    @staticmethod
    def _keyset(c: VectorCollection, q: ItemQuery) -> tuple[sql.Composable | None, dict[str, Any], tuple[bool, ...]]:
        """The cursor's keyset predicate, its parameters (values in their fields' types; a foreign cursor
        is a 400) and which values are null (the predicate's shape)."""
        boundary = q.boundary(c)
        if boundary is None:
            return None, {}, ()
        values = typed_values(c, *boundary)
        after, params = pg_after(boundary[0], values)
        return after, params, tuple(v is None for v in values)

    async def query(self, collection: VectorCollection, q: ItemQuery, *, restriction: Restriction) -> Page:
        """One page of features matching ``q`` in its order, built by a single statement."""
        restriction = checked(restriction, collection)
        props = restriction.select(collection, q.properties)
        params: dict[str, Any] = {"limit": q.limit, "probe": q.limit + 1}
        if q.bbox is not None:
            params.update(zip(("xmin", "ymin", "xmax", "ymax"), map(float, q.bbox), strict=True))
            params.update(inner_box(q.bbox))
        temporal = restriction.temporal_field(collection)
        if q.interval is not None and temporal:
            params.update(self._time_params(collection, temporal, q.interval))
        if q.bbox_area is not None:
            params["area"] = q.bbox_area
        after, after_params, nulls = self._keyset(collection, q)
        params.update(after_params)
        params.update(pg_exclusion(restriction)[1])
        condition = None
        if q.filter is not None:
            src = collection.source
            condition = pg_filter(q.filter.expr, src.geometry_field, src.srid, src.srid in LONLAT_SRIDS)
            params.update(condition.params)
        shape = (q.bbox is not None, "t0" in params, "t1" in params, "area" in params, *nulls)
        statement = self._page_sql(collection, props, q, shape, restriction, after, condition)
        found, features, first, last = await self._fetch(statement, params)
        return page_of(q, found, features.encode(), first, last)

    async def get(
        self, collection: VectorCollection, feature_id: str, properties: tuple[str, ...], *, restriction: Restriction,
        crs: Crs = CRS84,
    ) -> bytes | None:
        """One feature as GeoJSON bytes in ``crs``, or ``None``; a non-integer id for an integer id field is
        ``None``."""
        restriction = checked(restriction, collection)
        src = collection.source
        id_field = collection.field(src.id_field)
        key: str | int = feature_id
        if id_field is not None and id_field.type == "integer":
            if integer_id(feature_id, "The feature id") is None or not INTEGER_ID.fullmatch(feature_id):
                return None
            key = int(feature_id)
        props = restriction.select(collection, properties)
        kept, kept_params = pg_exclusion(restriction)
        statement_key = ("get", collection.id, props, restriction.key, crs)
        query = self._statements.get(statement_key)
        if query is None:
            query = self._statements[statement_key] = template("feature").format(
                feature=self._feature(collection, props, restriction, crs),
                table=sql.Identifier(src.table),
                id=sql.Identifier(src.id_field),
                kept=kept if kept is not None else sql.SQL("true"),
            ).as_string(None)
        row = await self._fetch(query, {"id": key, **kept_params})
        return row[0].encode() if row else None

    async def extent(self, collection: VectorCollection, *, restriction: Restriction) -> Extent:
        """Bounding box (CRS84) and time span of the rows the restriction keeps; cached until the data
        version changes."""
        restriction = checked(restriction, collection)
        version = await self.version(collection)
        memo = (collection.id, restriction)
        cached = self._extents.get(memo)
        if cached is not None and version != "0" and cached[0] == version:
            return cached[1]
        src = collection.source
        geom: sql.Composable = sql.Identifier(src.geometry_field)
        if src.srid not in LONLAT_SRIDS:
            geom = sql.SQL("ST_Transform({}, 4326)").format(geom)
        temporal = restriction.temporal_field(collection)
        tf = sql.Identifier(temporal) if temporal else sql.SQL("NULL")
        kept, kept_params = pg_exclusion(restriction)
        query = template("extent").format(
            extent=sql.SQL("ST_Extent({})").format(geom),
            t0=sql.SQL("min({})").format(tf),
            t1=sql.SQL("max({})").format(tf),
            table=sql.Identifier(src.table),
            kept=kept if kept is not None else sql.SQL("true"),
        )
        xmin, ymin, xmax, ymax, t0, t1 = await self._fetch(query, kept_params)
        bbox = None if xmin is None else (xmin, ymin, xmax, ymax)
        interval = None if t0 is None else (_rfc3339(t0), _rfc3339(t1))
        result = Extent(bbox=bbox, interval=interval)
        self._extents[memo] = (version, result)
        return result

    async def overlaps(self, collection: VectorCollection, site: Site, fields: tuple[str, ...], *,
                       restriction: Restriction) -> list[Overlap]:
        """Rows overlapping ``site`` with their overlap in m², from one statement (``postgis_areas``)."""
        restriction = checked(restriction, collection)
        fields = readable_fields(fields, restriction)
        statement, params = self._areas.one(collection, fields, restriction, site)
        return overlaps_from_rows(await self._fetch(statement, params, many=True), fields)

    async def overlaps_many(self, layers: list[AreaLayer], site: Site) -> list[list[Overlap]]:
        """``overlaps`` of several layers over one site, from one statement (``sql/overlaps_many.sql``)."""
        checked_layers: list[AreaLayer] = []
        for c, fields, restriction in layers:
            restriction = checked(restriction, c)
            checked_layers.append((c, readable_fields(fields, restriction), restriction))
        statement, params = self._areas.many(checked_layers, site)
        return many_from_rows(await self._fetch(statement, params, many=True), len(layers))

    async def version(self, collection: VectorCollection) -> str:
        """The collection's data version from ``onemap_versions``; ``"0"`` when versioning is not installed."""
        try:
            row = await self._fetch(VERSION_QUERY, [collection.id])
        except psycopg.errors.UndefinedTable:
            return "0"
        return str(row[0]) if row else "0"

    async def check(self) -> list[str]:
        """Missing tables, missing or mistyped columns, and collections without data versioning."""
        vectors = self._catalog.of_kind(VectorCollection)
        tables = [c.source.table for c in vectors]
        rows = await self._fetch(load_sql("columns"), {"tables": tables}, many=True)
        versioned = await self._fetch(
            "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'onemap_version'", many=True
        )
        return problems(vectors, rows, {r[0] for r in versioned})

    # -- vector tiles ---------------------------------------------------------------------------

    async def tile(self, collection: VectorCollection, req: TileRequest, *, restriction: Restriction) -> bytes:
        """One MVT layer (one ST_AsMVT statement; see ``postgis_tiles``)."""
        return await self.tiles([(collection, req)], restrictions={collection.id: checked(restriction, collection)})

    async def tiles(self, layers: Layers, *, restrictions: Mapping[str, Restriction]) -> bytes:
        """Several MVT layers built in one statement; b"" when nothing falls in the tile."""
        return await self._tiles.render(self._fetch, restricted_layers(layers, restrictions))


def _rfc3339(value: dt.date | dt.datetime) -> str:
    """A date or instant as an RFC 3339 UTC date-time, as collection extents carry them."""
    if isinstance(value, dt.datetime):
        return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{value.isoformat()}T00:00:00Z"
