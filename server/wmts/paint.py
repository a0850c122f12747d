"""The base map's MapLibre style read as paint rules for the PNG renderer.

``styles/basemap.json`` composes the collection styles (``metadata["onemap:compose"]``); each fill,
fill-extrusion and line layer becomes a ``PaintLayer`` that draws one collection (its
``source-layer``). Paint values and filters are MapLibre expressions, evaluated here for the subset
our styles use: ``get``, ``has``, ``literal``, ``coalesce``, ``slice``, ``to-string``, ``to-number``,
``match`` (single or array labels), ``case``, ``step``, ``interpolate`` (linear, exponential) over
``zoom`` or a number, comparisons, ``all``, ``any``, ``!`` and ``in``. An operator outside it
evaluates to null, which draws nothing for that feature rather than guessing. Symbol layers (text),
raster layers and line dash patterns are not drawn.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

Feature = Mapping[str, Any]
DRAWN = {"fill": "fill", "fill-extrusion": "fill-extrusion", "line": "line"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_NAMED = {"black": (0, 0, 0, 1.0), "white": (255, 255, 255, 1.0), "transparent": (0, 0, 0, 0.0)}
_FUNC = re.compile(r"^rgba?\(([^)]*)\)$")


@dataclass(frozen=True)
class PaintLayer:
    """One drawn style layer: its type, the collection it draws, zoom range, filter and paint."""

    id: str
    type: str
    collection: str
    minzoom: float
    maxzoom: float
    filter: Any
    paint: Mapping[str, Any]


@dataclass(frozen=True)
class BaseMap:
    """The background colour and the drawn layers, bottom to top."""

    background: tuple[int, int, int, float]
    layers: tuple[PaintLayer, ...]

    def collections(self) -> list[str]:
        """Ids of the collections the layers draw, in drawing order, once each."""
        return list(dict.fromkeys(layer.collection for layer in self.layers))


def _style(styles_dir: Path, style_id: str) -> dict[str, Any]:
    return json.loads((styles_dir / f"{style_id}.json").read_text(encoding="utf-8"))


def _paint_layer(layer: Mapping[str, Any], visibility: str | None) -> PaintLayer | None:
    if layer.get("type") not in DRAWN or "source-layer" not in layer:
        return None
    if (visibility or layer.get("layout", {}).get("visibility")) == "none":
        return None
    return PaintLayer(
        layer["id"], layer["type"], layer["source-layer"], float(layer.get("minzoom", 0)),
        float(layer.get("maxzoom", 24)), layer.get("filter"), layer.get("paint", {}),
    )


@lru_cache(maxsize=4)
def base_map(styles_dir: Path) -> BaseMap:
    """The base map style (``basemap.json`` and the styles it composes) as paint rules."""
    root = _style(styles_dir, "basemap")
    background = (255, 255, 255, 0.0)
    raw: list[tuple[Mapping[str, Any], str | None]] = []
    for layer in root.get("layers", []):
        if layer.get("type") == "background":
            color = parse_color(layer.get("paint", {}).get("background-color"))
            background = color or background
        else:
            raw.append((layer, None))
    for part in root.get("metadata", {}).get("onemap:compose", []):
        raw += [(layer, part.get("visibility")) for layer in _style(styles_dir, part["style"]).get("layers", [])]
    layers = tuple(p for p in (_paint_layer(layer, vis) for layer, vis in raw) if p is not None)
    return BaseMap(background, layers)


_DATA = frozenset({"get", "has", "id", "properties", "geometry-type", "feature-state"})


def reads_feature(expr: Any) -> bool:
    """Whether an expression depends on the feature (else its value is the same for a whole layer)."""
    if not isinstance(expr, list) or not expr:
        return False
    return (isinstance(expr[0], str) and expr[0] in _DATA) or any(reads_feature(a) for a in expr[1:])


def parse_color(value: Any) -> tuple[int, int, int, float] | None:
    """A CSS colour (``#rgb``, ``#rrggbb``, ``#rrggbbaa``, ``rgb()``, ``rgba()``, a few names) as RGBA."""
    return _color(value) if isinstance(value, str) else None


@lru_cache(maxsize=1024)
def _color(value: str) -> tuple[int, int, int, float] | None:
    text = value.strip().lower()
    if text in _NAMED:
        return _NAMED[text]
    if text.startswith("#") and len(text) in (4, 7, 9):
        digits = text[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        try:
            channels = [int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)]
        except ValueError:
            return None
        return channels[0], channels[1], channels[2], channels[3] / 255 if len(channels) == 4 else 1.0
    found = _FUNC.match(text)
    if found:
        parts = [p.strip() for p in found.group(1).split(",")]
        try:
            r, g, b = (int(float(p)) for p in parts[:3])
            return r, g, b, float(parts[3]) if len(parts) > 3 else 1.0
        except (ValueError, IndexError):
            return None
    return None


def evaluate(expr: Any, props: Feature, zoom: float) -> Any:
    """The value of a MapLibre expression for a feature's properties at a (MapLibre) zoom."""
    if not isinstance(expr, list) or not expr or not isinstance(expr[0], str):
        return expr
    op, args = expr[0], expr[1:]
    handler = _OPERATORS.get(op)
    return handler(args, props, zoom) if handler else None


def _ev(args: list, props: Feature, zoom: float) -> list[Any]:
    return [evaluate(a, props, zoom) for a in args]


def _get(args, props, zoom):
    return props.get(evaluate(args[0], props, zoom)) if len(args) == 1 else None


def _coalesce(args, props, zoom):
    return next((v for v in (evaluate(a, props, zoom) for a in args) if v is not None), None)


def _slice(args, props, zoom):
    value, *bounds = _ev(args, props, zoom)
    if not isinstance(value, str | list) or not all(isinstance(b, int | float) for b in bounds):
        return None
    return value[int(bounds[0]):int(bounds[1])] if len(bounds) > 1 else value[int(bounds[0]):]


def _to_string(args, props, zoom):
    value = evaluate(args[0], props, zoom)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_number(args, props, zoom):
    for value in _ev(args, props, zoom):
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


def _match(args, props, zoom):
    value = evaluate(args[0], props, zoom)
    pairs, default = args[1:-1], args[-1]
    for label, out in zip(pairs[::2], pairs[1::2], strict=False):
        if value == label or (isinstance(label, list) and value in label):
            return evaluate(out, props, zoom)
    return evaluate(default, props, zoom)


def _case(args, props, zoom):
    for cond, out in zip(args[:-1:2], args[1:-1:2], strict=False):
        if evaluate(cond, props, zoom) is True:
            return evaluate(out, props, zoom)
    return evaluate(args[-1], props, zoom)


def _step(args, props, zoom):
    value = evaluate(args[0], props, zoom)
    result = evaluate(args[1], props, zoom)
    if not isinstance(value, int | float):
        return result
    for stop, out in zip(args[2::2], args[3::2], strict=False):
        if value >= stop:
            result = evaluate(out, props, zoom)
    return result


def _blend(a: Any, b: Any, t: float) -> Any:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a + (b - a) * t
    ca, cb = parse_color(a), parse_color(b)
    if ca is None or cb is None:
        return None
    r, g, b_, alpha = (x + (y - x) * t for x, y in zip(ca, cb, strict=True))
    return f"rgba({round(r)}, {round(g)}, {round(b_)}, {alpha})"


def _interpolate(args, props, zoom):
    kind, value = args[0], evaluate(args[1], props, zoom)
    stops = [(args[i], args[i + 1]) for i in range(2, len(args) - 1, 2)]
    if not isinstance(value, int | float) or not stops:
        return None
    if value <= stops[0][0]:
        return evaluate(stops[0][1], props, zoom)
    for (x0, y0), (x1, y1) in zip(stops, stops[1:], strict=False):
        if value <= x1:
            base = float(kind[1]) if kind[0] == "exponential" else 1.0
            span, done = x1 - x0, value - x0
            t = done / span if base == 1.0 else (base**done - 1) / (base**span - 1)
            return _blend(evaluate(y0, props, zoom), evaluate(y1, props, zoom), t)
    return evaluate(stops[-1][1], props, zoom)


def _kind(value: Any) -> str | None:
    """What ordering comparisons may mix: numbers with numbers, strings with strings."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


def _compare(op: str) -> Callable[[list, Feature, float], Any]:
    def run(args, props, zoom):
        a, b = _ev(args[:2], props, zoom)
        if op not in ("==", "!=") and (_kind(a) is None or _kind(a) != _kind(b)):
            return False
        return _COMPARE[op](a, b)

    return run


def _in(args, props, zoom):
    needle, haystack = _ev(args[:2], props, zoom)
    return isinstance(haystack, list | str) and needle in haystack


_OPERATORS: dict[str, Callable[[list, Feature, float], Any]] = {
    "get": _get,
    "has": lambda args, props, zoom: evaluate(args[0], props, zoom) in props,
    "literal": lambda args, props, zoom: args[0],
    "zoom": lambda args, props, zoom: zoom,
    "coalesce": _coalesce,
    "slice": _slice,
    "to-string": _to_string,
    "to-number": _to_number,
    "match": _match,
    "case": _case,
    "step": _step,
    "interpolate": _interpolate,
    "all": lambda args, props, zoom: all(evaluate(a, props, zoom) is True for a in args),
    "any": lambda args, props, zoom: any(evaluate(a, props, zoom) is True for a in args),
    "!": lambda args, props, zoom: evaluate(args[0], props, zoom) is not True,
    "in": _in,
    **{op: _compare(op) for op in _COMPARE},
}
