"""Keyset paging for any sort order: the ORDER BY and the "rows after this one" predicate, for both
backends.

A page is ordered by the requested sort keys, then by the id field ascending (the tie breaker that
makes the order total). NULL sorts after every value in an ascending key and before every value in a
descending one (PostgreSQL's default; SQLite is told so explicitly), so reversing every direction
(a ``prev`` page) is again the same convention. The cursor carries the boundary row's key values;
the rows after it are, for keys k1..kn with boundary values v1..vn::

    k1 > v1  OR  (k1 = v1 AND k2 > v2)  OR ...  OR  (k1 = v1 AND ... AND id > v_id)

with ``>`` read in each key's direction and NULL handled as above. ``terms`` builds that predicate
as plain data; ``pg_after``/``sqlite_after`` render it with every value a bound parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from server.catalog import VectorCollection
from server.errors import InvalidParameter


@dataclass(frozen=True)
class SortKey:
    """One ``sortby`` key: a field name from the catalog and its direction."""

    field: str
    descending: bool = False

    @property
    def token(self) -> str:
        """``+field`` or ``-field``."""
        return ("-" if self.descending else "+") + self.field


Atom = tuple[str, str, int | None]  # (column, operator, index of the bound value or None)
Either = list[Atom]  # a disjunction of atoms
Predicate = list[list[Either]]  # alternatives (OR) of conjunctions (AND) of disjunctions


def order_keys(sortby: Sequence[SortKey], id_field: str, forward: bool) -> list[SortKey]:
    """The full order of a page: the sort keys up to the id field, which ends it (ascending unless a
    key says otherwise); every direction reversed when reading backwards."""
    keys: list[SortKey] = []
    for k in sortby:
        keys.append(k)
        if k.field == id_field:
            break
    else:
        keys.append(SortKey(id_field))
    if forward:
        return keys
    return [SortKey(k.field, not k.descending) for k in keys]


def _after(key: SortKey, null: bool, index: int, nullable: bool) -> Either | None:
    """Rows strictly after the value at ``index`` in this key's direction (None: no row is)."""
    if null:
        return [(key.field, "is not null", None)] if key.descending else None
    if key.descending or not nullable:
        return [(key.field, "<" if key.descending else ">", index)]
    return [(key.field, ">", index), (key.field, "is null", None)]


def terms(keys: Sequence[SortKey], values: Sequence[Any]) -> Predicate:
    """The "after the boundary row" predicate (see the module doc) as plain data; the last key is the
    id, never NULL."""
    alternatives: Predicate = []
    equal: list[Either] = []
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        after = _after(key, value is None, i, nullable=i < len(keys) - 1)
        if after is not None:
            alternatives.append([*equal, after])
        equal.append([(key.field, "is null", None)] if value is None else [(key.field, "=", i)])
    return alternatives


def _pg_atom(atom: Atom) -> sql.Composable:
    column, op, index = atom
    if index is None:
        return sql.SQL("{} " + op.upper()).format(sql.Identifier(column))
    return sql.SQL("{} " + op + " {}").format(sql.Identifier(column), sql.Placeholder(f"k{index}"))


def pg_after(keys: Sequence[SortKey], values: Sequence[Any]) -> tuple[sql.Composable, dict[str, Any]]:
    """The predicate for PostgreSQL, values as named parameters ``k0``, ``k1``..."""
    ors = [
        sql.SQL("({})").format(sql.SQL(" AND ").join(
            sql.SQL("({})").format(sql.SQL(" OR ").join(_pg_atom(a) for a in either)) for either in conj
        ))
        for conj in terms(keys, values)
    ]
    params = {f"k{i}": v for i, v in enumerate(values) if v is not None}
    return sql.SQL("({})").format(sql.SQL(" OR ").join(ors) if ors else sql.SQL("false")), params


def _sqlite_atom(atom: Atom, params: list[Any], values: Sequence[Any]) -> str:
    column, op, index = atom
    if index is None:
        return f'"{column}" {op.upper()}'
    params.append(values[index])
    return f'"{column}" {op} ?'


def sqlite_after(keys: Sequence[SortKey], values: Sequence[Any]) -> tuple[str, list[Any]]:
    """The predicate for SQLite, with its positional parameters."""
    params: list[Any] = []
    ors = [
        "(" + " AND ".join("(" + " OR ".join(_sqlite_atom(a, params, values) for a in either) + ")"
                           for either in conj) + ")"
        for conj in terms(keys, values)
    ]
    return "(" + (" OR ".join(ors) if ors else "0") + ")", params


def pg_order(keys: Sequence[SortKey]) -> sql.Composable:
    """ORDER BY items for PostgreSQL."""
    return sql.SQL(", ").join(
        sql.SQL("{} DESC NULLS FIRST" if k.descending else "{} ASC NULLS LAST").format(sql.Identifier(k.field))
        for k in keys
    )


def sqlite_order(keys: Sequence[SortKey]) -> str:
    """ORDER BY items for SQLite."""
    return ", ".join(f'"{k.field}" {"DESC NULLS FIRST" if k.descending else "ASC NULLS LAST"}' for k in keys)


def typed_values(collection: VectorCollection, keys: Sequence[SortKey], values: Sequence[Any]) -> list[Any]:
    """Cursor values (as JSON carried them) in the types of their fields; a foreign cursor is a 400."""
    out: list[Any] = []
    try:
        for key, value in zip(keys, values, strict=True):
            spec = collection.field(key.field)
            out.append(None if value is None or spec is None else _typed(spec.type, value))
    except (ValueError, TypeError):
        raise InvalidParameter("Parameter 'cursor' is not a cursor this server issued.") from None
    return out


def _typed(kind: str, value: Any) -> Any:
    if kind == "date":
        return dt.date.fromisoformat(str(value)[:10])
    if kind == "datetime":
        return dt.datetime.fromisoformat(str(value))
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise TypeError
        return value
    if not isinstance(value, str):
        raise TypeError
    return value
