"""The polygon literals of a CQL2 text filter, read ahead of the ``cql2`` parser.

``cql2`` reads a WKT literal character by character and hands it back as nested Python lists, which for
the 200-vertex site boundary an approval officer sends is most of the filter's cost: read here first, the
whole filter parses about three times faster. ``lift`` takes plain two-dimensional ``POLYGON`` and
``MULTIPOLYGON`` literals (decimal numbers, which is all the CQL2 grammar allows in WKT) out of the text,
leaving a marker point in their place, and ``restore`` puts their coordinates back into the parser's
CQL2-JSON: the document is the one the parser gives for the original text. Anything else - string
literals and quoted names, ``EMPTY``, Z coordinates, a literal that is not plain - is left in the text for
the parser, which then answers as it always did.
"""

from __future__ import annotations

import re
from typing import Any

QUOTED = r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""  # a CQL2 string literal or quoted name
_WS = r" \t\r\n"  # the white space a plain literal may hold
_SPACE = re.compile(f"[{_WS}]")
# a quoted string or name (skipped), or the start of a polygon literal
_START = re.compile(rf"{QUOTED}|\b(MULTIPOLYGON|POLYGON)[{_WS}]*(?=\()", re.IGNORECASE)
_PLAIN = re.compile(rf"[-0-9.,(){_WS}]*")  # what a plain literal is made of
_RING = re.compile(r"\(([^()]*)\)")
_POLYGON = re.compile(r"\(R(?:,R)*\)")
_MULTIPOLYGON = re.compile(r"\(\(R(?:,R)*\)(?:,\(R(?:,R)*\))*\)")
_MARK_Y = -999999.0  # a latitude no literal has: the marker point of lifted literal i is (i, _MARK_Y)


def _end(text: str, start: int) -> int | None:
    """Where the plain literal body opening at ``start`` ends (past its closing parenthesis), or ``None``."""
    stop = _PLAIN.match(text, start).end()  # type: ignore[union-attr]  # matches any text, if only emptily
    depth, at = 0, start
    while (close := text.find(")", at, stop)) >= 0:
        opening = text.find("(", at, close)
        if opening >= 0:
            depth, at = depth + 1, opening + 1
            continue
        depth, at = depth - 1, close + 1
        if depth == 0:
            return at
    return None


def _points(ring: str) -> list[list[float]] | None:
    """``x y, x y, ...`` as points, or ``None`` unless each has two decimal numbers (``5``, ``-0.5``)."""
    tokens = ring.replace(",", " , ").split()
    points = len(tokens) // 3 + 1
    if len(tokens) != 3 * points - 1 or tokens.count(",") != points - 1:
        return None
    del tokens[2::3]
    spaced = f" {' '.join(tokens)} "
    if " ." in spaced or ". " in spaced or "-." in spaced:  # .5, 5. and -.5 are not CQL2 numbers
        return None
    try:
        numbers = [float(v) for v in tokens]
    except ValueError:  # 1.2.3, 1-2, a lone -
        return None
    return list(map(list, zip(numbers[::2], numbers[1::2], strict=True)))


def _geometry(kind: str, body: str) -> dict[str, Any] | None:
    """The GeoJSON geometry of a plain literal's parenthesized body, or ``None`` when it is not plain."""
    rings: list[list[list[float]] | None] = []

    def ring(found: re.Match) -> str:
        rings.append(_points(found.group(1)))
        return "R"

    skeleton = _SPACE.sub("", _RING.sub(ring, body))
    if any(r is None for r in rings):
        return None
    if kind == "POLYGON" and _POLYGON.fullmatch(skeleton):
        return {"type": "Polygon", "coordinates": rings}
    if kind == "MULTIPOLYGON" and _MULTIPOLYGON.fullmatch(skeleton):
        polygons, at = [], 0
        for part in skeleton[2:-2].split("),("):
            count = part.count("R")
            polygons.append(rings[at:at + count])
            at += count
        return {"type": "MultiPolygon", "coordinates": polygons}
    return None


def lift(text: str) -> tuple[str, list[dict[str, Any]]]:
    """``text`` with its plain polygon literals replaced by marker points, and their geometries."""
    pieces: list[str] = []
    lifted: list[dict[str, Any]] = []
    if "polygon" not in text.lower():  # the scan below costs ~1 ms over a long IN list of strings
        return text, lifted
    at = search = 0
    while (found := _START.search(text, search)) is not None:
        search = found.end()
        if found.group(1) is None:
            continue
        end = _end(text, search)
        if end is None or (geometry := _geometry(found.group(1).upper(), text[search:end])) is None:
            continue
        pieces += [text[at:found.start()], f"POINT({len(lifted)} {_MARK_Y:.0f})"]
        lifted.append(geometry)
        at = search = end
    return "".join(pieces) + text[at:], lifted


def restore(doc: Any, lifted: list[dict[str, Any]]) -> Any:
    """The parser's CQL2-JSON of a lifted text with each marker point replaced by its geometry; ``None``
    when the markers are not each found exactly once (then the original text is to be parsed whole)."""
    seen = [0] * len(lifted)

    def put(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == "Point":
                xy = node.get("coordinates")
                if isinstance(xy, list) and len(xy) == 2 and xy[1] == _MARK_Y and xy[0] in range(len(lifted)):
                    seen[int(xy[0])] += 1
                    return lifted[int(xy[0])]
            return {k: put(v) for k, v in node.items()}
        if isinstance(node, list):
            return [put(v) for v in node]
        return node

    out = put(doc)
    return out if all(n == 1 for n in seen) else None
