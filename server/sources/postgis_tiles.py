"""Vector tiles from PostGIS: every layer of a tile in one SQL statement, and the overview builder.

A tile is ``SELECT (layer 1) || (layer 2) || ...``: each layer is an ``ST_AsMVT`` over the rows that
``ST_AsMVTGeom`` clipped (``sql/tile_layer.sql``), and MVT layers concatenate as bytes. A layer reads
the collection's overview for the tile's level when there is one (``sources/tile_overviews.py``),
otherwise the source table with its envelope filter in the table's SRID. Composed statements are
cached per shape, so psycopg prepares the ones that repeat; every tile value is a bound parameter.

When the store records data versions, a layer with an overview is
``CASE WHEN <overviews built from the current version> THEN (overview layer) ELSE (table layer) END``:
the check is two primary-key lookups evaluated once per statement, and only the branch taken runs
(PostgreSQL evaluates such subqueries lazily), so an edited collection reads its table at once, in
the same snapshot as its data, without another round trip.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import shapely
from cachetools import LRUCache
from psycopg import sql

from server.catalog import Catalog, Collection
from server.policy.pgsql import pg_exclusion, pg_masked
from server.policy.resolve import restriction_of
from server.sources.base import TileRequest
from server.sources.tile_overviews import (
    DATA_VERSIONS,
    GEOGRAPHIC,
    LINES,
    MERCATOR_SRID,
    OVERVIEW_VERSIONS,
    PG_SCHEMA,
    POLYGONS,
    box_in,
    buffered,
    min_size,
    overview_chain,
    overview_name,
    overview_zooms,
    runtime_tolerance,
    to_mercator,
    usable_overview,
)

SQL_DIR = Path(__file__).parent / "sql"
OVERVIEW_TTL_S = 30.0
BATCH = 20_000
Fetch = Callable[..., Awaitable[Any]]

_statements: LRUCache[tuple, sql.Composed] = LRUCache(maxsize=512)
_overviews: dict[str, tuple[float, frozenset[str]]] = {}


@cache
def _template(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def _size_expr(geometry_type: str, g: sql.Composable) -> sql.Composable:
    if geometry_type in POLYGONS:
        return sql.SQL("ST_Area({})").format(g)
    if geometry_type in LINES:
        return sql.SQL("ST_Length({})").format(g)
    return sql.SQL("0::float8")


def _cast(name: str, kind: str) -> sql.Composable:
    """A column as the value put in the tile: dates as ISO text, numbers as float8, the rest as is."""
    col = sql.Identifier("c", name)
    alias = sql.Identifier(name)
    if kind == "date":
        return sql.SQL("to_char({}, 'YYYY-MM-DD') AS {}").format(col, alias)
    if kind == "datetime":
        return sql.SQL("""to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS {}""").format(col, alias)
    if kind == "number":
        return sql.SQL("{}::float8 AS {}").format(col, alias)
    if kind == "string":
        return sql.SQL("{}::text AS {}").format(col, alias)
    return sql.SQL("{} AS {}").format(col, alias)


def _order_id(c: Collection) -> sql.Composable:
    col = sql.Identifier("c", c.source.id_field)
    if c.field(c.source.id_field).type == "string":
        return sql.SQL('{} COLLATE "C"').format(col)
    return col


def _property(name: str, kind: str, masked: frozenset[str]) -> sql.Composable:
    """One tile property; a field the caller may see only masked is masked here, in the statement."""
    if name in masked:
        return sql.SQL("{} AS {}").format(pg_masked(sql.Identifier("c", name)), sql.Identifier(name))
    return _cast(name, kind)


def _layer_sql(c: Collection, req: TileRequest, overview: str | None, simplify: bool, prefix: str) -> sql.Composed:
    """The statement for one layer; placeholders are named ``<prefix>*``."""
    src = c.source
    restriction = restriction_of(c)  # rows and fields this caller may not see
    kept = pg_exclusion(restriction, prefix=prefix)[0]
    p = {k: sql.Placeholder(f"{prefix}{k}") for k in ("x0", "y0", "x1", "y1", "fx0", "fy0", "fx1", "fy1", "min", "cap")}
    kinds = {f.name: f.type for f in c.fields}
    columns = list(dict.fromkeys((src.id_field, *req.properties)))
    target_geographic = req.srid in GEOGRAPHIC
    if overview is not None:
        table, geometry, srid = sql.Identifier(PG_SCHEMA, overview), sql.Identifier("_geom"), MERCATOR_SRID
        g = sql.Identifier("_geom")
        size = sql.Identifier("_size")
        tile_geom = sql.SQL("ST_Transform(c._g, 4326)") if target_geographic else sql.SQL("c._g")
    else:
        table, geometry, srid = sql.Identifier(src.table), sql.Identifier(src.geometry_field), src.srid
        same = src.srid == req.srid or (src.srid in GEOGRAPHIC and target_geographic)
        g = geometry if same else sql.SQL("ST_Transform({}, {})").format(geometry, sql.Literal(req.srid))
        size = _size_expr(src.geometry_type, g)
        tile_geom = sql.SQL("ST_SimplifyPreserveTopology(c._g, {})").format(sql.Placeholder(f"{prefix}tol")) \
            if simplify else sql.SQL("c._g")
    fast = overview is not None and req.srid == MERCATOR_SRID and req.extent == c.tiles.extent
    inside = sql.SQL("c._g @ ST_MakeEnvelope({}, {}, {}, {}, 3857)").format(p["fx0"], p["fy0"], p["fx1"], p["fy1"])
    affine = {k: sql.Placeholder(f"{prefix}{k}") if fast else sql.Literal(0) for k in ("sx", "sy", "ox", "oy")}
    return sql.SQL(_template("tile_layer")).format(  # type: ignore[arg-type]  # trusted template
        inside=inside if fast else sql.SQL("false"),
        **affine,
        layer=sql.Literal(c.id),
        extent=sql.Literal(req.extent),
        buffer=sql.Literal(req.buffer),
        tile_geom=tile_geom,
        x0=p["x0"], y0=p["y0"], x1=p["x1"], y1=p["y1"],
        properties=sql.SQL(", ").join(_property(n, kinds[n], restriction.masked) for n in req.properties)
        if req.properties
        else sql.SQL("NULL::text AS _none"),
        g=g,
        size=size,
        columns=sql.SQL(", ").join(sql.Identifier(n) for n in columns),
        table=table,
        geometry=geometry,
        fx0=p["fx0"], fy0=p["fy0"], fx1=p["fx1"], fy1=p["fy1"],
        srid=sql.Literal(srid),
        kept=kept if kept is not None else sql.SQL("true"),
        min_size=p["min"],
        order_id=_order_id(c),
        cap=p["cap"],
    )


def _layer_params(c: Collection, req: TileRequest, overview: str | None, tolerance: float, prefix: str) -> dict[str, Any]:
    filter_srid = MERCATOR_SRID if overview is not None else c.source.srid
    fbox = box_in(buffered(req.bounds, req.extent, req.buffer), req.srid, filter_srid)
    keys = ("x0", "y0", "x1", "y1", "fx0", "fy0", "fx1", "fy1")
    out = {f"{prefix}{k}": float(v) for k, v in zip(keys, (*req.bounds, *fbox))}
    out[f"{prefix}min"] = 0.0 if overview is not None else min_size(c.source.geometry_type, req.min_area)
    out[f"{prefix}cap"] = req.max_features
    if overview is None and tolerance > 0:
        out[f"{prefix}tol"] = float(tolerance)
    if overview is not None and req.srid == MERCATOR_SRID and req.extent == c.tiles.extent:
        x0, y0, x1, y1 = req.bounds
        sx, sy = req.extent / (x1 - x0), req.extent / (y1 - y0)
        out.update({f"{prefix}sx": sx, f"{prefix}sy": -sy, f"{prefix}ox": -x0 * sx, f"{prefix}oy": y1 * sy})
    out.update(pg_exclusion(restriction_of(c), prefix=prefix)[1])
    return out


def _fresh_sql(c: Collection) -> sql.Composed:
    """True when the collection's overviews were built from its current data version."""
    return sql.SQL(
        "coalesce((SELECT b.version = v.version FROM {} AS b JOIN {} AS v ON v.collection = b.collection"
        " WHERE b.collection = {}), false)"
    ).format(sql.Identifier(PG_SCHEMA, OVERVIEW_VERSIONS), sql.Identifier(DATA_VERSIONS), sql.Literal(c.id))


