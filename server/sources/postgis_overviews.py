"""Tile overviews in PostGIS: (re)building them in schema ``onemap_tiles`` and reading their freshness.

See ``sources/tile_overviews.py`` for what an overview is; tiles read them in ``postgis_tiles``.
"""

from __future__ import annotations

import psycopg
import shapely
from psycopg import sql

from server.catalog import Catalog, VectorCollection
from server.sources.tile_overviews import (
    DATA_VERSIONS,
    MERCATOR_SRID,
    OVERVIEW_VERSIONS,
    PG_SCHEMA,
    overview_chain,
    overview_name,
    overview_zooms,
    to_mercator,
)

BATCH = 20_000


def fresh_collections(conn: psycopg.Connection) -> frozenset[str] | None:
    """Collections whose overviews were built from their current data version (None: not recorded)."""
    record = f"{PG_SCHEMA}.{OVERVIEW_VERSIONS}"
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                         [record, DATA_VERSIONS]).fetchone() == (True,)
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
    for c in catalog.of_kind(VectorCollection):
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
    return built


def _create_loading_table(conn: psycopg.Connection, c: VectorCollection, name: str) -> None:
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


def _data_version(conn: psycopg.Connection, c: VectorCollection) -> int | None:
    """The collection's current data version, or None without data versioning."""
    if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [DATA_VERSIONS]).fetchone() != (True,):
        return None
    row = conn.execute(
        sql.SQL("SELECT version FROM {} WHERE collection = %s").format(sql.Identifier(DATA_VERSIONS)), [c.id]
    ).fetchone()
    return None if row is None else int(row[0])


def _fill(conn: psycopg.Connection, c: VectorCollection, names: dict[int, str]) -> int | None:
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
    columns = sql.SQL(", ").join([*(sql.Identifier(f) for f in fields), sql.Identifier("_geom"),
                                  sql.Identifier("_size")])
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
                    for i, h, size in zip(rows, hexes, sizes, strict=True):
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


def _swap(conn: psycopg.Connection, c: VectorCollection, names: list[str], version: int | None) -> None:
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


def _drop_stale(conn: psycopg.Connection, c: VectorCollection, keep: set[str]) -> None:
    """Drop leftovers of an interrupted build and overview levels no longer built (not ``keep``)."""
    prefix = f"{c.source.table}_z"
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND starts_with(tablename, %s)", [PG_SCHEMA, prefix]
    ).fetchall()
    for (table,) in rows:
        level = table[len(prefix):].removesuffix("_load").removesuffix("_next")
        if level.isdigit() and table not in keep:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(PG_SCHEMA, table)))
