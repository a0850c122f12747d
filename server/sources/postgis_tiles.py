"""Vector tiles from PostGIS: every layer of a tile in one SQL statement.

A tile is ``SELECT (layer 1) || (layer 2) || ...``: each layer is an ``ST_AsMVT`` over the rows that
``ST_AsMVTGeom`` clipped (``sql/tile_layer.sql``), and MVT layers concatenate as bytes. A layer reads
the collection's overview for the tile's level when there is one (``sources/tile_overviews.py``,
built by ``sources/postgis_overviews.py``), otherwise the source table with its envelope filter in
the table's SRID. Composed statements are cached per shape (restriction included), so psycopg
prepares the ones that repeat; every tile value is a bound parameter.

The caller's restriction is applied in the statement: excluded rows are filtered with the read,
masked fields masked, and geometries generalized and snapped to the restriction's precision in the
storage CRS (``pg_geometry``, as items are) before the tile's own simplification and quantization.
Overviews are built from the full data, so their geometries go back to the storage CRS for that
step and the overview fast path (an affine transform of rows already on the tile grid) is not used.

When the store records data versions, a layer with an overview is
``CASE WHEN <overviews built from the current version> THEN (overview layer) ELSE (table layer) END``:
the check is two primary-key lookups evaluated once per statement, and only the branch taken runs
(PostgreSQL evaluates such subqueries lazily), so an edited collection reads its table at once, in
the same snapshot as its data, without another round trip.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cachetools import LRUCache
from psycopg import sql

from server.catalog import VectorCollection
from server.policy.model import Restriction
from server.policy.pgsql import pg_exclusion, pg_geometry, pg_masked
from server.sources.base import ReadLayer, TileRequest
from server.sources.postgis_schema import load_sql
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
    runtime_tolerance,
    usable_overview,
)

OVERVIEW_TTL_S = 30.0
Fetch = Callable[..., Awaitable[Any]]


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


def _order_id(c: VectorCollection) -> sql.Composable:
    col = sql.Identifier("c", c.source.id_field)
    id_field = c.field(c.source.id_field)
    if id_field is not None and id_field.type == "string":
        return sql.SQL('{} COLLATE "C"').format(col)
    return col


def _property(name: str, kind: str, masked: frozenset[str]) -> sql.Composable:
    """One tile property; a field the caller may see only masked is masked here, in the statement."""
    if name in masked:
        return sql.SQL("{} AS {}").format(pg_masked(sql.Identifier("c", name)), sql.Identifier(name))
    return _cast(name, kind)


def _fast(c: VectorCollection, req: TileRequest, overview: str | None, restriction: Restriction) -> bool:
    """Whether overview rows inside the tile may skip ``ST_AsMVTGeom`` (they lie on its grid as stored)."""
    return (overview is not None and req.srid == MERCATOR_SRID and req.extent == c.tiles.extent
            and not restriction.reduces_geometry)


def _geometry(c: VectorCollection, req: TileRequest, overview: str | None,
              restriction: Restriction) -> tuple[sql.Composable, sql.Composable, sql.Composable, int]:
    """(table, filter column, geometry expression desensitized and in the layer's CRS, filter SRID)."""
    src = c.source
    if overview is not None:
        g: sql.Composable = sql.Identifier("_geom")
        if restriction.reduces_geometry:  # overviews hold the full data: desensitize in the storage CRS
            stored = sql.SQL("ST_Transform({}, {})").format(g, sql.Literal(src.srid))
            reduced = pg_geometry(stored, restriction, src.srid)
            g = sql.SQL("ST_Transform({}, {})").format(reduced, sql.Literal(MERCATOR_SRID))
        return sql.Identifier(PG_SCHEMA, overview), sql.Identifier("_geom"), g, MERCATOR_SRID
    geometry = sql.Identifier(src.geometry_field)
    g = pg_geometry(geometry, restriction, src.srid)
    if not (src.srid == req.srid or (src.srid in GEOGRAPHIC and req.srid in GEOGRAPHIC)):
        g = sql.SQL("ST_Transform({}, {})").format(g, sql.Literal(req.srid))
    return sql.Identifier(src.table), geometry, g, src.srid


def _layer_sql(c: VectorCollection, req: TileRequest, overview: str | None, simplify: bool, prefix: str,
               restriction: Restriction) -> sql.Composed:
    """The statement for one layer; placeholders are named ``<prefix>*``."""
    src = c.source
    kept = pg_exclusion(restriction, prefix=prefix)[0]  # rows this caller may not see
    p = {k: sql.Placeholder(f"{prefix}{k}") for k in ("x0", "y0", "x1", "y1", "fx0", "fy0", "fx1", "fy1", "min", "cap")}
    kinds = {f.name: f.type for f in c.fields}
    columns = list(dict.fromkeys((src.id_field, *req.properties)))
    table, geometry, g, srid = _geometry(c, req, overview, restriction)
    tile_geom: sql.Composable
    if overview is not None:
        size: sql.Composable = sql.Identifier("_size")
        tile_geom = sql.SQL("ST_Transform(c._g, 4326)") if req.srid in GEOGRAPHIC else sql.SQL("c._g")
    else:
        size = _size_expr(src.geometry_type, g)
        tile_geom = sql.SQL("ST_SimplifyPreserveTopology(c._g, {})").format(sql.Placeholder(f"{prefix}tol")) \
            if simplify else sql.SQL("c._g")
    fast = _fast(c, req, overview, restriction)
    inside = sql.SQL("c._g @ ST_MakeEnvelope({}, {}, {}, {}, 3857)").format(p["fx0"], p["fy0"], p["fx1"], p["fy1"])
    affine = {k: sql.Placeholder(f"{prefix}{k}") if fast else sql.Literal(0) for k in ("sx", "sy", "ox", "oy")}
    return sql.SQL(load_sql("tile_layer")).format(  # trusted template
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


def _layer_params(c: VectorCollection, req: TileRequest, overview: str | None, tolerance: float, prefix: str,
                  restriction: Restriction) -> dict[str, Any]:
    filter_srid = MERCATOR_SRID if overview is not None else c.source.srid
    fbox = box_in(buffered(req.bounds, req.extent, req.buffer), req.srid, filter_srid)
    keys = ("x0", "y0", "x1", "y1", "fx0", "fy0", "fx1", "fy1")
    out: dict[str, Any] = {f"{prefix}{k}": float(v) for k, v in zip(keys, (*req.bounds, *fbox), strict=True)}
    out[f"{prefix}min"] = 0.0 if overview is not None else min_size(c.source.geometry_type, req.min_area)
    out[f"{prefix}cap"] = req.max_features
    if overview is None and tolerance > 0:
        out[f"{prefix}tol"] = float(tolerance)
    if _fast(c, req, overview, restriction):
        x0, y0, x1, y1 = req.bounds
        sx, sy = req.extent / (x1 - x0), req.extent / (y1 - y0)
        out.update({f"{prefix}sx": sx, f"{prefix}sy": -sy, f"{prefix}ox": -x0 * sx, f"{prefix}oy": y1 * sy})
    out.update(pg_exclusion(restriction, prefix=prefix)[1])
    return out


def _fresh_sql(c: VectorCollection) -> sql.Composed:
    """True when the collection's overviews were built from its current data version."""
    return sql.SQL(
        "coalesce((SELECT b.version = v.version FROM {} AS b JOIN {} AS v ON v.collection = b.collection"
        " WHERE b.collection = {}), false)"
    ).format(sql.Identifier(PG_SCHEMA, OVERVIEW_VERSIONS), sql.Identifier(DATA_VERSIONS), sql.Literal(c.id))


def _part_sql(layer: ReadLayer, overview: str | None, tol: float, checked: bool, i: int) -> sql.Composed:
    """One layer of the statement; with ``checked``, the overview branch only while it is fresh."""
    c, req, restriction = layer
    if overview is None or not checked:
        return sql.SQL("({})").format(_layer_sql(c, req, overview, tol > 0, f"l{i}_", restriction))
    return sql.SQL("(CASE WHEN {} THEN ({}) ELSE ({}) END)").format(
        _fresh_sql(c),
        _layer_sql(c, req, overview, False, f"l{i}_", restriction),
        _layer_sql(c, req, None, tol > 0, f"l{i}t_", restriction),
    )


def checks_versions(available: frozenset[str]) -> bool:
    """Whether the store records both data versions and the versions its overviews were built from."""
    return OVERVIEW_VERSIONS in available and DATA_VERSIONS in available


class TileStatements:
    """One PostGIS source's tile state: composed statements by shape, and the overview tables seen."""

    def __init__(self) -> None:
        self._statements: LRUCache[tuple, str] = LRUCache(maxsize=512)  # as text: composing costs per use
        self._overviews: tuple[float, frozenset[str]] | None = None

    def compose(self, layers: Sequence[ReadLayer], available: frozenset[str]) -> tuple[str, dict]:
        """The one statement (and its parameters) that builds a tile with these layers."""
        checked = checks_versions(available)
        available = available - {DATA_VERSIONS, OVERVIEW_VERSIONS}  # the overview tables alone
        chosen = [usable_overview(c, req.zoom, available) for c, req, _ in layers]
        tolerances = [runtime_tolerance(req.simplify, req.zoom, available) for _, req, _ in layers]
        key = tuple(
            (c.id, req.srid, req.extent, req.buffer, req.properties, ov, tol > 0, checked, restriction.key)
            for (c, req, restriction), ov, tol in zip(layers, chosen, tolerances, strict=True)
        )
        query = self._statements.get(key)
        if query is None:
            plan = enumerate(zip(layers, chosen, tolerances, strict=True))
            parts = [_part_sql(layer, ov, tol, checked, i) for i, (layer, ov, tol) in plan]
            query = self._statements[key] = sql.SQL("SELECT {}").format(sql.SQL(" || ").join(parts)).as_string(None)
        params: dict[str, Any] = {}
        for i, ((c, req, restriction), ov, tol) in enumerate(zip(layers, chosen, tolerances, strict=True)):
            params.update(_layer_params(c, req, ov, tol, f"l{i}_", restriction))
            if ov is not None and checked:
                params.update(_layer_params(c, req, None, tol, f"l{i}t_", restriction))
        return query, params

    async def available_overviews(self, fetch: Fetch) -> frozenset[str]:
        """Names of the tables in ``onemap_tiles`` (overviews and ``onemap_overview_versions``), plus
        ``onemap_versions`` when data versioning is installed (re-read every ``OVERVIEW_TTL_S`` seconds)."""
        hit = self._overviews
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
        self._overviews = (time.monotonic(), names)
        return names

    async def render(self, fetch: Fetch, layers: Sequence[ReadLayer]) -> bytes:
        """The MVT bytes for these layers, read with ``fetch(query, params)`` (one statement); b"" if empty.

        ``fetch`` is the source's statement runner (it maps timeouts and lost connections to 503).
        """
        if not layers:
            return b""
        query, params = self.compose(layers, await self.available_overviews(fetch))
        row = await fetch(query, params)
        return bytes(row[0]) if row and row[0] else b""
