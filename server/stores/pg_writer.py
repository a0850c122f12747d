"""Load collections (the sample, a release) into PostGIS with psycopg 3: typed tables, COPY, then keys,
GiST indexes, ANALYZE.

Everything after ``CREATE EXTENSION`` happens in one transaction, so readers keep seeing the old
tables until the new ones are complete. Identifiers come from the catalog through
``psycopg.sql.Identifier``; values travel in COPY text format (geometries as hex EWKB).
"""

from __future__ import annotations

import psycopg
import shapely
from psycopg import sql

from server.catalog import VectorCollection
from server.stores.batches import Batch

PG_TYPES = {"string": "text", "integer": "bigint", "number": "double precision", "date": "date",
            "boolean": "boolean", "datetime": "timestamptz"}
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)
    return str(value).translate(_ESCAPES)


class PostGISWriter:
    """Streams batches into PostGIS tables in ``schema``; ``finish`` adds keys and indexes and commits."""

    def __init__(self, url: str, collections: list[VectorCollection], schema: str = "public") -> None:
        self.collections = {c.id: c for c in collections}
        self.schema = schema
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        self.conn = psycopg.connect(url)
        self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for c in self.collections.values():
            self._create_table(c)

    def _table(self, c: VectorCollection) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(c.source.table))

    def _create_table(self, c: VectorCollection) -> None:
        cols = [sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(PG_TYPES[f.type])) for f in c.fields]
        geom = sql.SQL("{} geometry(MultiPolygon, {})").format(
            sql.Identifier(c.source.geometry_field), sql.Literal(c.source.srid)
        )
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(self._table(c)))
        self.conn.execute(sql.SQL("CREATE TABLE {} ({})").format(self._table(c), sql.SQL(", ").join([*cols, geom])))

    def write(self, batch: Batch) -> None:
        """COPY one batch of rows into its table."""
        if len(batch) == 0:
            return
        c = self.collections[batch.collection]
        names = list(c.field_names)
        geoms = shapely.to_wkb(shapely.set_srid(batch.geoms, c.source.srid), hex=True, include_srid=True)
        lines = [
            "\t".join([*(_text(v) for v in row[:-1]), row[-1]]) + "\n"
            for row in zip(*(batch.columns[n] for n in names), geoms.tolist(), strict=True)
        ]
        target = sql.SQL("COPY {} ({}) FROM STDIN").format(
            self._table(c), sql.SQL(", ").join(sql.Identifier(n) for n in [*names, c.source.geometry_field])
        )
        with self.conn.cursor().copy(target) as copy:
            for i in range(0, len(lines), 10_000):
                copy.write("".join(lines[i : i + 10_000]))

    def finish(self) -> None:
        """Primary keys, spatial indexes, statistics; then commit."""
        for c in self.collections.values():
            table = self._table(c)
            self.conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                table, sql.Identifier(c.source.id_field)))
            self.conn.execute(sql.SQL("CREATE INDEX {} ON {} USING gist ({})").format(
                sql.Identifier(f"{c.source.table}_{c.source.geometry_field}_gist"), table,
                sql.Identifier(c.source.geometry_field)))
        self.conn.commit()
        self.conn.autocommit = True
        for c in self.collections.values():
            self.conn.execute(sql.SQL("ANALYZE {}").format(self._table(c)))
        self.conn.close()

    def abort(self) -> None:
        """Roll back everything this load did."""
        try:
            self.conn.rollback()
        finally:
            self.conn.close()