def _part_sql(c: Collection, req: TileRequest, overview: str | None, tol: float, checked: bool, i: int) -> sql.Composed:
    """One layer of the statement; with ``checked``, the overview branch only while it is fresh."""
    if overview is None or not checked:
        return sql.SQL("({})").format(_layer_sql(c, req, overview, tol > 0, f"l{i}_"))
    return sql.SQL("(CASE WHEN {} THEN ({}) ELSE ({}) END)").format(
        _fresh_sql(c), _layer_sql(c, req, overview, False, f"l{i}_"), _layer_sql(c, req, None, tol > 0, f"l{i}t_")
    )


def checks_versions(available: frozenset[str]) -> bool:
    """Whether the store records both data versions and the versions its overviews were built from."""
    return OVERVIEW_VERSIONS in available and DATA_VERSIONS in available


def compose(layers: Sequence[tuple[Collection, TileRequest]], available: frozenset[str]) -> tuple[sql.Composed, dict]:
    """The one statement (and its parameters) that builds a tile with these layers."""
    checked = checks_versions(available)
    available = available - {DATA_VERSIONS, OVERVIEW_VERSIONS}  # the overview tables alone
    chosen = [usable_overview(c, req.zoom, available) for c, req in layers]
    tolerances = [runtime_tolerance(req.simplify, req.zoom, available) for _, req in layers]
    key = tuple(
        (c.id, req.srid, req.extent, req.buffer, req.properties, ov, tol > 0, checked, restriction_of(c).key)
        for (c, req), ov, tol in zip(layers, chosen, tolerances)
    )
    query = _statements.get(key)
    if query is None:
        parts = [
            _part_sql(c, req, ov, tol, checked, i) for i, ((c, req), ov, tol) in enumerate(zip(layers, chosen, tolerances))
        ]
        query = sql.SQL("SELECT {}").format(sql.SQL(" || ").join(parts))
        _statements[key] = query
    params: dict[str, Any] = {}
    for i, ((c, req), ov, tol) in enumerate(zip(layers, chosen, tolerances)):
        params.update(_layer_params(c, req, ov, tol, f"l{i}_"))
        if ov is not None and checked:
            params.update(_layer_params(c, req, None, tol, f"l{i}t_"))
    return query, params


