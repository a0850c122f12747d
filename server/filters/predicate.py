"""The typed tree as a Python predicate over one row, for the embedded store (shapely for geometry).

It gives the same answers as the SQL of ``server.filters.pgsql``: three-valued logic (``None`` is
unknown), code-point string order, double-precision arithmetic with division by zero unknown, and
the same GEOS predicates on the stored geometry. A row is a mapping of field name to the value as
SQLite returns it (dates as ISO text); the geometry is a shapely geometry in the storage CRS (lon/lat).
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from server.errors import InvalidParameter
from server.filters.tree import (
    Arith,
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

Row = Mapping[str, Any]
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "<>": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
OUT_OF_RANGE = "Parameter 'filter': a computed value is out of range (double precision overflow)."
_ARITH: dict[str, Callable[[float, float], float]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _typed(value: Any, kind: str) -> Any:
    """A stored value in its filter type (SQLite keeps dates as text and booleans as integers)."""
    if value is None:
        return None
    if kind == "number":
        return float(value)
    if kind == "boolean":
        return bool(value)
    if kind == "date":
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    if kind == "datetime":
        instant = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)
    return str(value)


def _finite(value: float) -> float:
    """The result of arithmetic, or the 400 PostgreSQL's double precision gives on overflow."""
    if not math.isfinite(value):
        raise InvalidParameter(OUT_OF_RANGE)
    return value


def like_regex(pattern: str) -> re.Pattern[str]:
    """A CQL2 LIKE pattern as a regular expression (``%``, ``_``, ``\\`` escapes)."""
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


class Evaluator:
    """Evaluates one tree over rows; compiled patterns and prepared geometries are kept."""

    def __init__(self, expr: Expr) -> None:
        self.expr = expr
        self._patterns: dict[str, re.Pattern[str]] = {}

    def __call__(self, row: Row, geometry: BaseGeometry | None) -> bool:
        """Whether the row matches (unknown does not)."""
        return self._eval(self.expr, row, geometry) is True

    def _value(self, node: Scalar, row: Row) -> Any:
        if isinstance(node, Prop):
            return _typed(row.get(node.name), node.type)
        if isinstance(node, Lit):
            return node.value
        return self._arith(node, row)

    def _arith(self, node: Arith, row: Row) -> float | None:
        left, right = self._value(node.left, row), self._value(node.right, row)
        if left is None or right is None:
            return None
        if node.op == "/":
            return None if right == 0 else _finite(left / right)
        return _finite(_ARITH[node.op](left, right))

    def _eval(self, node: Expr, row: Row, geometry: BaseGeometry | None) -> bool | None:
        if isinstance(node, Const):
            return node.value
        if isinstance(node, Logic):
            results = [self._eval(a, row, geometry) for a in node.args]
            decisive = node.op == "or"  # True decides an OR, False an AND
            if decisive in results:
                return decisive
            return None if None in results else not decisive
        if isinstance(node, Not):
            inner = self._eval(node.arg, row, geometry)
            return None if inner is None else not inner
        if isinstance(node, Spatial):
            return None if geometry is None else bool(getattr(shapely, node.op)(geometry, node.shape))
        if isinstance(node, Temporal):
            return _temporal(node, _typed(row.get(node.field.name), node.field.type))
        return self._scalar_condition(node, row)

    def _scalar_condition(self, node: Compare | Like | In | Between | IsNull, row: Row) -> bool | None:
        if isinstance(node, IsNull):
            return self._value(node.value, row) is None
        value = self._value(node.value if not isinstance(node, Compare) else node.left, row)
        if value is None:
            return None
        if isinstance(node, Compare):
            other = self._value(node.right, row)
            return None if other is None else _COMPARE[node.op](value, other)
        if isinstance(node, Like):
            pattern = self._patterns.get(node.pattern) or self._patterns.setdefault(
                node.pattern, like_regex(node.pattern))
            return pattern.fullmatch(value) is not None
        if isinstance(node, In):
            return value in {v.value for v in node.values}
        low, high = self._value(node.low, row), self._value(node.high, row)
        if low is None or high is None:
            return None if (low is None or value >= low) and (high is None or value <= high) else False
        return low <= value <= high


def _temporal(node: Temporal, t: Any) -> bool | None:
    if t is None:
        return None
    if node.op == "before":
        return node.start is not None and t < node.start
    if node.op == "after":
        return node.end is not None and t > node.end
    strict = node.op == "during"
    if node.start is not None and (t <= node.start if strict else t < node.start):
        return False
    return not (node.end is not None and (t >= node.end if strict else t > node.end))


def row_predicate(expr: Expr) -> Callable[[Row, BaseGeometry | None], bool]:
    """A function telling whether one row (and its stored geometry) matches the filter."""
    return Evaluator(expr)
