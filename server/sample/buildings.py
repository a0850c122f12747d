"""Building footprints strictly inside urban parcels and homesteads.

Buildings stand on a small lattice aligned with the parcel (slabs for housing, big sheds for
industry); a lattice spot is kept only when its footprint lies strictly inside the parcel. A parcel
too small for its lattice gets one smaller building, or none if even that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from server.sample.geom import frame_bounds, rank_within, rectangles

# land code -> (uses, half width, half depth, spacing x, spacing y, floors lo, floors hi,
#               floor height, completion years lo, hi)
SPECS: dict[str, tuple[tuple[str, ...], float, float, float, float, int, int, float, int, int]] = {
    "0702": (("住宅",), 6.0, 5.0, 1e9, 1e9, 2, 4, 3.1, 1980, 2022),
    "0701": (("住宅",), 24.0, 7.0, 75.0, 40.0, 6, 33, 2.95, 1992, 2024),
    "05H1": (("商业", "办公"), 18.0, 18.0, 55.0, 55.0, 3, 25, 4.2, 1995, 2024),
    "0508": (("仓储",), 45.0, 30.0, 110.0, 80.0, 1, 3, 7.0, 2000, 2024),
    "0601": (("工业",), 40.0, 25.0, 100.0, 70.0, 1, 4, 5.5, 1995, 2024),
    "0602": (("工业",), 15.0, 10.0, 60.0, 60.0, 1, 2, 5.0, 1990, 2020),
    "08H1": (("办公",), 25.0, 15.0, 70.0, 60.0, 4, 12, 3.6, 1985, 2023),
    "08H2": (("教育", "医疗", "文化"), 30.0, 12.0, 80.0, 45.0, 3, 8, 3.8, 1985, 2024),
    "0809": (("公共设施",), 15.0, 10.0, 60.0, 60.0, 1, 3, 4.5, 1990, 2024),
    "1005": (("交通",), 30.0, 15.0, 80.0, 80.0, 1, 3, 5.0, 1995, 2024),
    "09": (("特殊用途",), 20.0, 10.0, 60.0, 50.0, 2, 5, 3.6, 1980, 2020),
}
MAX_PER_PARCEL = 200
CLEARANCE = 0.5  # metres kept free between a footprint and its parcel's boundary
_START = np.datetime64("1980-01-01")


@dataclass
class Buildings:
    """Footprints (planar frame) with the index of their parcel and their attributes."""

    geoms: np.ndarray
    parcel: np.ndarray
    number: np.ndarray
    height_m: np.ndarray
    floors: np.ndarray
    use: list[str]
    completed: np.ndarray


def _lattice_spots(parcels, codes, angle, cx, cy):
    """Candidate centres (rotated back to the plane) and half sizes of full-size buildings."""
    spec = [SPECS[c] for c in codes]
    hw, hh = np.array([s[1] for s in spec]), np.array([s[2] for s in spec])
    sx, sy = np.array([s[3] for s in spec]), np.array([s[4] for s in spec])
    fb = frame_bounds(parcels, angle, cx, cy)
    w, h = fb[:, 2] - fb[:, 0], fb[:, 3] - fb[:, 1]
    nx = np.clip(np.floor((w - 2 * hw) / sx).astype(np.int64) + 1, 1, 20)
    ny = np.clip(np.floor((h - 2 * hh) / sy).astype(np.int64) + 1, 1, 10)
    total = nx * ny
    owner = np.repeat(np.arange(len(parcels)), total)
    j = np.arange(owner.size) - np.repeat(np.cumsum(total) - total, total)
    mx = (fb[:, 0] + fb[:, 2]) / 2
    my = (fb[:, 1] + fb[:, 3]) / 2
    lx = mx[owner] + (j % nx[owner] - (nx[owner] - 1) / 2) * sx[owner]
    ly = my[owner] + (j // nx[owner] - (ny[owner] - 1) / 2) * sy[owner]
    c, s = np.cos(angle[owner]), np.sin(angle[owner])
    dx, dy = lx - cx[owner], ly - cy[owner]
    x, y = cx[owner] + c * dx - s * dy, cy[owner] + s * dx + c * dy
    return owner, x, y, hw[owner], hh[owner]


def footprints(parcels: np.ndarray, codes: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Footprints strictly inside ``parcels`` (planar) and the parcel index of each, in parcel order."""
    if len(parcels) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    shapely.prepare(parcels)
    cen = shapely.centroid(parcels)
    cx, cy = shapely.get_x(cen), shapely.get_y(cen)
    owner, x, y, hw, hh = _lattice_spots(parcels, codes, angle, cx, cy)
    rects = rectangles(x, y, hw, hh, angle[owner])
    ok = shapely.contains_properly(parcels[owner], rectangles(x, y, hw + CLEARANCE, hh + CLEARANCE, angle[owner]))
    geoms, which = [rects[ok]], [owner[ok]]
    missing = np.setdiff1d(np.arange(len(parcels)), owner[ok])
    for factor in (0.3, 0.18):
        if missing.size == 0:
            break
        spot = shapely.point_on_surface(parcels[missing])
        inside = shapely.contains_properly(parcels[missing], cen[missing])
        px = np.where(inside, cx[missing], shapely.get_x(spot))
        py = np.where(inside, cy[missing], shapely.get_y(spot))
        size = np.sqrt(shapely.area(parcels[missing])) * factor
        full_w = np.array([SPECS[c][1] for c in codes[missing]])
        full_h = np.array([SPECS[c][2] for c in codes[missing]])
        rw, rh = np.minimum(full_w, size), np.minimum(full_h, size)
        rects = rectangles(px, py, rw, rh, angle[missing])
        clear = rectangles(px, py, rw + CLEARANCE, rh + CLEARANCE, angle[missing])
        ok = shapely.contains_properly(parcels[missing], clear) & (np.minimum(rw, rh) >= 2.0)
        geoms.append(rects[ok])
        which.append(missing[ok])
        missing = missing[~ok]
    built, parcel_of = np.concatenate(geoms), np.concatenate(which)
    order = np.argsort(parcel_of, kind="stable")
    built, parcel_of = built[order], parcel_of[order]
    keep = rank_within(parcel_of) < MAX_PER_PARCEL
    return built[keep], parcel_of[keep]


