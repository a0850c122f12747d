"""The three control lines (三区三线), built from the survey patches so they agree with them.

- urban development boundary: each town's core grown by a fifth of its radius;
- permanent basic farmland: cropland patches outside the boundaries, merged per subzone - so it lies
  exactly on cropland;
- ecological protection red line: high forest, shrub and bare rock patches and the reservoirs
  outside the boundaries, merged per town.
The three never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree

from server.sample.county import Layout
from server.sample.landuse import Patches

CROPLAND = ("0101", "0102", "0103")
ECOLOGICAL = ("0301", "0302", "0305", "0307", "1207", "1103")
ECO_MIN_HEIGHT = 150.0
FARMLAND_SHARE = 0.85


@dataclass
class ControlLines:
    """Control line polygons (planar) with their type and name, in output order."""

    geoms: list[shapely.Geometry]
    line_type: list[str]
    line_name: list[str]


def _outside_udb(layout: Layout, patches: Patches, mask: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(mask)
    tree = STRtree(patches.geoms[idx])
    hit = tree.query(np.asarray(layout.udb, dtype=object), predicate="intersects")[1]
    keep = np.ones(len(idx), dtype=bool)
    keep[hit] = False
    return idx[keep]


def _merge(geoms: np.ndarray, groups: np.ndarray) -> list[tuple[int, shapely.Geometry]]:
    out: list[tuple[int, shapely.Geometry]] = []
    for g in np.unique(groups):
        merged = shapely.union_all(geoms[groups == g])
        if not merged.is_empty and merged.area > 0:
            out.append((int(g), merged))
    return out


def control_lines(layout: Layout, patches: Patches, rng: np.random.Generator) -> ControlLines:
    """The urban development boundaries, ecological red lines and permanent basic farmland."""
    geoms, types, labels = [], [], []
    for t, udb in zip(layout.towns, layout.udb, strict=True):
        geoms.append(udb)
        types.append("urban_development_boundary")
        labels.append(f"{t.name}城镇开发边界")
    high = layout.elevation(patches.x, patches.y) >= ECO_MIN_HEIGHT
    eco_mask = np.isin(patches.code, ECOLOGICAL) & (high | (patches.code == "1103"))
    eco = _outside_udb(layout, patches, eco_mask)
    for town, geom in _merge(patches.geoms[eco], layout.unit_town[patches.cover[eco]]):
        geoms.append(geom)
        types.append("ecological_red_line")
        labels.append(f"{layout.towns[town].name}生态保护红线")
    crop = _outside_udb(layout, patches, np.isin(patches.code, CROPLAND))
    crop = crop[rng.random(len(crop)) < FARMLAND_SHARE]
    for unit, geom in _merge(patches.geoms[crop], patches.cover[crop]):
        geoms.append(geom)
        types.append("permanent_basic_farmland")
        town = layout.towns[layout.unit_town[unit]].name
        labels.append(f"{town}{layout.unit_name[unit]}永久基本农田保护片")
    return ControlLines(geoms, types, labels)
