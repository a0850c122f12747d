"""The rows of a PostGIS page in a ``sortby`` order, read so that an index on (sort field, id) serves
every page from the cursor position on, and the page made of the statement's answer (``page_of``).

The keyset predicate (``server.sources.keyset``) is exact but, for a nullable leading key, is an OR
(NULL sorts after every value ascending) that PostgreSQL cannot turn into an index range. So the
rows are read in two parts, each a plain index range in the page's order, merged and cut to the
probe size: the rows whose leading key is not NULL, bounded by the cursor's value (``>=`` ascending,
``<=`` descending), and the rows whose leading key is NULL. Both parts also carry the whole predicate,
so the split only adds implied conditions and never changes the answer.

A bbox in the storage's own lon/lat is tested in two steps (``bbox_condition``): a row whose bounding
box lies inside the bbox shrunk by ``INNER_MARGIN`` intersects it for sure, read from the geometry's
header; only the rows near the edge pay for ``ST_Intersects`` on the whole geometry. The margin covers
the outward rounding of PostGIS's single-precision boxes (under 2e-5 degrees at any longitude), so the
shortcut never admits a row the exact test would refuse. The boxes are computed once per statement
(``once``), not for every row under a generic plan.

A filter with exact geometry tests (``PgCondition.near``) is read lazily: its candidates, the rows
meeting everything else and the tests' bounding-box overlap, are read and put in the page's order
first, and the exact tests run on them in that order only until the page is full. For a site of
1 km over 1,000,000 parcels that is about 150 exact tests rather than 1,100; the candidates of a
large area are sorted in full, which still costs less than testing them all.
"""

from __future__ import annotations

import orjson
from psycopg import sql

from server.filters.pgsql import INNER_MARGIN, PgCondition, once
from server.sources.base import ItemQuery, Page
from server.sources.keyset import SortKey

_ROWS = "SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT %(probe)s"
# OFFSET 0 keeps the outer condition out of the subquery, so it is tested on the ordered candidates
_LAZY = ("SELECT * FROM (SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} OFFSET 0) AS near "
         "WHERE {exact} ORDER BY {order} LIMIT %(probe)s")
_INNER = ("ixmin", "iymin", "ixmax", "iymax")


def bbox_condition(geom: sql.Composable, envelope: sql.Composable, exact: sql.Composable | None,
                   srid: int) -> sql.Composable:
    """Rows intersecting the bbox: ``exact`` is the polygon they must intersect when it is not the
    ``envelope`` itself (a bbox in another CRS); otherwise the shortcut above applies (``inner_box``)."""
    if exact is not None:
        return sql.SQL("{g} && {e} AND ST_Intersects({g}, {x})").format(g=geom, e=envelope, x=exact)
    inner = once(sql.SQL("ST_MakeEnvelope({}, {})").format(
        sql.SQL(", ").join(map(sql.Placeholder, _INNER)), sql.Literal(srid)))
    # CASE, not OR: an OR of two indexable tests becomes two index scans; the overlap is the one needed
    return sql.SQL("{g} && {e} AND CASE WHEN {g} @ {i} THEN true ELSE ST_Intersects({g}, {e}) END").format(
        g=geom, e=envelope, i=inner)


def inner_box(bbox: tuple[float, float, float, float]) -> dict[str, float | None]:
    """The parameters of the shrunk bbox; NULL (no shortcut, every row takes the exact test) when the
    bbox is too small to shrink."""
    xmin, ymin, xmax, ymax = map(float, bbox)
    if xmax - xmin <= 2 * INNER_MARGIN or ymax - ymin <= 2 * INNER_MARGIN:
        return dict.fromkeys(_INNER)
    box = (xmin + INNER_MARGIN, ymin + INNER_MARGIN, xmax - INNER_MARGIN, ymax - INNER_MARGIN)
    return dict(zip(_INNER, box, strict=True))


def _read(columns: sql.Composable, table: sql.Composable, where: list[sql.Composable], order: sql.Composable,
          condition: PgCondition | None) -> sql.Composable:
    """The SELECT of up to ``probe`` rows meeting ``where`` and the filter's ``condition``, in ``order``."""
    if condition is not None and condition.near is not None:
        candidates = sql.SQL(" AND ").join([*where, condition.near])
        return sql.SQL(_LAZY).format(columns=columns, table=table, where=candidates, order=order, exact=condition.exact)
    terms = [*where, condition.exact] if condition is not None else where
    return sql.SQL(_ROWS).format(columns=columns, table=table, order=order,
                                 where=sql.SQL(" AND ").join(terms) if terms else sql.SQL("true"))


def page_rows(columns: sql.Composable, table: sql.Composable, where: list[sql.Composable], order: sql.Composable,
              lead: SortKey | None, lead_null: bool | None, condition: PgCondition | None = None) -> sql.Composable:
    """The SELECT of up to ``probe`` rows in ``order`` meeting ``where`` and a filter's ``condition``.
    ``lead`` is the leading sort key when it is not the id (the rows are then read in the two parts
    above); ``lead_null`` whether the cursor's value of it is NULL (None without a cursor); the
    cursor's value is the parameter ``k0``."""
    if lead is None:
        return _read(columns, table, where, order, condition)
    column = sql.Identifier(lead.field)
    present: list[sql.Composable] = [sql.SQL("{} IS NOT NULL").format(column)]
    if lead_null is False:
        present.append(sql.SQL("{} <= %(k0)s" if lead.descending else "{} >= %(k0)s").format(column))
    elif lead_null and not lead.descending:
        present.append(sql.SQL("false"))  # after a NULL, ascending: only NULLs remain
    absent = [sql.SQL("{} IS NULL").format(column)]
    both = [_read(columns, table, [*where, *extra], order, condition) for extra in (present, absent)]
    return sql.SQL("SELECT * FROM (({}) UNION ALL ({})) AS parts ORDER BY {} LIMIT %(probe)s").format(
        both[0], both[1], order)


def page_of(q: ItemQuery, found: int, features: bytes, first: bytes | None, last: bytes | None) -> Page:
    """The page of a statement's answer: ``first``/``last`` are JSON ``[id, sort values...]``."""
    more = found > q.limit
    page = Page(features=features, number_returned=min(found, q.limit))
    if page.number_returned == 0 or first is None or last is None:
        page.number_matched = 0 if q.cursor is None else None
        return page
    (first_id, *first_values), (last_id, *last_values) = orjson.loads(first), orjson.loads(last)
    page.next_values, page.prev_values = tuple(last_values), tuple(first_values)
    if q.cursor is not None and not q.cursor.forward:
        page.prev_key, page.next_key = (first_id if more else None), last_id
    else:
        page.next_key = last_id if more else None
        page.prev_key = first_id if q.cursor is not None else None
    if q.cursor is None and not more:
        page.number_matched = found
    return page