def buildings_for(parcels: np.ndarray, codes: np.ndarray, angle: np.ndarray, rng: np.random.Generator) -> Buildings:
    """Footprints and attributes for the parcels whose land code has a building spec."""
    built = np.flatnonzero(np.isin(codes, list(SPECS)))
    geoms, local = footprints(parcels[built], codes[built], angle[built])
    parcel = built[local]
    spec = [SPECS[c] for c in codes[parcel]]
    n = len(parcel)
    lo, hi = np.array([s[5] for s in spec], dtype=np.int64), np.array([s[6] for s in spec], dtype=np.int64)
    floors = lo + np.floor(rng.random(n) ** 1.6 * (hi - lo + 1)).astype(np.int64)
    floors = np.minimum(floors, hi)
    per_floor = np.array([s[7] for s in spec])
    height = np.round(floors * per_floor + rng.uniform(0.3, 1.5, n), 1)
    uses = [s[0][i % len(s[0])] for s, i in zip(spec, rng.integers(0, 6, n).tolist(), strict=True)]
    y0 = np.array([s[8] for s in spec])
    y1 = np.array([s[9] for s in spec])
    first = (np.array(y0 - 1980) * 365.25).astype(np.int64)
    last = (np.array(y1 - 1980 + 1) * 365.25).astype(np.int64) - 1
    days = first + np.floor(rng.random(n) * (last - first + 1)).astype(np.int64)
    completed = (_START + days).astype("datetime64[D]")
    completed = np.minimum(completed, np.datetime64("2024-12-31"))
    return Buildings(geoms, parcel, rank_within(parcel) + 1, height, floors, uses, completed)
