"""Registered parcels: survey patches subdivided into exactly ``scale`` parcels.

Each parcellable patch gets a share of the parcels by area and by how finely its class is divided
(homesteads finely, forest coarsely). Parcel seeds lie on a jittered lattice aligned with the patch
(long strips for cropland); each patch is cut by the Voronoi cells of its own seeds, so parcels
tile their patch and never cross a patch edge. The work is done subzone by subzone in chunks of
bounded size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely

from server.sample.geom import frame_bounds, group_starts, hilbert_key, rank_within, rotate_points, to_multipolygons
from server.sample.landuse import Patches

URBAN_USE = "国有建设用地使用权"
# land code -> (density: relative parcels per hectare, lattice aspect, ((own, type, right, owner kind, p), ...))
RULES: dict[str, tuple[float, float, tuple[tuple[str, str, str, str, float], ...]]] = {
    "0701": (2.0, 1.5, (("G", "B", URBAN_USE, "developer", 1.0),)),
    "05H1": (2.5, 1.2, (("G", "B", URBAN_USE, "trade", 1.0),)),
    "0508": (0.8, 1.4, (("G", "B", URBAN_USE, "logistics", 1.0),)),
    "0601": (1.2, 1.4, (("G", "B", URBAN_USE, "factory", 0.6), ("J", "B", "集体建设用地使用权", "factory", 1.0))),
    "0602": (0.5, 1.0, (("G", "B", URBAN_USE, "mining", 1.0),)),
    "08H1": (1.0, 1.2, (("G", "B", URBAN_USE, "government", 1.0),)),
    "08H2": (0.8, 1.3, (("G", "B", URBAN_USE, "institution", 1.0),)),
    "0809": (1.5, 1.0, (("G", "B", URBAN_USE, "utility", 1.0),)),
    "0810": (0.4, 1.0, (("G", "B", URBAN_USE, "park", 1.0),)),
    "1005": (1.0, 1.5, (("G", "B", URBAN_USE, "transport", 1.0),)),
    "09": (0.5, 1.0, (("G", "B", URBAN_USE, "special", 1.0),)),
    "0702": (18.0, 1.3, (("J", "C", "宅基地使用权", "household", 1.0),)),
    "0101": (12.0, 3.0, (("J", "D", "土地承包经营权", "person", 1.0),)),
    "0102": (12.0, 3.0, (("J", "D", "土地承包经营权", "person", 1.0),)),
    "0103": (10.0, 2.5, (("J", "D", "土地承包经营权", "person", 1.0),)),
    "0201": (5.0, 2.0, (("J", "D", "土地承包经营权", "person", 0.8), ("J", "N", "土地经营权", "company_farm", 1.0))),
    "0202": (5.0, 2.0, (("J", "D", "土地承包经营权", "person", 0.8), ("J", "N", "土地经营权", "company_farm", 1.0))),
    "0204": (5.0, 2.0, (("J", "D", "土地承包经营权", "person", 1.0),)),
    "0301": (1.2, 1.0, (("J", "E", "林地承包经营权", "person", 0.75), ("G", "L", "林地使用权", "forest_farm", 1.0))),
    "0302": (1.5, 1.0, (("J", "E", "林地承包经营权", "person", 1.0),)),
    "0305": (0.8, 1.0, (("J", "E", "林地承包经营权", "person", 0.6), ("G", "L", "林地使用权", "forest_farm", 1.0))),
    "0307": (1.0, 1.0, (("J", "E", "林地承包经营权", "person", 1.0),)),
    "0404": (2.0, 1.5, (("J", "F", "土地承包经营权", "person", 1.0),)),
    "1104": (2.0, 1.0, (("J", "A", "集体土地所有权", "collective", 1.0),)),
    "1202": (3.0, 1.3, (("J", "A", "集体土地所有权", "collective", 1.0),)),
}
MAX_SEQUENCE = 99_999
# construction land: every such patch (of a useful size) is registered as at least one parcel
BUILT_UP = ("0701", "05H1", "0508", "0601", "0602", "08H1", "08H2", "0809", "0810", "1005", "09", "0702")
MIN_BUILT_UP_M2 = 200.0


@dataclass
class Allocation:
    """Parcel seeds for every patch, sorted by patch; per patch its count and its right."""

    count: np.ndarray
    rule: np.ndarray  # index into the flattened rule choices, -1 when not parcelled
    seed_x: np.ndarray
    seed_y: np.ndarray
    seed_patch: np.ndarray


CHOICES = [(code, *choice) for code, (_, _, options) in RULES.items() for choice in options]


def _patch_rules(patches: Patches, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patch: density, lattice aspect and the chosen right (index into ``CHOICES``)."""
    n = len(patches)
    density, aspect, rule = np.zeros(n), np.ones(n), np.full(n, -1)
    u = rng.random(n)
    for code, (dens, asp, options) in RULES.items():
        m = patches.code == code
        density[m], aspect[m] = dens, asp
        first = next(i for i, c in enumerate(CHOICES) if c[0] == code)
        edges = np.array([o[4] for o in options])
        rule[m] = first + np.minimum(np.searchsorted(edges, u[m], side="right"), len(options) - 1)
    return density, aspect, rule


