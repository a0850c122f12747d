"""The typed tree as a PostGIS WHERE fragment: identifiers from the checked tree through
``sql.Identifier``, every value a named parameter (``f0``, ``f1``...).

String ordering (``<``, ``BETWEEN``...) uses the "C" collation, code-point order like the embedded
store. Arithmetic is in double precision; division by zero is NULL (unknown), never an error.
Filter geometries arrive as WKB in CRS84 and are compared with the stored geometry in its SRID. An
``S_INTERSECTS`` with a polygon over lon/lat storage first admits the rows whose bounding box lies in a
square inside the polygon (``inner_square``), as ``server.sources.postgis_page`` does for a bbox.

Filter geometries are computed once per statement (``once``): a parameter expression is otherwise
evaluated for every row under a prepared statement's generic plan (a 200-vertex site read from WKB
for each candidate row). Next to the condition, the compiler gives a cheaper one every matching row
also meets, without the exact geometry tests (``PgCondition.near``): a page can take its candidates
in order by the cheap one and test exactly only until the page is full (``server.sources.postgis_page``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import shapely
from psycopg import sql
from shapely.geometry import MultiPolygon, Polygon

from server.filters.tree import (
    Between,
    Compare,
    Const,
    Expr,
    In,
    IsNull,
    Like,
    Lit,
    Logic,
    Not,
    Prop,
    Scalar,
    Spatial,
    Temporal,
)

_SPATIAL = {
    "intersects": "ST_Intersects", "within": "ST_Within", "contains": "ST_Contains", "disjoint": "ST_Disjoint",
    "equals": "ST_Equals", "touches": "ST_Touches", "overlaps": "ST_Overlaps", "crosses": "ST_Crosses",
}
_C = sql.SQL(' COLLATE "C"')
# degrees: more than the outward rounding of PostGIS's single-precision bounding boxes (under 2e-5 at any
# longitude), so a box tested with ``@`` is never taken for larger than it is
INNER_MARGIN = 1e-4
_PG_TYPES = {"string": "text", "number": "double precision", "boolean": "boolean", "date": "date",
             "datetime": "timestamptz"}


class PgFilter:
    """Compiles one tree; ``params`` collects the bound values as it goes."""

    def __init__(self, geometry: str, srid: int, lonlat: bool, prefix: str = "f") -> None:
        self.geometry = sql.Identifier(geometry)
        self.srid = srid
        self.lonlat = lonlat
        self.prefix = prefix
        self.params: dict[str, Any] = {}

    def _param(self, value: Any) -> sql.Placeholder:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)

    def scalar(self, node: Scalar) -> sql.Composable:
        """A value expression."""
        if isinstance(node, Prop):
            return sql.Identifier(node.name)
        if isinstance(node, Lit):  # typed, so that literal-to-literal comparisons need no inference
            return sql.SQL("{}::{}").format(self._param(node.value), sql.SQL(_PG_TYPES[node.type]))
        left, right = self.scalar(node.left), self.scalar(node.right)
        if node.op == "/":
            return sql.SQL("({}::double precision / NULLIF({}::double precision, 0))").format(left, right)
        return sql.SQL("({}::double precision {} {}::double precision)").format(left, sql.SQL(node.op), right)

    def _ordered(self, node: Scalar) -> sql.Composable:
        value = self.scalar(node)
        return sql.Composed([value, _C]) if node.type == "string" else value

    def both(self, node: Expr) -> tuple[sql.Composable, sql.Composable | None]:
        """A condition and a necessary one without its exact geometry tests: the same object when it has
        none to leave out, ``None`` when no cheaper condition is implied (a test under ``NOT``)."""
        if isinstance(node, Logic):
            pairs = [self.both(a) for a in node.args]
            joiner = sql.SQL(" AND " if node.op == "and" else " OR ")
            exact = sql.SQL("({})").format(joiner.join(e for e, _ in pairs))
            if all(e is n for e, n in pairs):
                return exact, exact
            nears = [n for _, n in pairs if n is not None]
            if node.op == "or" and len(nears) < len(pairs):  # a disjunct implies nothing cheaper
                return exact, None
            return exact, (sql.SQL("({})").format(joiner.join(nears)) if nears else None)
        if isinstance(node, Not):
            inner, near = self.both(node.arg)
            exact = sql.SQL("(NOT {})").format(inner)
            return exact, (exact if near is inner else None)
        if isinstance(node, Spatial):
            return self._spatial(node)
        simple = self._simple(node)
        return simple, simple

    def _simple(self, node: Compare | Like | In | Between | IsNull | Temporal | Const) -> sql.Composable:
        if isinstance(node, Const):
            return sql.SQL("true" if node.value else "false")
        if isinstance(node, Compare):
            left = self._ordered(node.left) if node.op not in ("=", "<>") else self.scalar(node.left)
            return sql.SQL("({} {} {})").format(left, sql.SQL(node.op), self.scalar(node.right))
        if isinstance(node, Like):
            return sql.SQL("({} LIKE {})").format(self.scalar(node.value), self._param(node.pattern))
        if isinstance(node, In):
            values = self._param([v.value for v in node.values])
            return sql.SQL("({} = ANY({}))").format(self.scalar(node.value), values)
        if isinstance(node, Between):
            return sql.SQL("({} BETWEEN {} AND {})").format(
                self._ordered(node.value), self.scalar(node.low), self.scalar(node.high))
        if isinstance(node, IsNull):
            return sql.SQL("({} IS NULL)").format(self.scalar(node.value))
        return self._temporal(node)

    def _spatial(self, node: Spatial) -> tuple[sql.Composable, sql.Composable]:
        """The test, and the bounding boxes' overlap it implies (every predicate but disjoint does)."""
        shape: sql.Composable = sql.SQL("ST_GeomFromWKB({}, {})").format(
            self._param(shapely.to_wkb(node.shape)), sql.Literal(self.srid if self.lonlat else 4326))
        if not self.lonlat:
            shape = sql.SQL("ST_Transform({}, {})").format(shape, sql.Literal(self.srid))
        shape = once(shape)
        test = sql.SQL("{}({}, {})").format(sql.SQL(_SPATIAL[node.op]), self.geometry, shape)
        if node.op == "disjoint":
            return test, test
        near = sql.SQL("{} && {}").format(self.geometry, shape)
        if node.op != "intersects" or not self.lonlat or not isinstance(node.shape, (Polygon, MultiPolygon)):
            return test, near
        inner = once(sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})").format(
            *(self._param(v) for v in inner_square(node.shape)), sql.Literal(self.srid)))
        # CASE, not OR: with no inner square (NULL), OR would make a row that misses the polygon unknown
        # rather than false, and NOT of it would drop the row
        return sql.SQL("({n} AND CASE WHEN {g} @ {i} THEN true ELSE {t} END)").format(
            n=near, g=self.geometry, i=inner, t=test), near

    def _temporal(self, node: Temporal) -> sql.Composable:
        t = sql.Identifier(node.field.name)
        parts: list[sql.Composable] = []
        if node.op == "before":
            if node.start is None:
                return sql.SQL("({} IS NULL AND NULL)").format(t)
            parts.append(sql.SQL("{} < {}").format(t, self._param(node.start)))
        elif node.op == "after":
            if node.end is None:
                return sql.SQL("({} IS NULL AND NULL)").format(t)
            parts.append(sql.SQL("{} > {}").format(t, self._param(node.end)))
        else:
            low, high = (">=", "<=") if node.op == "intersects" else (">", "<")
            if node.start is not None:
                parts.append(sql.SQL("{} {} {}").format(t, sql.SQL(low), self._param(node.start)))
            if node.end is not None:
                parts.append(sql.SQL("{} {} {}").format(t, sql.SQL(high), self._param(node.end)))
        if not parts:
            parts.append(sql.SQL("{t} = {t}").format(t=t))
        return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def inner_square(polygon: Polygon | MultiPolygon) -> tuple[float | None, ...]:
    """An axis-parallel square inside ``polygon`` (in its largest inscribed circle), shrunk by ``INNER_MARGIN``:
    a row whose bounding box lies in it intersects the polygon for sure, so only the rows near the edge
    pay for the exact test. NULLs (no shortcut) when the polygon is too thin for one."""
    minx, miny, maxx, maxy = polygon.bounds
    radius_line = shapely.maximum_inscribed_circle(polygon, max(maxx - minx, maxy - miny) / 100)
    (cx, cy), radius = radius_line.coords[0], radius_line.length
    half = radius / math.sqrt(2) - INNER_MARGIN
    square = (cx - half, cy - half, cx + half, cy + half)
    if half <= 0 or not polygon.contains(shapely.box(*square)):
        return (None, None, None, None)
    return square


def once(expression: sql.Composable) -> sql.Composable:
    """``expression`` (of bound values only) as a scalar subquery: PostgreSQL computes it once per
    statement (an InitPlan), where a generic plan would compute it for every row it tests."""
    return sql.SQL("(SELECT {})").format(expression)


@dataclass(frozen=True)
class PgCondition:
    """A filter's WHERE fragment (``exact``), its named parameters, and ``near``: a condition every
    row meeting ``exact`` meets, without its exact geometry tests (``None`` when there is none to
    leave out, or nothing cheaper is implied)."""

    exact: sql.Composable
    near: sql.Composable | None
    params: dict[str, Any]


def pg_filter(expr: Expr, geometry: str, srid: int, lonlat: bool) -> PgCondition:
    """The condition of a filter on a table whose geometry column is ``geometry`` in ``srid``
    (``lonlat``: stored as lon/lat degrees, where CRS84 coordinates apply as they are)."""
    compiler = PgFilter(geometry, srid, lonlat)
    exact, near = compiler.both(expr)
    return PgCondition(exact, None if near is exact else near, compiler.params)
