"""The PostGIS statement behind ``Source.overlaps``: one statement per layer (``sql/overlaps.sql``).

Identifiers come from the catalog; the site (WKB), its zone and the restriction's values are bound
parameters. The row geometry is desensitized exactly as items are (``pg_geometry``) before it is
projected, intersected and measured (see ``server.sources.areas``).
"""

from __future__ import annotations

from typing import Any

import shapely
from cachetools import LRUCache
from psycopg import sql

from server.catalog import VectorCollection
from server.policy.model import Restriction
from server.policy.pgsql import pg_exclusion, pg_geometry
from server.sources.areas import MIN_OVERLAP_M2, Overlap, Site
from server.sources.base import AreaLayer
from server.sources.postgis_schema import template


def overlaps_statement(template: sql.SQL, c: VectorCollection, fields: tuple[str, ...],
                       restriction: Restriction, prefix: str = "", **extra: Any) -> tuple[sql.Composed, dict[str, Any]]:
    """The composed statement for ``c`` and its restriction's parameters (the site's are added by the caller;
    ``prefix`` names the restriction's parameters apart, ``extra`` fills more of the template)."""
    src = c.source
    kept, params = pg_exclusion(restriction, "t", prefix=prefix)
    geometry = pg_geometry(sql.Identifier("t", src.geometry_field), restriction, src.srid,
                           src.geometry_type.startswith("Multi"))
    values = sql.SQL(", ").join(sql.Identifier("t", f) for f in fields) if fields else sql.SQL("NULL")
    statement = template.format(
        srid=sql.Literal(src.srid), id=sql.Identifier("t", src.id_field), values=values, geometry=geometry,
        table=sql.Identifier(src.table), geom_column=sql.Identifier(src.geometry_field),
        kept=kept if kept is not None else sql.SQL("true"), **extra,
    )
    return statement, params


def many_statement(outer: sql.SQL, branch: sql.SQL, layers: list[AreaLayer]) -> tuple[sql.Composed, dict[str, Any]]:
    """One statement measuring every layer (``sql/overlaps_many.sql``), each a branch tagged by its index;
    a layer without fields gets ``NULL`` values."""
    branches, params = [], {}
    for i, (c, fields, restriction) in enumerate(layers):
        part, own = overlaps_statement(branch, c, fields, restriction, prefix=f"l{i}_", layer=sql.Literal(i))
        branches.append(part)
        params.update(own)
    return outer.format(layers=sql.SQL(" UNION ALL ").join(branches)), params


def many_from_rows(rows: list[tuple], count: int) -> list[list[Overlap]]:
    """Rows ``(layer, id, values, area)`` as each layer's overlaps, leaving out those below ``MIN_OVERLAP_M2``."""
    out: list[list[Overlap]] = [[] for _ in range(count)]
    for layer, key, values, area in rows:
        if area is not None and area >= MIN_OVERLAP_M2:
            out[layer].append(Overlap(key, tuple(values), float(area)))
    return out


def overlaps_from_rows(rows: list[tuple], fields: tuple[str, ...]) -> list[Overlap]:
    """Rows ``(id, *values, area)`` as overlaps, leaving out those below ``MIN_OVERLAP_M2``."""
    width = len(fields)
    return [Overlap(r[0], tuple(r[1:1 + width]), float(r[-1])) for r in rows
            if r[-1] is not None and r[-1] >= MIN_OVERLAP_M2]


def site_params(site: Site) -> dict[str, Any]:
    """The site's bound parameters: the whole site, and its parts with their zones."""
    return {"site": site.wkb, "parts": [shapely.to_wkb(part) for _, part in site.parts], "zones": site.zones}


class AreaStatements:
    """The overlaps statements as text, composed once per shape of their layers and restrictions (the
    restrictions' values and the site are bound parameters, computed per call)."""

    def __init__(self) -> None:
        self._texts: LRUCache[tuple, str] = LRUCache(maxsize=256)

    def one(self, c: VectorCollection, fields: tuple[str, ...], restriction: Restriction,
            site: Site) -> tuple[str, dict[str, Any]]:
        """``sql/overlaps.sql`` for one layer, and its parameters."""
        key = ("one", c.id, fields, restriction.key)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = overlaps_statement(template("overlaps"), c, fields, restriction)[0].as_string()
        return text, {**pg_exclusion(restriction, "t")[1], **site_params(site)}

    def many(self, layers: list[AreaLayer], site: Site) -> tuple[str, dict[str, Any]]:
        """``sql/overlaps_many.sql`` for several layers, and its parameters."""
        key = ("many", *((c.id, fields, r.key) for c, fields, r in layers))
        text = self._texts.get(key)
        if text is None:
            composed = many_statement(template("overlaps_many"), template("overlaps_layer"), layers)[0]
            text = self._texts[key] = composed.as_string()
        params: dict[str, Any] = {}
        for i, (_, _, r) in enumerate(layers):
            params.update(pg_exclusion(r, "t", prefix=f"l{i}_")[1])
        return text, {**params, **site_params(site)}
