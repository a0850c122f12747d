"""CQL2-JSON to the typed tree, checked against the fields the caller may filter on.

``Fields`` maps each queryable property (visible to the caller and not masked) to its catalog type;
anything else - a hidden field as much as a misspelt one - is the same unknown-property error.
Geometries are GeoJSON objects or ``BBOX`` in CRS84; they must parse and be valid.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, shape
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
from server.params import parse_instant

Convert = Callable[[BaseGeometry], BaseGeometry]
COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")
ARITHMETIC = ("+", "-", "*", "/")
SPATIAL = ("intersects", "within", "contains", "disjoint", "equals", "touches", "overlaps", "crosses")
TEMPORAL = ("intersects", "before", "after", "during")
_MIRROR = {"within": "contains", "contains": "within"}
_TYPES = {"integer": "number", "number": "number", "string": "string", "boolean": "boolean",
          "date": "date", "datetime": "datetime"}


def _fail(message: str) -> InvalidParameter:
    return InvalidParameter(f"Parameter 'filter': {message}")


@dataclass(frozen=True)
class Fields:
    """What a filter may name: queryable properties (name -> catalog type) and the geometry's names."""

    collection: str
    types: Mapping[str, str]
    geometry: frozenset[str]

    def prop(self, name: Any) -> Prop:
        """The property, or the unknown-property error (the same for hidden and missing fields)."""
        if not isinstance(name, str) or name not in self.types:
            raise _fail(f"unknown property {name!r} in collection '{self.collection}'.")
        return Prop(name, _TYPES[self.types[name]])


def _describe(node: Scalar) -> str:
    if isinstance(node, Lit):
        return f"{str(node.value)[:40]!r} ({node.type})"
    return f"{node.name} ({node.type})" if isinstance(node, Prop) else f"an arithmetic ({node.type}) value"


def _temporal_literal(node: Any) -> Lit | None:
    if isinstance(node, dict) and len(node) == 1 and ("date" in node or "timestamp" in node):
        text = node.get("date") or node.get("timestamp")
        if "date" in node:
            try:
                return Lit(dt.date.fromisoformat(str(text)), "date")
            except ValueError:
                raise _fail(f"DATE({text!r}) is not a date (YYYY-MM-DD).") from None
        return Lit(parse_instant(str(text), "filter"), "datetime")
    return None


def _literal(node: Any) -> Lit:
    if isinstance(node, bool):
        return Lit(node, "boolean")
    if isinstance(node, (int, float)):
        if not math.isfinite(node):
            raise _fail("numbers must be finite.")
        return Lit(float(node), "number")
    if isinstance(node, str):
        return Lit(node, "string")
    found = _temporal_literal(node)
    if found is None:
        raise _fail(f"expected a property or a value, found {_kind(node)}.")
    return found


def _kind(node: Any) -> str:
    if node is None:
        return "NULL (use IS NULL)"
    if isinstance(node, dict) and "op" in node:
        return f"function {str(node['op']).upper()!r}"
    return "a geometry" if isinstance(node, dict) and ("type" in node or "bbox" in node) else "an unsupported value"


def _coerce(lit: Lit, target: str) -> Lit:
    """A date or instant literal in the other temporal type (an instant's UTC date, a date's midnight)."""
    if lit.type == target or {lit.type, target} != {"date", "datetime"}:
        return lit
    if target == "date":
        assert isinstance(lit.value, dt.datetime)
        return Lit(lit.value.astimezone(dt.UTC).date(), "date")
    assert isinstance(lit.value, dt.date)
    return Lit(dt.datetime.combine(lit.value, dt.time(), dt.UTC), "datetime")


