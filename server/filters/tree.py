"""The typed expression tree a CQL2 filter compiles to, before it becomes SQL or a Python predicate.

Every node is checked when built (``server.filters.parse``): properties are fields the caller may
filter on, with their catalog type; literals carry the type they compare as; spatial literals are
shapely geometries in CRS84. Backends (``pgsql``, ``predicate``) only translate, never validate.

Types: ``string``, ``number`` (catalog ``integer`` and ``number``), ``boolean``, ``date``,
``datetime``. Comparisons follow SQL's three-valued logic: a comparison with NULL is unknown, ``NOT``
of unknown is unknown, and a row matches only when the whole filter is true.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shapely.geometry.base import BaseGeometry

Value = str | float | bool | dt.date | dt.datetime


@dataclass(frozen=True)
class Prop:
    """A queryable field of the collection, with its filter type."""

    name: str
    type: str


@dataclass(frozen=True)
class Lit:
    """A literal value of a filter type (numbers are floats; dates and instants are UTC)."""

    value: Value
    type: str


@dataclass(frozen=True)
class Arith:
    """``left op right`` with op one of ``+ - * /`` on numbers; division by zero is NULL."""

    op: str
    left: Scalar
    right: Scalar
    type: str = "number"


Scalar = Prop | Lit | Arith


@dataclass(frozen=True)
class Compare:
    """``left op right`` with op one of ``= <> < <= > >=`` on two scalars of one type."""

    op: str
    left: Scalar
    right: Scalar


@dataclass(frozen=True)
class Like:
    """``value LIKE pattern``: ``%`` any run, ``_`` one character, ``\\`` escapes; case-sensitive."""

    value: Scalar
    pattern: str


@dataclass(frozen=True)
class In:
    """``value IN (values)``, the values literals of the value's type."""

    value: Scalar
    values: tuple[Lit, ...]


@dataclass(frozen=True)
class Between:
    """``value BETWEEN low AND high`` (both ends included)."""

    value: Scalar
    low: Scalar
    high: Scalar


@dataclass(frozen=True)
class IsNull:
    """``value IS NULL`` (true or false, never unknown)."""

    value: Scalar


@dataclass(frozen=True)
class Spatial:
    """``op(feature geometry, shape)``: op one of ``intersects within contains disjoint equals touches
    overlaps crosses`` (DE-9IM, as GEOS and PostGIS define them), ``shape`` in CRS84."""

    op: str
    shape: BaseGeometry


@dataclass(frozen=True)
class Temporal:
    """``op(field, [start, end])`` for a date or datetime field; an instant has ``start == end``, an
    open end is ``None``. op: ``intersects`` (start <= t <= end), ``before`` (t < start), ``after``
    (t > end), ``during`` (start < t < end)."""

    op: str
    field: Prop
    start: dt.date | dt.datetime | None
    end: dt.date | dt.datetime | None


@dataclass(frozen=True)
class Not:
    """Negation (unknown stays unknown)."""

    arg: Expr


@dataclass(frozen=True)
class Logic:
    """``and`` / ``or`` of two or more expressions."""

    op: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Const:
    """``TRUE`` or ``FALSE`` as a whole condition."""

    value: bool


Expr = Compare | Like | In | Between | IsNull | Spatial | Temporal | Not | Logic | Const


def fields_of(node: object) -> set[str]:
    """The names of the properties an expression reads."""
    if isinstance(node, Prop):
        return {node.name}
    if isinstance(node, Temporal):
        return {node.field.name}
    found: set[str] = set()
    for value in vars(node).values() if hasattr(node, "__dataclass_fields__") else ():
        for child in value if isinstance(value, tuple) else (value,):
            if hasattr(child, "__dataclass_fields__"):
                found |= fields_of(child)
    return found
