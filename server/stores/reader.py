"""Read a collection from a store in batches, as an edition may see it (rows, fields, geometry).

Both readers take the edition's ``Restriction`` of the collection as a required argument (an
unrestricted copy is ``Restriction.unrestricted(collection)``). The SQL selects only the columns it
shows and only the rows it keeps (the same compiled predicates the sources use); masking,
generalization and coordinate precision are applied in Python (``server.policy.desensitize``) before
a batch is handed on, so nothing above the edition is ever written anywhere.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import shapely
from psycopg import sql

from server.catalog import VectorCollection
from server.policy.desensitize import mask_value, reduce_geometries
from server.policy.model import Restriction, checked
from server.policy.pgsql import pg_exclusion_positional, sqlite_exclusion
from server.sources.gpkg_geometry import decode_gpkg_geometry
from server.stores.batches import Batch

BATCH = 5000


def _plain(value):
    """Dates and instants as ISO text (how both stores write them)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _non_empty(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(geometries, indices kept): snapping to a coarse grid may collapse a tiny feature to nothing."""
    keep = np.nonzero(~shapely.is_empty(geoms))[0]
    return geoms[keep], keep


def _batch(view: VectorCollection, names: tuple[str, ...], rows: list[tuple], wkbs: list[bytes],
           restriction: Restriction) -> Batch:
    geoms = reduce_geometries(shapely.from_wkb(wkbs), restriction, view.source.srid)
    geoms, keep = _non_empty(geoms)
    rows = [rows[i] for i in keep]
    columns = {n: [_plain(r[i]) for r in rows] for i, n in enumerate(names)}
    for name in restriction.masked:
        if name in columns:
            columns[name] = [mask_value(v) for v in columns[name]]
    return Batch(view.id, columns, geoms)


def gpkg_batches(path: Path, view: VectorCollection, *, restriction: Restriction,
                 size: int = BATCH) -> Iterator[Batch]:
    """Batches of ``view`` (the fields of both it and ``restriction``) from a GeoPackage, desensitized
    by ``restriction``."""
    restriction = checked(restriction, view)
    src = view.source
    names = restriction.select(view, view.field_names)
    cols = ", ".join(f'"{n}"' for n in (*names, src.geometry_field))
    kept, params = sqlite_exclusion(restriction)
    where = f" AND {kept}" if kept else ""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = conn.execute(
            f'SELECT {cols} FROM "{src.table}" WHERE "{src.geometry_field}" IS NOT NULL{where} ORDER BY fid', params
        )
        while rows := cur.fetchmany(size):
            yield _batch(view, names, [r[:-1] for r in rows], [decode_gpkg_geometry(r[-1]) for r in rows], restriction)
    finally:
        conn.close()


def pg_batches(url: str, view: VectorCollection, *, restriction: Restriction,
               size: int = BATCH) -> Iterator[Batch]:
    """Batches of ``view`` from a PostGIS table (a server-side cursor), desensitized by ``restriction``."""
    restriction = checked(restriction, view)
    src = view.source
    names = restriction.select(view, view.field_names)
    kept, params = pg_exclusion_positional(restriction)
    query = sql.SQL("SELECT {cols}, ST_AsBinary({g}) FROM {t} WHERE {g} IS NOT NULL AND {kept} ORDER BY {id}").format(
        cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
        g=sql.Identifier(src.geometry_field),
        t=sql.Identifier(src.table),
        kept=kept if kept is not None else sql.SQL("true"),
        id=sql.Identifier(src.id_field),
    )
    with psycopg.connect(url, connect_timeout=10) as conn, conn.cursor(name="onemap_release") as cur:
        cur.itersize = size
        cur.execute(query, params)
        while rows := cur.fetchmany(size):
            yield _batch(view, names, [r[:-1] for r in rows], [bytes(r[-1]) for r in rows], restriction)
