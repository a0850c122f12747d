"""The PostGIS statement behind ``Source.overlaps``: one statement per layer (``sql/overlaps.sql``).

Identifiers come from the catalog; the site (WKB), its zone and the restriction's values are bound
parameters. The row geometry is desensitized exactly as items are (``pg_geometry``) before it is
projected, intersected and measured (see ``server.sources.areas``).
"""

from __future__ import annotations

from typing import Any

import shapely
from psycopg import sql

from server.catalog import VectorCollection
from server.policy.model import Restriction
from server.policy.pgsql import pg_exclusion, pg_geometry
from server.sources.areas import MIN_OVERLAP_M2, Overlap, Site


def overlaps_statement(template: sql.SQL, c: VectorCollection, fields: tuple[str, ...],
                       restriction: Restriction) -> tuple[sql.Composed, dict[str, Any]]:
    """The composed statement for ``c`` and its restriction's parameters (the site's are added by the caller)."""
    src = c.source
    kept, params = pg_exclusion(restriction, "t")
    geometry = pg_geometry(sql.Identifier("t", src.geometry_field), restriction, src.srid,
                           src.geometry_type.startswith("Multi"))
    values = sql.SQL(", ").join(sql.Identifier("t", f) for f in fields) if fields else sql.SQL("NULL")
    statement = template.format(
        srid=sql.Literal(src.srid), id=sql.Identifier("t", src.id_field), values=values, geometry=geometry,
        table=sql.Identifier(src.table), geom_column=sql.Identifier(src.geometry_field),
        kept=kept if kept is not None else sql.SQL("true"),
    )
    return statement, params


def overlaps_from_rows(rows: list[tuple], fields: tuple[str, ...]) -> list[Overlap]:
    """Rows ``(id, *values, area)`` as overlaps, leaving out those below ``MIN_OVERLAP_M2``."""
    width = len(fields)
    return [Overlap(r[0], tuple(r[1:1 + width]), float(r[-1])) for r in rows
            if r[-1] is not None and r[-1] >= MIN_OVERLAP_M2]


def site_params(site: Site) -> dict[str, Any]:
    """The site's bound parameters: the whole site, and its parts with their zones."""
    return {"site": site.wkb, "parts": [shapely.to_wkb(part) for _, part in site.parts], "zones": site.zones}