class Builder:
    """Turns one CQL2-JSON document into an ``Expr`` for ``fields``."""

    def __init__(self, fields: Fields, to_crs84: Convert | None = None) -> None:
        self.fields = fields
        self.to_crs84 = to_crs84

    def scalar(self, node: Any) -> Scalar:
        """A property, a literal or arithmetic on numbers."""
        if isinstance(node, dict) and "property" in node:
            return self.fields.prop(node["property"])
        if isinstance(node, dict) and node.get("op") in ARITHMETIC:
            left, right = self._pair(node)
            for side in (left, right):
                if side.type != "number":
                    raise _fail(f"arithmetic ({node['op']}) needs numbers, not {_describe(side)}.")
            return Arith(node["op"], left, right)
        if isinstance(node, dict) and "op" in node:
            raise _fail(f"unknown function {str(node['op']).upper()!r}.")
        return _literal(node)

    def _args(self, node: dict, count: int | None = None) -> list:
        args = node.get("args")
        if not isinstance(args, list) or (count is not None and len(args) != count):
            raise _fail(f"{str(node.get('op')).upper()} takes {count} arguments.")
        return args

    def _pair(self, node: dict) -> tuple[Scalar, Scalar]:
        a, b = (self.scalar(x) for x in self._args(node, 2))
        return self._same(a, b, str(node["op"]))

    def _same(self, a: Scalar, b: Scalar, op: str) -> tuple[Scalar, Scalar]:
        if isinstance(b, Lit):
            b = _coerce(b, a.type)
        if isinstance(a, Lit):
            a = _coerce(a, b.type)
        if a.type != b.type:
            raise _fail(f"cannot compare {_describe(a)} with {_describe(b)} ({op}).")
        return a, b

    def expr(self, node: Any) -> Expr:
        """A condition: true, false or unknown for each row."""
        if isinstance(node, bool):
            return Const(node)
        if not isinstance(node, dict) or not isinstance(node.get("op"), str):
            raise _fail(f"expected a condition, found {_kind(node)}.")
        op = node["op"].lower()
        if op in ("and", "or"):
            args = self._args(node)
            if len(args) < 2:
                raise _fail(f"{op.upper()} takes two or more conditions.")
            return Logic(op, tuple(self.expr(a) for a in args))
        if op == "not":
            return Not(self.expr(self._args(node, 1)[0]))
        if op in COMPARISONS:
            return Compare(op, *self._pair(node))
        if op.startswith("s_") and op[2:] in SPATIAL:
            return self._spatial(op[2:], self._args(node, 2))
        if op.startswith("t_") and op[2:] in TEMPORAL:
            return self._temporal(op[2:], self._args(node, 2))
        return self._advanced(op, node)

    def _advanced(self, op: str, node: dict) -> Expr:
        if op == "like":
            value, pattern = (self.scalar(a) for a in self._args(node, 2))
            if value.type != "string" or not isinstance(pattern, Lit) or pattern.type != "string":
                raise _fail("LIKE compares a string property with a string pattern.")
            assert isinstance(pattern.value, str)
            return Like(value, pattern.value)
        if op == "in":
            value_node, values = self._args(node, 2)
            value = self.scalar(value_node)
            if not isinstance(values, list) or not values:
                raise _fail("IN takes a non-empty list of values.")
            lits = tuple(self._same(value, _literal(v), "IN")[1] for v in values)
            return In(value, lits)  # type: ignore[arg-type]  # _literal gives literals
        if op == "between":
            value, low, high = (self.scalar(a) for a in self._args(node, 3))
            value, low = self._same(value, low, "BETWEEN")
            value, high = self._same(value, high, "BETWEEN")
            return Between(value, low, high)
        if op == "isnull":
            return IsNull(self.scalar(self._args(node, 1)[0]))
        raise _fail(f"unknown function {op.upper()!r}.")

    def _spatial(self, op: str, args: list) -> Spatial:
        first, second = args
        if self._is_geometry_property(second) and not self._is_geometry_property(first):
            first, second, op = second, first, _MIRROR.get(op, op)
        if not self._is_geometry_property(first):
            if isinstance(first, dict) and "property" in first:
                self.fields.prop(first["property"])  # the unknown-property error
            raise _fail(f"S_{op.upper()} needs the geometry property ({', '.join(sorted(self.fields.geometry))}).")
        return Spatial(op, _geometry(second, self.to_crs84))

    def _is_geometry_property(self, node: Any) -> bool:
        return isinstance(node, dict) and node.get("property") in self.fields.geometry

    def _temporal(self, op: str, args: list) -> Temporal:
        prop = self.scalar(args[0])
        if not isinstance(prop, Prop) or prop.type not in ("date", "datetime"):
            raise _fail(f"T_{op.upper()} needs a date or timestamp property first.")
        second = args[1]
        if isinstance(second, dict) and "interval" in second:
            start, end = _interval(second["interval"], prop.type)
        else:
            lit = _temporal_literal(second)
            if lit is None:
                raise _fail(f"T_{op.upper()} needs a DATE, TIMESTAMP or INTERVAL, found {_kind(second)}.")
            start = end = _coerce(lit, prop.type).value
        if op == "during" and (start == end and start is not None):
            raise _fail("T_DURING needs an INTERVAL.")
        if start is not None and end is not None and start > end:
            raise _fail("the INTERVAL starts after it ends.")
        return Temporal(op, prop, start, end)