async def available_overviews(fetch: Fetch, cache_key: str = "") -> frozenset[str]:
    """Names of the tables in ``onemap_tiles`` (overviews and ``onemap_overview_versions``), plus
    ``onemap_versions`` when data versioning is installed (re-read every ``OVERVIEW_TTL_S`` seconds)."""
    hit = _overviews.get(cache_key)
    if hit and time.monotonic() - hit[0] < OVERVIEW_TTL_S:
        return hit[1]
    rows = await fetch(
        sql.SQL(
            "SELECT tablename FROM pg_tables WHERE schemaname = {}"
            " UNION ALL SELECT {} WHERE to_regclass({}) IS NOT NULL"
        ).format(sql.Literal(PG_SCHEMA), sql.Literal(DATA_VERSIONS), sql.Literal(DATA_VERSIONS)),
        many=True,
    )
    names = frozenset(r[0] for r in rows)
    _overviews[cache_key] = (time.monotonic(), names)
    return names


async def render_tile(fetch: Fetch, layers: Sequence[tuple[Collection, TileRequest]], cache_key: str = "") -> bytes:
    """The MVT bytes for these layers, read with ``fetch(query, params)`` (one statement); b"" if empty.

    ``fetch`` is the source's statement runner (it maps timeouts and lost connections to 503).
    """
    if not layers:
        return b""
    query, params = compose(layers, await available_overviews(fetch, cache_key))
    row = await fetch(query, params)
    return bytes(row[0]) if row and row[0] else b""


def fresh_collections(conn: psycopg.Connection) -> frozenset[str] | None:
    """Collections whose overviews were built from their current data version (None: not recorded)."""
    record = f"{PG_SCHEMA}.{OVERVIEW_VERSIONS}"
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                         [record, DATA_VERSIONS]).fetchone()[0]
    if not found:
        return None
    rows = conn.execute(
        sql.SQL("SELECT b.collection FROM {} AS b JOIN {} AS v ON v.collection = b.collection"
                " WHERE b.version = v.version").format(sql.Identifier(PG_SCHEMA, OVERVIEW_VERSIONS),
                                                       sql.Identifier(DATA_VERSIONS))
    ).fetchall()
    return frozenset(r[0] for r in rows)


def build_overviews(conn: psycopg.Connection, catalog: Catalog) -> list[str]:
    """(Re)build every vector collection's overviews in schema ``onemap_tiles``; returns their names.

    Call after loading or changing data (the sample and import steps and ``onemap overviews`` do).
    Rows stream from the source table in batches through ``overview_chain`` (the same generalization
    the embedded store uses) and are copied into one table per level, which is then rewritten in
    spatial order and indexed. A collection's new tables replace the old ones, and its entry in
    ``onemap_overview_versions`` is set to the data version they were read at, in one transaction,
    so a running server never misses a table and never takes stale overviews for fresh ones.
    """
    built: list[str] = []
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(PG_SCHEMA)))
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (collection text PRIMARY KEY, version bigint)").format(
            sql.Identifier(PG_SCHEMA, OVERVIEW_VERSIONS)
        )
    )
    for c in catalog:
        if not c.is_vector:
            continue
        names = {z: overview_name(c, z) for z in overview_zooms(c)}
        _drop_stale(conn, c, set(names.values()))
        for name in names.values():
            _create_loading_table(conn, c, name)
        version = _fill(conn, c, names)
        for name in names.values():
            _finish_table(conn, name)
        _swap(conn, c, list(names.values()), version)
        built.extend(names.values())
    if not conn.autocommit:
        conn.commit()
    _overviews.clear()
    return built


