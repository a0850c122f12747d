"""``Source.overlaps`` for the embedded store: R-tree candidates, then pyproj and shapely.

Candidates come from the layer's R-tree by the site's envelope (restriction-excluded rows never
read); their geometries are desensitized as the caller's items are and measured in the site's GK
zone by ``server.sources.areas.overlap_areas``, the twin of the PostGIS statement.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import shapely

from server.catalog import VectorCollection
from server.policy.desensitize import desensitize_geometries
from server.policy.model import Restriction
from server.policy.pgsql import sqlite_exclusion
from server.sources.areas import MIN_OVERLAP_M2, SITE_SRID, Overlap, Site, overlap_areas, project
from server.sources.gpkg_geometry import decode_gpkg_geometry


def gpkg_overlaps(conn: sqlite3.Connection, c: VectorCollection, site: Site, fields: tuple[str, ...],
                  restriction: Restriction) -> list[Overlap]:
    """The rows of ``c`` kept by ``restriction`` that overlap ``site``, ordered by id."""
    src = c.source
    stored = site.geometry if src.srid == SITE_SRID else project(site.geometry, SITE_SRID, src.srid)
    minx, miny, maxx, maxy = stored.bounds
    kept, kept_params = sqlite_exclusion(restriction, "t")
    columns = ", ".join(f't."{f}"' for f in (src.id_field, src.geometry_field, *fields))
    sql = (f'SELECT {columns} FROM "{src.table}" AS t WHERE t.fid IN (SELECT id FROM '
           f'"rtree_{src.table}_{src.geometry_field}" WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?)')
    if kept:
        sql += f" AND {kept}"
    rows = conn.execute(sql + f' ORDER BY t."{src.id_field}"', (minx, maxx, miny, maxy, *kept_params)).fetchall()
    if not rows:
        return []
    geoms = shapely.from_wkb([decode_gpkg_geometry(r[1]) for r in rows])
    shapely.prepare(stored)
    touching = shapely.intersects(stored, geoms)
    areas = np.zeros(len(rows))
    if touching.any():
        seen = desensitize_geometries(geoms[touching], restriction, src.srid)
        areas[touching] = overlap_areas(seen, site, src.srid)
    return [Overlap(r[0], tuple(r[2:]), float(a)) for r, a in zip(rows, areas, strict=True) if a >= MIN_OVERLAP_M2]

