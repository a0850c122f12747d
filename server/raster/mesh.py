"""Cesium quantized-mesh terrain tiles from a DEM COG (pydelatin + quantized-mesh-encoder).

Grid: geographic (EPSG:4326), two root tiles at level 0, ``y`` counted from the south (TMS), as
CesiumJS's ``CesiumTerrainProvider`` expects. A tile of level ``z`` spans ``180 / 2**z`` degrees.

Each tile samples the DEM on a regular (GRID+1)^2 lattice whose outer rows and columns lie exactly
on the tile's edges, at positions computed from global integer indices, so two neighbours sample a
shared edge at the same coordinates from the same overview (the overview is chosen by level alone)
and get the same heights. Delatin simplifies the lattice to a TIN within a level-dependent error;
every lattice point on the tile border is then put back into the TIN (fanning the border triangles)
so that neighbouring tiles have the same vertices along their common edge: no cracks.
"""

from __future__ import annotations

import io
import math

import numpy as np
import rasterio
from pydelatin import Delatin
from quantized_mesh_encoder import VertexNormalsExtension, encode

from server.elevation import heights_at

GRID = 64


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """West, south, east, north (degrees) of TMS tile ``z/x/y`` of the geographic 2x1 grid."""
    size = 180.0 / 2**z
    return -180.0 + x * size, -90.0 + y * size, -180.0 + (x + 1) * size, -90.0 + (y + 1) * size


def lattice(z: int, x: int, y: int, n: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes (west to east) and latitudes (north to south) of a tile's sample lattice."""
    step = 180.0 / 2**z / n
    lon = -180.0 + (x * n + np.arange(n + 1)) * step
    lat = -90.0 + (y * n + np.arange(n, -1, -1)) * step
    return lon, lat


def max_error(z: int) -> float:
    """Allowed vertical error (m) of the TIN at level ``z``: a fraction of the lattice spacing."""
    spacing_m = 180.0 / 2**z / GRID * 111_320.0
    return float(min(50.0, max(0.25, spacing_m * 0.04)))


def overview_for(src: rasterio.io.DatasetReader, z: int) -> int | None:
    """The coarsest overview (index for ``overview_level``) still finer than the level's spacing."""
    spacing_m = 180.0 / 2**z / GRID * 111_320.0 * math.cos(math.radians(30))
    base = abs(src.transform.a) * (1.0 if src.crs.is_projected else 111_320.0)
    chosen = None
    for i, factor in enumerate(src.overviews(1)):
        if base * factor <= spacing_m:
            chosen = i
    return chosen


def sample_heights(src, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Bilinear heights (m) of ``src`` at the lattice ``lat`` x ``lon``; 0 where there is no data."""
    glon, glat = np.meshgrid(lon, lat)
    return heights_at(src, glon, glat)


def _border_points(a: tuple[int, int], b: tuple[int, int], n: int) -> list[tuple[int, int]] | None:
    """Lattice points strictly between ``a`` and ``b`` when both lie on the same tile border."""
    (ax, ay), (bx, by) = a, b
    if ax == bx and ax in (0, n) and abs(ay - by) > 1:
        step = 1 if by > ay else -1
        return [(ax, yy) for yy in range(ay + step, by, step)]
    if ay == by and ay in (0, n) and abs(ax - bx) > 1:
        step = 1 if bx > ax else -1
        return [(xx, ay) for xx in range(ax + step, bx, step)]
    return None


def fill_borders(vertices: np.ndarray, triangles: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Add every border lattice point as a vertex, fanning border triangles from their third corner."""
    coords = [(int(x), int(y)) for x, y in vertices[:, :2]]
    index = {p: i for i, p in enumerate(coords)}
    pending = [(int(a), int(b), int(c)) for a, b, c in triangles]
    done: list[tuple[int, int, int]] = []
    while pending:
        tri = pending.pop()
        for k in range(3):
            a, b, c = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
            between = _border_points(coords[a], coords[b], n)
            if between:
                chain = [a]
                for p in between:
                    if p not in index:
                        index[p] = len(coords)
                        coords.append(p)
                    chain.append(index[p])
                chain.append(b)
                pending.extend((chain[i], chain[i + 1], c) for i in range(len(chain) - 1))
                break
        else:
            done.append(tri)
    return np.array(coords, dtype=np.int64), np.array(done, dtype=np.uint32)


def first_use_order(positions: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber vertices in order of first use by the triangles, as the format's high-water-mark
    index encoding requires (the encoder writes indices as given)."""
    flat = triangles.ravel()
    _, first = np.unique(flat, return_index=True)
    used = flat[np.sort(first)]
    renumber = np.empty(len(positions), dtype=np.uint32)
    renumber[used] = np.arange(len(used), dtype=np.uint32)
    return positions[used], renumber[triangles]


def terrain_tile(src, z: int, x: int, y: int, normals: bool = False) -> bytes:
    """The quantized-mesh tile ``z/x/y`` (TMS) from the open DEM dataset ``src``; with ``normals``, the
    ``octvertexnormals`` extension (per-vertex oct-encoded normals, for lighting) follows the mesh."""
    lon, lat = lattice(z, x, y)
    heights = sample_heights(src, lon, lat)
    tin = Delatin(heights, max_error=max_error(z))
    points, triangles = fill_borders(tin.vertices, tin.triangles, GRID)
    px, py = points[:, 0], points[:, 1]
    positions = np.column_stack([lon[px], lat[py], heights[py, px].astype(np.float64)])
    # counter-clockwise seen from above (lon east, lat north)
    p0, p1, p2 = (positions[triangles[:, i], :2] for i in range(3))
    cross = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    flip = cross < 0
    triangles[flip] = triangles[flip][:, [0, 2, 1]]
    positions, triangles = first_use_order(positions, triangles)
    buf = io.BytesIO()
    with np.errstate(divide="ignore", invalid="ignore"):  # flat tiles: degenerate horizon terms
        extensions = [VertexNormalsExtension(indices=triangles, positions=positions)] if normals else []
        encode(buf, positions, triangles, bounds=tile_bounds(z, x, y), extensions=extensions)
    return buf.getvalue()
