"""A ``Restriction`` compiled into SQL: PostGIS (``psycopg.sql``) and SQLite fragments.

Identifiers are field names from the catalog (validated against ``[a-z][a-z0-9_]*``) composed with
``sql.Identifier``; condition values are always bound parameters. A NULL value never matches a
condition, so rows with NULL in a rule's field are kept, as in ``RowCondition.matches``.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from server.policy.desensitize import OUTPUT_PRECISION, grid_size, tolerance
from server.policy.model import Restriction

PARAM_PREFIX = "rx"


def pg_exclusion(restriction: Restriction, alias: str | None = None,
                 prefix: str = "") -> tuple[sql.Composable | None, dict[str, Any]]:
    """A WHERE fragment keeping the rows not excluded (``None`` when nothing is) and its named parameters.

    Parameters are named ``<prefix>rx0``, ``<prefix>rx1``...; pass them with the statement's others.
    """
    if not restriction.exclude:
        return None, {}
    parts, params = [], {}
    for i, cond in enumerate(restriction.exclude):
        name = f"{prefix}{PARAM_PREFIX}{i}"
        column = sql.Identifier(alias, cond.field) if alias else sql.Identifier(cond.field)
        parts.append(sql.SQL("NOT coalesce({} = ANY({}), false)").format(column, sql.Placeholder(name)))
        params[name] = list(cond.values)
    return sql.SQL(" AND ").join(parts), params


def pg_exclusion_positional(
    restriction: Restriction, alias: str | None = None,
) -> tuple[sql.Composable | None, list[Any]]:
    """The same fragment with positional (``%s``) parameters, for statements that use them."""
    if not restriction.exclude:
        return None, []
    parts, params = [], []
    for cond in restriction.exclude:
        column = sql.Identifier(alias, cond.field) if alias else sql.Identifier(cond.field)
        parts.append(sql.SQL("NOT coalesce({} = ANY(%s), false)").format(column))
        params.append(list(cond.values))
    return sql.SQL(" AND ").join(parts), params


def pg_masked(column: sql.Composable) -> sql.Composable:
    """First character plus one asterisk per remaining character (at least one), as in ``mask_value``."""
    return sql.SQL("(left({c}, 1) || repeat('*', greatest(char_length({c}) - 1, 1)))").format(c=column)


def pg_property(name: str, restriction: Restriction, alias: str | None = None) -> sql.Composable:
    """The value expression of one output property: the column, masked when the restriction says so."""
    column = sql.Identifier(alias, name) if alias else sql.Identifier(name)
    return pg_masked(column) if name in restriction.masked else column


def pg_geometry(geom: sql.Composable, restriction: Restriction, srid: int, multi: bool = False) -> sql.Composable:
    """The geometry generalized and snapped to the precision grid as the restriction asks (the same
    GEOS operations as ``desensitize_geometries``; ``multi`` keeps a declared multi type multi)."""
    if restriction.generalize_m:
        tol = tolerance(restriction.generalize_m, srid)
        geom = sql.SQL("ST_SimplifyPreserveTopology({}, {})").format(geom, sql.Literal(tol))
    if restriction.precision is not None and restriction.precision < OUTPUT_PRECISION:
        grid = sql.Literal(grid_size(restriction.precision))
        geom = sql.SQL("ST_ReducePrecision(ST_MakeValid({}), {})").format(geom, grid)
    if multi and restriction.reduces_geometry:
        geom = sql.SQL("ST_Multi({})").format(geom)
    return geom


def sqlite_exclusion(restriction: Restriction, alias: str | None = None) -> tuple[str | None, list[Any]]:
    """A SQLite WHERE fragment keeping the rows not excluded, with its positional parameters."""
    if not restriction.exclude:
        return None, []
    parts, params = [], []
    for cond in restriction.exclude:
        column = f'"{cond.field}"' if alias is None else f'{alias}."{cond.field}"'
        marks = ", ".join("?" * len(cond.values))
        parts.append(f"NOT coalesce({column} IN ({marks}), 0)")
        params += list(cond.values)
    return " AND ".join(parts), params