def _interval(ends: Any, target: str) -> tuple[Any, Any]:
    if not isinstance(ends, list) or len(ends) != 2:
        raise _fail("INTERVAL takes a start and an end.")
    out: list[Any] = []
    for end in ends:
        if end in ("..", None):
            out.append(None)
            continue
        text = end.get("date") or end.get("timestamp") if isinstance(end, dict) else end
        if not isinstance(text, str):
            raise _fail("INTERVAL ends are dates, timestamps or '..'.")
        kind = "date" if len(text) == 10 else "timestamp"
        out.append(_coerce(_temporal_literal({kind: text}) or Lit(text, "string"), target).value)
    return out[0], out[1]


def _bbox(values: list) -> BaseGeometry:
    """A 4-number (or 6-number, 3D) CQL2 BBOX as a polygon."""
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or values[0] > values[2] or values[1] > values[3]:
        raise ValueError("not a bbox")
    return box(*values)


def _polygon(rings: list) -> Polygon:
    arrays = [numpy.asarray(ring, dtype=float) for ring in rings]
    return Polygon(arrays[0], arrays[1:])


def _shape(node: dict) -> BaseGeometry:
    """A GeoJSON geometry as shapely's: polygons through arrays (shapely reads nested lists point by point,
    which for a 200-vertex site costs more than the rest of the filter's checks)."""
    if node.get("type") == "Polygon":
        return _polygon(node["coordinates"])
    if node.get("type") == "MultiPolygon":
        return MultiPolygon([_polygon(rings) for rings in node["coordinates"]])
    return shape(node)


def _geometry(node: Any, to_crs84: Convert | None) -> BaseGeometry:
    """A GeoJSON geometry or BBOX, parsed, taken to CRS84 (``to_crs84``: from the filter's CRS) and
    valid; otherwise a 400 naming the problem."""
    if not isinstance(node, dict) or not ("type" in node or "bbox" in node):
        raise _fail(f"expected a geometry (WKT, GeoJSON or BBOX), found {_kind(node)}.")
    try:
        geom = _bbox(node["bbox"]) if "bbox" in node else _shape(node)
        if to_crs84 is not None:
            geom = to_crs84(geom)
        coords = shapely.get_coordinates(geom)
    except Exception:  # shapely raises several types for malformed GeoJSON
        raise _fail("the geometry does not parse.") from None
    if geom.is_empty or not numpy.isfinite(coords).all():
        raise _fail("the geometry is empty or has non-finite coordinates.")
    if (abs(coords[:, 0]) > 180).any() or (abs(coords[:, 1]) > 90).any():
        raise _fail("geometry coordinates are outside CRS84 (longitude -180..180, latitude -90..90).")
    if not geom.is_valid:
        raise _fail(f"the geometry is not valid ({shapely.is_valid_reason(geom)}).")
    return geom


def build(doc: Any, fields: Fields, to_crs84: Convert | None = None) -> Expr:
    """The checked expression tree of a CQL2-JSON document (``to_crs84`` takes its geometries to CRS84)."""
    return Builder(fields, to_crs84).expr(doc)