def _lattice(patches: Patches, target: np.ndarray, aspect: np.ndarray, rng: np.random.Generator):
    """Candidate seeds strictly inside each patch on a jittered, rotated lattice (~1.5 x target)."""
    sel = np.flatnonzero(target > 0)
    geoms, angle = patches.geoms[sel], patches.angle[sel]
    cx, cy = patches.x[sel], patches.y[sel]
    area = shapely.area(geoms)
    step = 0.8 * np.sqrt(area / target[sel])
    sx, sy = step * np.sqrt(aspect[sel]), step / np.sqrt(aspect[sel])
    fb = frame_bounds(geoms, angle, cx, cy)
    nx = np.ceil((fb[:, 2] - fb[:, 0]) / sx).astype(np.int64) + 1
    ny = np.ceil((fb[:, 3] - fb[:, 1]) / sy).astype(np.int64) + 1
    cap = np.maximum(64, (30 * target[sel]).astype(np.int64))
    shrink = np.sqrt(np.maximum(1.0, nx * ny / cap))
    sx, sy = sx * shrink, sy * shrink
    nx = np.ceil((fb[:, 2] - fb[:, 0]) / sx).astype(np.int64) + 1
    ny = np.ceil((fb[:, 3] - fb[:, 1]) / sy).astype(np.int64) + 1
    total = nx * ny
    owner = np.repeat(np.arange(len(sel)), total)
    j = np.arange(owner.size) - np.repeat(np.cumsum(total) - total, total)
    phase = rng.random((len(sel), 2))
    jit = rng.uniform(-0.12, 0.12, (owner.size, 2))
    lx = fb[owner, 0] + (j % nx[owner] + phase[owner, 0] - 0.5 + jit[:, 0]) * sx[owner]
    ly = fb[owner, 1] + (j // nx[owner] + phase[owner, 1] - 0.5 + jit[:, 1]) * sy[owner]
    x, y = rotate_points(lx, ly, angle[owner], cx[owner], cy[owner])
    shapely.prepare(geoms)
    inside = shapely.contains_xy(geoms[owner], x, y)
    return x[inside], y[inside], sel[owner[inside]]


def _allot(target: np.ndarray, capacity: np.ndarray, scale: int) -> np.ndarray:
    """Integer counts summing to ``scale``, close to ``target`` and never above ``capacity``."""
    count = np.minimum(capacity, np.floor(target).astype(np.int64))
    for _ in range(64):
        deficit = scale - int(count.sum())
        if deficit == 0:
            return count
        if deficit < 0:
            order = np.argsort(count - target, kind="stable")[::-1]
            take = order[count[order] > 0][:-deficit]
            count[take] -= 1
            continue
        spare = np.flatnonzero(capacity > count)
        if spare.size == 0:
            raise ValueError(f"the county cannot hold {scale} parcels")
        order = spare[np.argsort(-(target[spare] - count[spare]), kind="stable")]
        count[order[:deficit]] += 1
    raise ValueError("parcel allocation did not converge")


def allocate(patches: Patches, scale: int, rng: np.random.Generator) -> Allocation:
    """Decide how many parcels each patch holds and where their seeds are."""
    density, aspect, rule = _patch_rules(patches, rng)
    area = shapely.area(patches.geoms)
    weight = area * density
    target = scale * weight / weight.sum()
    built_up = np.isin(patches.code, BUILT_UP) & (area >= MIN_BUILT_UP_M2)
    if built_up.sum() <= scale // 2:
        rest = scale - int(built_up.sum())
        target = built_up + rest * weight / weight.sum()
    x, y, owner = _lattice(patches, target, aspect, rng)
    capacity = np.bincount(owner, minlength=len(patches))
    lone = np.flatnonzero((capacity == 0) & (target >= 0.5))
    x, y, owner = np.r_[x, patches.x[lone]], np.r_[y, patches.y[lone]], np.r_[owner, lone]
    capacity[lone] = 1
    count = _allot(target, capacity, scale)
    order = np.lexsort((rng.random(len(owner)), owner))
    x, y, owner = x[order], y[order], owner[order]
    keep = rank_within(owner) < count[owner]
    rule = np.where(count > 0, rule, -1)
    return Allocation(count, rule, x[keep], y[keep], owner[keep])


@dataclass
class ParcelChunk:
    """Parcels of a few whole subzones, in unit-code order, still in the planar frame."""

    geoms: np.ndarray
    patch: np.ndarray
    unit: np.ndarray
    rule: np.ndarray
    sequence: np.ndarray


def chunks(patches: Patches, alloc: Allocation, n_units: int, size: int) -> Iterator[np.ndarray]:
    """Groups of consecutive subzones holding at most ~``size`` parcels each."""
    per_unit = np.bincount(patches.cover, weights=alloc.count, minlength=n_units).astype(np.int64)
    if per_unit.max(initial=0) > MAX_SEQUENCE:
        raise ValueError(f"a cadastral subzone would hold more than {MAX_SEQUENCE} parcels; lower the scale")
    start, acc = 0, 0
    for u in range(n_units):
        acc += per_unit[u]
        if acc >= size or u == n_units - 1:
            yield np.arange(start, u + 1)
            start, acc = u + 1, 0


def subdivide(patches: Patches, alloc: Allocation, units: np.ndarray, bounds) -> ParcelChunk:
    """Cut the patches of the given subzones into their parcels and number them per subzone."""
    in_units = np.isin(patches.cover[alloc.seed_patch], units)
    sx, sy, sp = alloc.seed_x[in_units], alloc.seed_y[in_units], alloc.seed_patch[in_units]
    multi = alloc.count[sp] > 1
    geoms = np.empty(len(sp), dtype=object)
    geoms[~multi] = patches.geoms[sp[~multi]]
    if multi.any():
        mp_patch = sp[multi]
        starts = group_starts(mp_patch)
        local = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(mp_patch)]))
        mps = shapely.multipoints(np.column_stack([sx[multi], sy[multi]]), indices=local)
        owners = patches.geoms[mp_patch[starts]]
        cells = shapely.voronoi_polygons(mps, extend_to=owners)
        parts, part_idx = shapely.get_parts(cells, return_index=True)
        if len(parts) != len(mp_patch) or np.any(np.bincount(part_idx, minlength=len(starts)) != np.diff(
                np.r_[starts, len(mp_patch)])):
            raise RuntimeError("Voronoi cells do not match their parcel seeds")
        shapely.prepare(owners)
        inside = shapely.contains_properly(owners[part_idx], parts)
        cut = parts.copy()
        cut[~inside] = shapely.intersection(parts[~inside], owners[part_idx[~inside]])
        geoms[multi] = cut
    geoms, kept = to_multipolygons(geoms)
    if len(kept) != len(sp):
        raise RuntimeError("a parcel came out empty")
    unit = patches.cover[sp]
    centre = shapely.centroid(geoms)
    order = np.lexsort((hilbert_key(shapely.get_x(centre), shapely.get_y(centre), bounds), unit))
    sequence = np.empty(len(sp), dtype=np.int64)
    sequence[order] = rank_within(unit[order]) + 1
    return ParcelChunk(geoms, sp, unit, alloc.rule[sp], sequence)
