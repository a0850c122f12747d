"""The spatial hierarchy of a 3D tileset: an explicit, adaptive quadtree over the collection's extent.

Why explicit: buildings crowd into towns and leave fields and hills empty. An adaptive tree splits a
cell only where it holds more than ``max_features`` footprints, so a city of any density gets leaves
of similar weight and no empty tiles; implicit tiling would fix one depth for the whole extent (or
need availability bitstreams per subtree) and gains nothing at a county's size, where the whole
explicit tree is a few kilobytes of JSON.

Cells: the root is the collection's declared extent; a cell's key is its path of quadrants
(``0`` south-west, ``1`` south-east, ``2`` north-west, ``3`` north-east), the root's is empty. A
footprint belongs to the one cell holding the centre of its bounding box (clamped into the root), so
it is in exactly one content tile. Only leaves have content (``REPLACE`` refinement of empty parents).

Volumes: a tile's ``region`` bounds its footprints (lon/lat of their vertices, heights from the
lowest base to the highest top), so children's regions are inside their parent's and content inside
its tile. Geometric error: a leaf 0; a parent an eighth of its cell's width in metres, halving at
each level, so errors strictly decrease down the tree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.threed.footprints import Footprint

KEY = re.compile(r"[0-3]{0,24}")
MAX_DEPTH = 12
_M_PER_DEG = 111_320.0


@dataclass
class Node:
    """One tile: its cell key, region (degrees, metres), parent error and children (none for a leaf)."""

    key: str
    region: tuple[float, float, float, float, float, float]
    count: int
    children: list[Node] = field(default_factory=list)


def cell(root: tuple[float, float, float, float], key: str) -> tuple[float, float, float, float]:
    """West, south, east, north of the cell ``key`` of the ``root`` box."""
    west, south, east, north = root
    for digit in key:
        q = int(digit)
        mx, my = (west + east) / 2, (south + north) / 2
        west, east = (mx, east) if q % 2 else (west, mx)
        south, north = (my, north) if q >= 2 else (south, my)
    return west, south, east, north


def _quadrant(box: tuple[float, float, float, float], x: float, y: float) -> str:
    west, south, east, north = box
    return str((1 if x >= (west + east) / 2 else 0) + (2 if y >= (south + north) / 2 else 0))


def in_cell(root: tuple[float, float, float, float], key: str, f: Footprint) -> bool:
    """Whether ``f`` belongs to cell ``key`` (its anchor, clamped into the root, falls there)."""
    west, south, east, north = root
    x, y = f.anchor
    x, y = min(max(x, west), east), min(max(y, south), north)
    box = root
    for digit in key:
        if _quadrant(box, x, y) != digit:
            return False
        box = cell(box, digit)
    return True


def _region(footprints: Sequence[Footprint]) -> tuple[float, float, float, float, float, float]:
    bounds = [f.bounds for f in footprints]
    return (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
            max(b[3] for b in bounds), min(f.base for f in footprints), max(f.base + f.height for f in footprints))


def build(root: tuple[float, float, float, float], footprints: Sequence[Footprint], max_features: int,
          key: str = "") -> Node:
    """The subtree of cell ``key`` over its ``footprints`` (all of which belong to it; at least one)."""
    node = Node(key, _region(footprints), len(footprints))
    if len(footprints) <= max_features or len(key) >= MAX_DEPTH:
        return node
    box = cell(root, key)
    west, south, east, north = root
    quads: dict[str, list[Footprint]] = {}
    for f in footprints:
        x, y = f.anchor
        x, y = min(max(x, west), east), min(max(y, south), north)
        quads.setdefault(_quadrant(box, x, y), []).append(f)
    node.children = [build(root, quads[q], max_features, key + q) for q in sorted(quads)]
    return node


def leaf(node: Node, key: str) -> Node | None:
    """The leaf with ``key`` under ``node``, or None."""
    if node.key == key:
        return None if node.children else node
    child = next((c for c in node.children if key.startswith(c.key)), None)
    return leaf(child, key) if child else None


def error_of(root: tuple[float, float, float, float], node: Node) -> float:
    """The geometric error (m) of a tile: 0 for a leaf, an eighth of its cell's width above."""
    if not node.children:
        return 0.0
    west, south, east, north = cell(root, node.key)
    width = (east - west) * _M_PER_DEG * math.cos(math.radians((south + north) / 2))
    return max(width, (north - south) * _M_PER_DEG) / 8.0
