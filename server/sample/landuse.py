"""Land survey patches (三调图斑) and planning zones (用地用海分区): both tile the county exactly.

Rivers, reservoirs, roads and streets are cut out first as their own patches; the rest of each cover
(subzone for the survey, town for the plan) is tiled by Voronoi cells - aligned with the street grid
in the towns' cores, irregular in the countryside - and each piece is classified from where it lies:
core or countryside, height, distance to the village centre and to the river.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from server.sample.county import Layout
from server.sample.geom import clip_pieces, explode_polygons, hilbert_key, rotate_points

# linear kinds in priority order: (survey code, planning code)
LINEAR = (("1101", "17"), ("1103", "17"), ("1003", "12"), ("1004", "12"))
DEBRIS_M2 = 0.01


@dataclass
class Patches:
    """Polygons in the planar frame with their class code and where they are."""

    geoms: np.ndarray
    code: np.ndarray
    cover: np.ndarray
    x: np.ndarray
    y: np.ndarray
    angle: np.ndarray

    def __len__(self) -> int:
        return len(self.geoms)

    def take(self, idx: np.ndarray) -> Patches:
        return Patches(*(getattr(self, f)[idx] for f in ("geoms", "code", "cover", "x", "y", "angle")))


def rural_spacing(scale: int) -> float:
    """Mean distance (m) between countryside patch seeds: ~450 m at the default 20 000 parcels."""
    return float(np.clip(450.0 * (20_000 / max(scale, 1)) ** 0.35, 90.0, 2000.0))


def _seeds(layout: Layout, spacing: float, urban_div: int, rng: np.random.Generator) -> np.ndarray:
    """Jittered-grid seeds in the countryside plus street-aligned lattices in the cores."""
    minx, miny, maxx, maxy = layout.bounds
    gx, gy = np.meshgrid(np.arange(minx - spacing, maxx + spacing, spacing),
                         np.arange(miny - spacing, maxy + spacing, spacing))
    x = gx.ravel() + rng.uniform(0.05, 0.95, gx.size) * spacing
    y = gy.ravel() + rng.uniform(0.05, 0.95, gy.size) * spacing
    keep = ~layout.in_core(x, y)
    pts = [np.column_stack([x[keep], y[keep]])]
    for t in layout.towns:
        step = t.street_spacing / urban_div
        r = t.radius * 1.4
        k = np.arange(-np.ceil(r / step), np.ceil(r / step) + 1)
        ox, oy = np.meshgrid((k + 0.5) * step, (k + 0.5) * step)
        ux, uy = rotate_points(t.x + ox.ravel(), t.y + oy.ravel(), t.angle, t.x, t.y)
        inside = shapely.contains_xy(t.core, ux, uy)
        pts.append(np.column_stack([ux[inside], uy[inside]]))
    return np.vstack(pts)


def _carve(layout: Layout, covers: np.ndarray, use_planning: bool):
    """Linear pieces (code, cover) and the remaining land parts of each cover."""
    geoms, codes, cover = [], [], []
    linear = (layout.water_river, layout.water_reservoir, layout.roads, layout.streets)
    for (survey, planning), g in zip(LINEAR, linear, strict=True):
        parts = shapely.get_parts(g)
        pieces, _, cov = clip_pieces(parts, covers)
        geoms.append(pieces)
        codes.append(np.full(len(pieces), planning if use_planning else survey, dtype=object))
        cover.append(cov)
    land = shapely.difference(covers, shapely.union_all(np.asarray(linear)))
    land_parts, land_cover = explode_polygons(land)
    return np.concatenate(geoms), np.concatenate(codes), np.concatenate(cover), land_parts, land_cover


def tessellate(layout: Layout, covers: np.ndarray, spacing: float, urban_div: int,
               rng: np.random.Generator, use_planning: bool) -> tuple[Patches, np.ndarray]:
    """Cut the covers into patches; returns unclassified land patches and a mask of linear ones."""
    lin_geoms, lin_codes, lin_cover, land_parts, land_cover = _carve(layout, covers, use_planning)
    seeds = _seeds(layout, spacing, urban_div, rng)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=layout.county.buffer(3 * spacing))
    )
    pieces, _, part_idx = clip_pieces(cells, land_parts)
    geoms = np.concatenate([lin_geoms, pieces])
    cover = np.concatenate([lin_cover, land_cover[part_idx]])
    code = np.concatenate([lin_codes, np.full(len(pieces), "", dtype=object)])
    # numerical debris of the cutting (far below any real patch) would not survive lon/lat
    real = shapely.area(geoms) >= DEBRIS_M2
    geoms, cover, code = geoms[real], cover[real], code[real]
    rep = shapely.point_on_surface(geoms)
    x, y = shapely.get_x(rep), shapely.get_y(rep)
    order = np.lexsort((hilbert_key(x, y, layout.bounds), cover))
    patches = Patches(geoms, code, cover, x, y, np.zeros(len(geoms))).take(order)
    linear = patches.code != ""
    return patches, linear


def _pick(u: np.ndarray, table: tuple[tuple[str, float], ...]) -> np.ndarray:
    """Choose codes by cumulative thresholds: ``(("0101", .6), ("0102", .7), ..., (last, 1.0))``."""
    codes = np.array([c for c, _ in table], dtype=object)
    edges = np.array([p for _, p in table])
    return codes[np.minimum(np.searchsorted(edges, u, side="right"), len(codes) - 1)]


SURVEY_RULES = {
    "centre": (("05H1", .35), ("08H1", .45), ("08H2", .55), ("0810", .62), ("0701", 1)),
    "industry": (("0601", .6), ("0508", .8), ("0809", .88), ("1201", .92), ("0701", 1)),
    "urban": (("0701", .62), ("08H2", .70), ("0810", .76), ("05H1", .84), ("0809", .87), ("1005", .89),
              ("1201", .91), ("0701", 1)),
    "high": (("0301", .62), ("0305", .80), ("0302", .93), ("0307", .97), ("1207", 1)),
    "slope": (("0301", .35), ("0302", .50), ("0307", .58), ("0202", .75), ("0201", .85), ("0404", .90),
              ("0103", .95), ("0602", .97), ("1206", 1)),
    "foot": (("0202", .20), ("0201", .35), ("0103", .50), ("0301", .62), ("0101", .80), ("0702", .85),
             ("1104", .90), ("0204", .95), ("1201", 1)),
    "village": (("0702", .72), ("1006", .78), ("0601", .84), ("1202", .88), ("08H2", .91), ("0809", .93),
                ("1201", .96), ("0201", 1)),
    "plain": (("0101", .58), ("0102", .64), ("0103", .68), ("1104", .76), ("1202", .80), ("0204", .83),
              ("0201", .86), ("1107", .88), ("1006", .905), ("0307", .925), ("0404", .94), ("1201", .95),
              ("0702", .975), ("0601", .985), ("1109", .99), ("09", .993), ("0101", 1)),
    "riverside": (("1106", .5), ("0404", .6), ("0101", 1)),
}

PLANNING_RULES = {
    "centre": (("09", .35), ("08", .55), ("14", .65), ("07", 1)),
    "industry": (("10", .6), ("11", .8), ("13", .88), ("16", .95), ("07", 1)),
    "urban": (("07", .6), ("08", .7), ("14", .8), ("09", .88), ("13", .92), ("16", 1)),
    "high": (("03", 1),),
    "slope": (("03", .6), ("02", .85), ("04", .9), ("01", 1)),
    "foot": (("02", .35), ("03", .55), ("01", .9), ("07", 1)),
    "village": (("07", .75), ("06", .85), ("08", .9), ("23", 1)),
    "plain": (("01", .82), ("06", .86), ("02", .9), ("17", .94), ("23", .96), ("15", .97), ("01", 1)),
    "riverside": (("05", .6), ("01", 1)),
}


def _zones(layout: Layout, x, y, town, village_d, urban_mask) -> np.ndarray:
    """Name of the rule zone of each point (centre, industry, urban, high, ... plain)."""
    rho = layout.core_ratio(x, y, town)
    h = layout.elevation(x, y)
    near_river = layout.river_distance(x, y) < 250
    industry = layout.industry_side(x, y, town) & (rho > 0.45)
    conds = [
        urban_mask & (rho < 0.3), urban_mask & industry, urban_mask,
        h >= 150, h >= 70, h >= 30, village_d < 320, near_river,
    ]
    names = ["centre", "industry", "urban", "high", "slope", "foot", "village", "riverside"]
    return np.select(conds, names, default="plain")


def _classify(zones: np.ndarray, u: np.ndarray, rules: dict) -> np.ndarray:
    out = np.empty(len(zones), dtype=object)
    for zone, table in rules.items():
        m = zones == zone
        out[m] = _pick(u[m], table)
    return out


def survey_patches(layout: Layout, scale: int, rng: np.random.Generator) -> Patches:
    """The land survey patches, classified, ordered by subzone then along a Hilbert curve."""
    spacing = rural_spacing(scale)
    urban_div = max(1, int(round(330.0 / spacing)))
    patches, linear = tessellate(layout, layout.units, spacing, urban_div, rng, use_planning=False)
    land = ~linear
    unit = patches.cover[land]
    town = layout.unit_town[unit]
    x, y = patches.x[land], patches.y[land]
    urban = layout.in_core(x, y)
    vd = np.where(layout.unit_urban[unit], np.inf, np.hypot(x - layout.unit_cx[unit], y - layout.unit_cy[unit]))
    zones = _zones(layout, x, y, town, vd, urban)
    patches.code[land] = _classify(zones, rng.random(len(x)), SURVEY_RULES)
    town_angle = np.array([t.angle for t in layout.towns])
    all_town = layout.unit_town[patches.cover]
    in_core = layout.in_core(patches.x, patches.y)
    patches.angle = np.where(in_core, town_angle[all_town],
                             layout.unit_angle[patches.cover] + rng.normal(0, 0.12, len(patches)))
    return patches


def planning_zones(layout: Layout, scale: int, rng: np.random.Generator) -> Patches:
    """Planning use zones: coarser than the patches, cover = town; the cores grow to the UDB."""
    spacing = 2.2 * rural_spacing(scale)
    patches, linear = tessellate(layout, layout.town_polys, spacing, 1, rng, use_planning=True)
    land = ~linear
    town = patches.cover[land]
    x, y = patches.x[land], patches.y[land]
    urban = shapely.contains_xy(layout.udb_union, x, y)
    nearest = _nearest_unit_centre(layout, x, y, town)
    zones = _zones(layout, x, y, town, nearest, urban)
    patches.code[land] = _classify(zones, rng.random(len(x)), PLANNING_RULES)
    return patches


def _nearest_unit_centre(layout: Layout, x, y, town) -> np.ndarray:
    """Distance to the nearest rural subzone centre of the same town."""
    out = np.full(len(x), np.inf)
    for t in range(len(layout.towns)):
        m = town == t
        sel = (layout.unit_town == t) & ~layout.unit_urban
        if not m.any() or not sel.any():
            continue
        d = np.hypot(x[m, None] - layout.unit_cx[sel][None, :], y[m, None] - layout.unit_cy[sel][None, :])
        out[m] = d.min(axis=1)
    return out