def _create_loading_table(conn: psycopg.Connection, c: Collection, name: str) -> None:
    """An empty ``<name>_load`` with the source's field columns, a 3857 geometry and the size."""
    load = sql.Identifier(PG_SCHEMA, f"{name}_load")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(load))
    conn.execute(
        sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {} FROM {} LIMIT 0").format(
            load, sql.SQL(", ").join(sql.Identifier(f) for f in c.field_names), sql.Identifier(c.source.table)
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN _geom geometry(Geometry, 3857), ADD COLUMN _size float8").format(load)
    )


def _data_version(conn: psycopg.Connection, c: Collection) -> int | None:
    """The collection's current data version, or None without data versioning."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", [DATA_VERSIONS]).fetchone()[0]:
        return None
    row = conn.execute(
        sql.SQL("SELECT version FROM {} WHERE collection = %s").format(sql.Identifier(DATA_VERSIONS)), [c.id]
    ).fetchone()
    return None if row is None else int(row[0])


def _fill(conn: psycopg.Connection, c: Collection, names: dict[int, str]) -> int | None:
    """Stream the table into the loading tables; returns the data version the rows were read at.

    On an autocommit connection the read is one REPEATABLE READ transaction, so the version is exact;
    otherwise it is read just before the rows (a later edit then only makes the overviews look stale).
    """
    exact = conn.autocommit
    fields = c.field_names
    read = sql.SQL("SELECT ST_AsBinary({}), {} FROM {} WHERE {} IS NOT NULL").format(
        sql.Identifier(c.source.geometry_field),
        sql.SQL(", ").join(sql.Identifier(f) for f in fields),
        sql.Identifier(c.source.table),
        sql.Identifier(c.source.geometry_field),
    )
    columns = sql.SQL(", ").join([*(sql.Identifier(f) for f in fields), sql.Identifier("_geom"), sql.Identifier("_size")])
    with conn.transaction(), conn.cursor(name=f"onemap_overview_{c.id}") as source:
        if exact:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        version = _data_version(conn, c)
        source.itersize = BATCH
        source.execute(read)
        while batch := source.fetchmany(BATCH):
            geoms = to_mercator(shapely.from_wkb([bytes(r[0]) for r in batch]), c.source.srid)
            for zoom, rows, level_geoms, sizes in overview_chain(c, geoms):
                load = sql.Identifier(PG_SCHEMA, f"{names[zoom]}_load")
                hexes = shapely.to_wkb(shapely.set_srid(level_geoms, MERCATOR_SRID), hex=True, include_srid=True)
                with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(load, columns)) as copy:
                    for i, h, size in zip(rows, hexes, sizes):
                        copy.write_row((*batch[i][1:], h, float(size)))
    return version


def _finish_table(conn: psycopg.Connection, name: str) -> None:
    """Rewrite the loaded rows in spatial (Hilbert) order into ``<name>_next``, index and analyze it."""
    ready, load = sql.Identifier(PG_SCHEMA, f"{name}_next"), sql.Identifier(PG_SCHEMA, f"{name}_load")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ready))
    conn.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM {} ORDER BY _geom").format(ready, load))
    conn.execute(sql.SQL("DROP TABLE {}").format(load))
    conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (_geom)").format(ready))
    conn.execute(sql.SQL("ANALYZE {}").format(ready))


def _swap(conn: psycopg.Connection, c: Collection, names: list[str], version: int | None) -> None:
    """Put the ``_next`` tables in place of the served ones and record their data version, atomically."""
    with conn.transaction():
        for name in names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(PG_SCHEMA, name)))
            conn.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(PG_SCHEMA, f"{name}_next"), sql.Identifier(name)
                )
            )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (collection, version) VALUES (%s, %s)"
                " ON CONFLICT (collection) DO UPDATE SET version = excluded.version"
            ).format(sql.Identifier(PG_SCHEMA, OVERVIEW_VERSIONS)),
            [c.id, version],
        )


def _drop_stale(conn: psycopg.Connection, c: Collection, keep: set[str]) -> None:
    """Drop leftovers of an interrupted build and overview levels no longer built (not ``keep``)."""
    prefix = f"{c.source.table}_z"
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND starts_with(tablename, %s)", [PG_SCHEMA, prefix]
    ).fetchall()
    for (table,) in rows:
        level = table[len(prefix):].removesuffix("_load").removesuffix("_next")
        if level.isdigit() and table not in keep:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(PG_SCHEMA, table)))
