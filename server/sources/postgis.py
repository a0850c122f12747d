"""The PostGIS source: psycopg 3 async pool, one SQL statement per response.

The database builds the GeoJSON (``json_build_object``/``json_agg`` over ``ST_AsGeoJSON``) and the
paging keys in one statement; Python receives the JSON as bytes (a ``json`` loader that returns the
raw wire text) and passes it on. Identifiers come only from the catalog through
``psycopg.sql.Identifier``; every client value is a bound parameter. SQL text longer than a line
lives in ``sql/*.sql`` and is composed with ``psycopg.sql``; composed statements are cached per
query shape, and psycopg prepares the ones that repeat.

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
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from cachetools import LRUCache
from psycopg import sql
from psycopg.adapt import Buffer, Loader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from server.catalog import Catalog, VectorCollection
from server.errors import InvalidParameter, Unavailable
from server.policy.desensitize import output_digits
from server.policy.model import Restriction, checked
from server.policy.pgsql import pg_exclusion, pg_geometry, pg_property
from server.settings import Settings
from server.sources.areas import Overlap, Site, readable_fields
from server.sources.base import Extent, ItemQuery, Layers, Page, TileRequest, TimeInterval, restricted_layers
from server.sources.postgis_areas import overlaps_from_rows, overlaps_statement, site_params
from server.sources.postgis_tiles import TileStatements

log = logging.getLogger("onemap.sources.postgis")

SQL_DIR = Path(__file__).parent / "sql"
LONLAT_SRIDS = frozenset({4326, 4490})  # stored as lon/lat degrees: CRS84 coordinates apply directly
ACQUIRE_TIMEOUT_S = 5.0
INTEGER_ID = re.compile(r"-?[1-9][0-9]{0,18}|0")
COLUMN_TYPES = {
    "string": ("text", "character varying", "character"),
    "integer": ("bigint", "integer", "smallint"),
    "number": ("double precision", "real", "numeric", "bigint", "integer", "smallint"),
    "boolean": ("boolean",),
    "date": ("date",),
    "datetime": ("timestamp with time zone",),
}


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8").strip()


def template(name: str) -> sql.SQL:
    """``sql/<name>.sql`` as a ``psycopg.sql`` template (placeholders in braces)."""
    return sql.SQL(load_sql(name))  # type: ignore[arg-type]  # trusted file shipped with the package


class JsonBytesLoader(Loader):
    """Load ``json`` values as the raw UTF-8 bytes the server sent: no parse, no re-encode."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class PostGISSource:
    """Vector collections stored in PostGIS tables (see ``server.sources.base`` for the contract)."""

    def __init__(self, settings: Settings, catalog: Catalog, acquire_timeout: float = ACQUIRE_TIMEOUT_S) -> None:
        self._catalog = catalog
        self._timeout_ms = settings.statement_timeout_ms
        self._acquire_timeout = acquire_timeout
        self._attempts = settings.pool_max_size + 1
        self._statements: LRUCache[tuple, sql.Composed] = LRUCache(maxsize=1024)
        self._extents: dict[tuple[str, Restriction], tuple[str, Extent]] = {}
        self._tiles = TileStatements()
        self._pool = AsyncConnectionPool(
            settings.database_url or "",
            min_size=settings.pool_min_size,
            max_size=max(settings.pool_max_size, settings.pool_min_size),
            kwargs={"autocommit": True, "application_name": "onemap", "connect_timeout": 10},
            configure=self._configure,
            timeout=acquire_timeout,
            open=False,
            name="onemap-postgis",
        )

    async def _configure(self, conn: psycopg.AsyncConnection) -> None:
        """Per new connection: statement timeout, UTC, no JIT, and JSON delivered as bytes.

        JIT compilation pays off for long analytic queries; for a page or a tile it costs more than the
        query itself (hundreds of ms when the planner's estimate of a branch not taken is high).
        """
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false), set_config('TimeZone', 'UTC', false),"
            " set_config('jit', 'off', false)",
            [f"{self._timeout_ms}ms"],
        )
        conn.adapters.register_loader("json", JsonBytesLoader)

    async def open(self) -> None:
        """Open the pool; connections are made in the background so a down database does not block start-up."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    # -- running statements -------------------------------------------------------------------

    async def _fetch(self, query: sql.Composable, params: Any = None, *, many: bool = False) -> Any:
        """Run one read; retry on another connection if this one was dead; map retryable failures."""
        for _ in range(self._attempts):
            conn: psycopg.AsyncConnection | None = None
            try:
                async with self._pool.connection() as conn:
                    cur = await conn.execute(query, params)
                    return await (cur.fetchall() if many else cur.fetchone())
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
    def _feature(c: VectorCollection, properties: Sequence[str], restriction: Restriction) -> sql.Composed:
        """The expression building one GeoJSON Feature from a row (masked, generalized and rounded
        as the caller's restriction says)."""
        src = c.source
        geom: sql.Composable = pg_geometry(
            sql.Identifier(src.geometry_field), restriction, src.srid, src.geometry_type.startswith("Multi")
        )
        if src.srid not in LONLAT_SRIDS:
            geom = sql.SQL("ST_Transform({}, 4326)").format(geom)
        pairs = sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(p), pg_property(p, restriction)) for p in properties
        )
        return template("feature_object").format(
            id=sql.Identifier(src.id_field), geometry=geom, properties=pairs,
            precision=sql.Literal(output_digits(restriction)),
        )

    @staticmethod
    def _envelope(c: VectorCollection) -> sql.Composed:
        srid = c.source.srid
        env = "ST_MakeEnvelope(%(xmin)s, %(ymin)s, %(xmax)s, %(ymax)s, {})"
        if srid in LONLAT_SRIDS:
            return sql.SQL(env).format(sql.Literal(srid))
        return sql.SQL("ST_Transform(" + env + ", {})").format(sql.Literal(4326), sql.Literal(srid))

    def _page_sql(
        self, c: VectorCollection, props: tuple[str, ...], shape: tuple[bool, bool, bool, bool | None],
        restriction: Restriction,
    ) -> sql.Composed:
        """The page statement for a query shape: (bbox?, start?, end?, cursor direction or none)."""
        key = (c.id, props, shape, restriction.key)
        if (found := self._statements.get(key)) is not None:
            return found
        has_bbox, has_start, has_end, cursor = shape
        src = c.source
        temporal = sql.Identifier(restriction.temporal_field(c) or "")
        id_, geom = sql.Identifier(src.id_field), sql.Identifier(src.geometry_field)
        where: list[sql.Composable] = []
        if has_bbox:
            env = self._envelope(c)
            where.append(sql.SQL("{g} && {e} AND ST_Intersects({g}, {e})").format(g=geom, e=env))
        if has_start:
            where.append(sql.SQL("{} >= %(t0)s").format(temporal))
        if has_end:
            where.append(sql.SQL("{} <= %(t1)s").format(temporal))
        if cursor is not None:
            where.append(sql.SQL("{} > %(key)s" if cursor else "{} < %(key)s").format(id_))
        kept, _ = pg_exclusion(restriction)  # rows this caller may not see
        if kept is not None:
            where.append(kept)
        columns = list(dict.fromkeys((src.id_field, src.geometry_field, *props)))
        composed = template("page").format(
            columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
            table=sql.Identifier(src.table),
            where=sql.SQL(" AND ").join(where) if where else sql.SQL("true"),
            id=id_,
            direction=sql.SQL("DESC" if cursor is False else "ASC"),
            feature=self._feature(c, props, restriction),
        )
        self._statements[key] = composed
        return composed

    # -- parameters ---------------------------------------------------------------------------

    @staticmethod
    def _key(c: VectorCollection, key: str | int) -> str | int:
        """A cursor key in the id field's type; a foreign cursor is a client error."""
        field = c.field(c.source.id_field)
        if field is not None and field.type == "integer":
            if isinstance(key, int):
                return key
            raise InvalidParameter("Parameter 'cursor' is not a cursor this server issued.")
        return str(key)

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

    async def query(self, collection: VectorCollection, q: ItemQuery, *, restriction: Restriction) -> Page:
        """One page of features matching ``q``, ascending by id, built by a single statement."""
        restriction = checked(restriction, collection)
        props = restriction.select(collection, q.properties)
        params: dict[str, Any] = {"limit": q.limit, "probe": q.limit + 1}
        if q.bbox is not None:
            params.update(zip(("xmin", "ymin", "xmax", "ymax"), map(float, q.bbox)))
        temporal = restriction.temporal_field(collection)
        if q.interval is not None and temporal:
            params.update(self._time_params(collection, temporal, q.interval))
        forward = None if q.cursor is None else q.cursor.forward
        if q.cursor is not None:
            params["key"] = self._key(collection, q.cursor.key)
        params.update(pg_exclusion(restriction)[1])
        shape = (q.bbox is not None, "t0" in params, "t1" in params, forward)
        statement = self._page_sql(collection, props, shape, restriction)
        found, features, first, last = await self._fetch(statement, params)
        more = found > q.limit
        page = Page(features=features, number_returned=min(found, q.limit))
        if page.number_returned == 0:
            page.number_matched = 0 if q.cursor is None else None
            return page
        if forward is False:
            page.prev_key, page.next_key = (first if more else None), last
        else:
            page.next_key = last if more else None
            page.prev_key = first if q.cursor is not None else None
        if q.cursor is None and not more:
            page.number_matched = found
        return page

    async def get(
        self, collection: VectorCollection, feature_id: str, properties: tuple[str, ...], *, restriction: Restriction
    ) -> bytes | None:
        """One feature as GeoJSON bytes, or ``None``; a non-integer id for an integer id field is ``None``."""
        restriction = checked(restriction, collection)
        src = collection.source
        id_field = collection.field(src.id_field)
        key: str | int = feature_id
        if id_field is not None and id_field.type == "integer":
            if not INTEGER_ID.fullmatch(feature_id) or abs(int(feature_id)) >= 2**63:
                return None
            key = int(feature_id)
        props = restriction.select(collection, properties)
        kept, kept_params = pg_exclusion(restriction)
        statement_key = ("get", collection.id, props, restriction.key)
        query = self._statements.get(statement_key)
        if query is None:
            query = template("feature").format(
                feature=self._feature(collection, props, restriction),
                table=sql.Identifier(src.table),
                id=sql.Identifier(src.id_field),
                kept=kept if kept is not None else sql.SQL("true"),
            )
            self._statements[statement_key] = query
        row = await self._fetch(query, {"id": key, **kept_params})
        return row[0] if row else None

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
        statement, params = overlaps_statement(template("overlaps"), collection, fields, restriction)
        rows = await self._fetch(statement, {**params, **site_params(site)}, many=True)
        return overlaps_from_rows(rows, fields)

    async def version(self, collection: VectorCollection) -> str:
        """The collection's data version from ``onemap_versions``; ``"0"`` when versioning is not installed."""
        try:
            row = await self._fetch("SELECT version FROM onemap_versions WHERE collection = %s", [collection.id])
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


