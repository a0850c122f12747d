"""Vectorised geometry helpers for the sample generator (shapely 2 arrays, numpy indices).

Everything here works in the planar generation frame (EPSG:4549, metres).
"""

from __future__ import annotations

import numpy as np
import pyproj
import shapely
from shapely import STRtree

GEN_EPSG = 4549
OUT_EPSG = 4490
_POLYGON = shapely.GeometryType.POLYGON


def explode_polygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The polygon parts of each geometry (collections included), and the index of their source."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    parts, sub_index = shapely.get_parts(parts, return_index=True)
    index = index[sub_index]
    keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
    keep &= shapely.area(parts) > 0
    return parts[keep], index[keep]


def to_multipolygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One MultiPolygon per input that has polygonal area, and the indices of those inputs."""
    geoms = np.asarray(geoms, dtype=object)
    simple = (shapely.get_type_id(geoms) == _POLYGON) & ~shapely.is_empty(geoms)
    out = np.empty(len(geoms), dtype=object)
    out[simple] = shapely.multipolygons(geoms[simple], indices=np.arange(int(simple.sum())))
    rest = np.flatnonzero(~simple)
    keep = simple.copy()
    if rest.size:
        parts, index = explode_polygons(geoms[rest])
        kept, inverse = np.unique(index, return_inverse=True)
        out[rest[kept]] = shapely.multipolygons(parts, indices=inverse)
        keep[rest[kept]] = True
    return out[keep], np.flatnonzero(keep)


def clip_pieces(cells: np.ndarray, covers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``cells`` by a set of non-overlapping ``covers``.

    Returns the polygon pieces, the index of the cell and the index of the cover of each piece.
    Cells wholly inside a cover are kept as they are; the others are intersected.
    """
    tree = STRtree(cells)
    shapely.prepare(covers)
    cover_in, cell_in = tree.query(covers, predicate="contains_properly")
    cover_x, cell_x = tree.query(covers, predicate="intersects")
    inside = np.zeros(len(cells), dtype=bool)
    inside[cell_in] = True
    mask = ~inside[cell_x]
    cover_x, cell_x = cover_x[mask], cell_x[mask]
    cut = shapely.intersection(cells[cell_x], covers[cover_x])
    parts, src = explode_polygons(cut)
    pieces = np.concatenate([cells[cell_in], parts])
    cell_idx = np.concatenate([cell_in, cell_x[src]])
    cover_idx = np.concatenate([cover_in, cover_x[src]])
    order = np.lexsort((cover_idx, cell_idx))
    return pieces[order], cell_idx[order], cover_idx[order]


def rotate_points(x, y, angles, cx, cy) -> tuple[np.ndarray, np.ndarray]:
    """Rotate points about centres by angles (radians, counter-clockwise)."""
    c, s = np.cos(angles), np.sin(angles)
    dx, dy = x - cx, y - cy
    return cx + c * dx - s * dy, cy + s * dx + c * dy


def frame_bounds(geoms: np.ndarray, angles: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Per-geometry bounds ``(minx, miny, maxx, maxy)`` in a frame rotated by ``-angle`` about (cx, cy)."""
    coords, idx = shapely.get_coordinates(geoms, return_index=True)
    x, y = rotate_points(coords[:, 0], coords[:, 1], -angles[idx], cx[idx], cy[idx])
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    out = np.empty((len(geoms), 4))
    out[idx[starts], 0] = np.minimum.reduceat(x, starts)
    out[idx[starts], 1] = np.minimum.reduceat(y, starts)
    out[idx[starts], 2] = np.maximum.reduceat(x, starts)
    out[idx[starts], 3] = np.maximum.reduceat(y, starts)
    return out


def rectangles(cx, cy, half_w, half_h, angles) -> np.ndarray:
    """Rotated rectangles (counter-clockwise rings) centred on (cx, cy)."""
    ux, uy = np.array([-1.0, 1.0, 1.0, -1.0, -1.0]), np.array([-1.0, -1.0, 1.0, 1.0, -1.0])
    lx = ux[None, :] * np.asarray(half_w)[:, None]
    ly = uy[None, :] * np.asarray(half_h)[:, None]
    c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
    x = np.asarray(cx)[:, None] + c * lx - s * ly
    y = np.asarray(cy)[:, None] + s * lx + c * ly
    return np.asarray(shapely.polygons(np.stack([x, y], axis=-1)))


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Start offsets of runs of equal values in a sorted array."""
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element within its group, groups given as a sorted key array."""
    starts = group_starts(groups)
    counts = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, counts)


def hilbert_key(x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float], bits: int = 16) -> np.ndarray:
    """Position of points along a Hilbert curve over ``bounds``: a spatially coherent sort key."""
    minx, miny, maxx, maxy = bounds
    n = 1 << bits
    xi = np.clip(((x - minx) / (maxx - minx) * (n - 1)).astype(np.int64), 0, n - 1)
    yi = np.clip(((y - miny) / (maxy - miny) * (n - 1)).astype(np.int64), 0, n - 1)
    d = np.zeros(len(xi), dtype=np.int64)
    s = n >> 1
    while s > 0:
        rx = (xi & s) > 0
        ry = (yi & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        flip = ~ry
        swap_x = np.where(flip & rx, n - 1 - xi, xi)
        swap_y = np.where(flip & rx, n - 1 - yi, yi)
        xi = np.where(flip, swap_y, swap_x)
        yi = np.where(flip, swap_x, swap_y)
        s >>= 1
    return d


class Projector:
    """Moves generated geometries from the planar frame (EPSG:4549) to lon/lat (EPSG:4490)."""

    def __init__(self) -> None:
        self._fwd = pyproj.Transformer.from_crs(OUT_EPSG, GEN_EPSG, always_xy=True)
        self._inv = pyproj.Transformer.from_crs(GEN_EPSG, OUT_EPSG, always_xy=True)

    def to_plane(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat to planar metres."""
        return self._fwd.transform(np.asarray(lon, float), np.asarray(lat, float))

    def to_plane_geoms(self, geoms: np.ndarray) -> np.ndarray:
        """A copy of lon/lat geometries in the planar frame."""
        coords = shapely.get_coordinates(geoms)
        x, y = self._fwd.transform(coords[:, 0], coords[:, 1])
        return shapely.set_coordinates(geoms.copy(), np.column_stack([x, y]))

    def to_lonlat(self, geoms: np.ndarray, decimals: int | None = None) -> np.ndarray:
        """A copy of the geometries in lon/lat, optionally rounded to ``decimals``."""
        coords = shapely.get_coordinates(geoms)
        lon, lat = self._inv.transform(coords[:, 0], coords[:, 1])
        out = np.column_stack([lon, lat])
        if decimals is not None:
            out = np.round(out, decimals)
        return shapely.set_coordinates(geoms.copy(), out)