def problems(vectors: list[VectorCollection], rows: list[tuple], versioned: set[str]) -> list[str]:
    """Compare the catalog with the columns found in the database; one message per problem."""
    found: dict[str, dict[str, str]] = {}
    for table, exists, column, type_ in rows:
        cols = found.setdefault(table, {}) if exists else None
        if cols is not None and column is not None:
            cols[column] = type_
    issues: list[str] = []
    for c in vectors:
        src = c.source
        cols = found.get(src.table)
        if cols is None:
            issues.append(f"{c.id}: table '{src.table}' does not exist")
            continue
        geom_type = cols.get(src.geometry_field)
        if geom_type is None:
            issues.append(f"{c.id}: geometry column '{src.table}.{src.geometry_field}' does not exist")
        elif not geom_type.startswith("geometry"):
            issues.append(f"{c.id}: column '{src.table}.{src.geometry_field}' is {geom_type}, not a geometry")
        for f in c.fields:
            type_ = cols.get(f.name)
            if type_ is None:
                issues.append(f"{c.id}: column '{src.table}.{f.name}' does not exist")
            elif not type_.startswith(COLUMN_TYPES[f.type]):
                issues.append(f"{c.id}: column '{src.table}.{f.name}' is {type_}, expected {f.type}")
        if src.table not in versioned:
            issues.append(f"{c.id}: data versioning is not installed on '{src.table}' (run install_versioning)")
    return issues


def install_versioning(conn: psycopg.Connection, catalog: Catalog) -> list[str]:
    """Create ``onemap_versions`` and a version-bumping trigger on every existing collection table.

    Run after loading data: a table that had no trigger yet (new, or reloaded) gets one and its
    collection's version moves; a table already versioned keeps its version (its edits moved it),
    so running it again invalidates nothing. Returns the collection ids now versioned; collections
    whose table does not exist are skipped.
    """
    done: list[str] = []
    with conn.transaction():
        conn.execute(load_sql("versioning"))  # type: ignore[arg-type]
        for c in catalog.of_kind(VectorCollection):
            exists = conn.execute("SELECT to_regclass(quote_ident(%s)) IS NOT NULL", [c.source.table]).fetchone()
            if not exists or not exists[0]:
                continue
            had = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'onemap_version'"
                " AND tgrelid = to_regclass(quote_ident(%s)))", [c.source.table]
            ).fetchone()[0]
            conflict = sql.SQL("NOTHING" if had else "UPDATE SET version = v.version + 1")
            conn.execute(
                template("version_trigger").format(
                    table=sql.Identifier(c.source.table), collection=sql.Literal(c.id), on_conflict=conflict
                )
            )
            done.append(c.id)
    return done
