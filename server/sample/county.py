"""The fixed layout of the sample county 330212: outline, towns and their built-up cores, cadastral
subzones (villages and communities), rivers, reservoirs, roads and the terrain.

The layout does not depend on the scale: only the density of patches and parcels does. Positions
are given as fractions (u east, v north) of the county's bounding box and built in EPSG:4549.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely

from server.sample import names
from server.sample.geom import Projector, clip_pieces, hilbert_key, rotate_points

BOX = (121.40, 29.75, 121.70, 29.95)
COUNTY_CODE = "330212"
COUNTY_NAME = "示例县"
CITY_CODE = "330200"
LAYOUT_SEED = 330212

# name, (u, v), core radius (m), street spacing (m), street half width (m)
TOWNS = (
    ("城关街道", (0.50, 0.61), 2300.0, 380.0, 12.0),
    ("东溪镇", (0.77, 0.62), 1100.0, 300.0, 8.0),
    ("西岙镇", (0.25, 0.60), 1000.0, 300.0, 8.0),
    ("北渡镇", (0.46, 0.86), 850.0, 280.0, 7.0),
    ("南山镇", (0.53, 0.36), 900.0, 280.0, 7.0),
    ("梅林镇", (0.29, 0.40), 800.0, 260.0, 7.0),
    ("石桥乡", (0.78, 0.40), 700.0, 260.0, 6.0),
    ("龙泉乡", (0.31, 0.76), 700.0, 260.0, 6.0),
)
# (u, v), sigma (m), height (m)
HILLS = (
    ((0.14, 0.20), 2500.0, 460.0), ((0.40, 0.08), 2600.0, 560.0), ((0.64, 0.12), 2600.0, 430.0),
    ((0.90, 0.20), 2400.0, 340.0), ((0.92, 0.80), 2200.0, 320.0), ((0.06, 0.52), 2000.0, 260.0),
    ((0.66, 0.96), 2000.0, 250.0), ((0.34, 0.99), 1800.0, 220.0),
)
# (u, v) polylines: main river, two tributaries; half widths (m)
RIVERS = (
    (((-0.05, 0.50), (0.10, 0.52), (0.22, 0.555), (0.35, 0.53), (0.48, 0.56), (0.60, 0.535),
      (0.72, 0.57), (0.85, 0.55), (1.05, 0.58)), 50.0),
    (((0.44, -0.02), (0.46, 0.20), (0.50, 0.33), (0.465, 0.45), (0.48, 0.555)), 22.0),
    (((0.62, 1.02), (0.58, 0.85), (0.63, 0.70), (0.615, 0.54)), 18.0),
)
RESERVOIRS = (((0.30, 0.19), 750.0, 420.0), ((0.60, 0.20), 650.0, 380.0))
EXPRESSWAY = (((-0.05, 0.45), (0.30, 0.47), (0.60, 0.455), (1.05, 0.48)), 25.0)
ROAD_HALF_WIDTH = 12.0


def chaikin(points: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Smooth an open polyline by corner cutting."""
    for _ in range(rounds):
        a, b = points[:-1], points[1:]
        mid = np.empty((2 * len(a), 2))
        mid[0::2] = 0.75 * a + 0.25 * b
        mid[1::2] = 0.25 * a + 0.75 * b
        points = np.vstack([points[:1], mid, points[-1:]])
    return points


def polar_shape(cx: float, cy: float, radius: float, phases: np.ndarray, wobble=(0.18, 0.10, 0.05)) -> shapely.Polygon:
    """A smooth irregular blob: a circle whose radius varies with a few harmonics."""
    theta = np.linspace(0, 2 * np.pi, 181)[:-1]
    r = np.ones_like(theta)
    for k, (amp, phase) in enumerate(zip(wobble, phases, strict=True)):
        r += amp * np.sin((2 * k + 3) * theta + phase)
    return shapely.Polygon(np.column_stack([cx + radius * r * np.cos(theta), cy + radius * r * np.sin(theta)]))


@dataclass(frozen=True)
class Town:
    """A town: codes, centre, built-up core and its street grid orientation."""

    index: int
    code: str
    name: str
    x: float
    y: float
    radius: float
    street_spacing: float
    street_half_width: float
    angle: float
    industry_angle: float
    core: shapely.Geometry


class Layout:
    """Everything about the county that is independent of the requested scale."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(LAYOUT_SEED)
        self.proj = Projector()
        self.county = self._outline()
        self.bounds = tuple(shapely.bounds(self.county))
        self.towns = self._towns()
        self.town_polys = self._town_polygons()
        self._units()
        self.water_river, self.water_reservoir = self._water()
        self.roads, self.streets = self._roads()

    # -- frame -------------------------------------------------------------------------------------

    def uv(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """Box fractions to planar metres."""
        lon = BOX[0] + np.asarray(u, float) * (BOX[2] - BOX[0])
        lat = BOX[1] + np.asarray(v, float) * (BOX[3] - BOX[1])
        return self.proj.to_plane(lon, lat)

    def _outline(self) -> shapely.Polygon:
        theta = np.linspace(0, 2 * np.pi, 721)[:-1]
        phases = self.rng.uniform(0, 2 * np.pi, 6)
        r = 1.0
        for k, amp in zip((2, 3, 5, 7, 11, 17), (0.07, 0.06, 0.04, 0.025, 0.015, 0.008), strict=True):
            r = r + amp * np.sin(k * theta + phases[(k * 7) % 6])
        u = np.clip(0.5 + 0.44 * r * np.cos(theta), 0.005, 0.995)
        v = np.clip(0.5 + 0.44 * r * np.sin(theta), 0.005, 0.995)
        x, y = self.uv(u, v)
        return shapely.Polygon(np.column_stack([x, y]))

    # -- towns -------------------------------------------------------------------------------------

    def _towns(self) -> list[Town]:
        towns = []
        for i, (name, (u, v), radius, spacing, half) in enumerate(TOWNS):
            x, y = self.uv(u, v)
            core = polar_shape(float(x), float(y), radius, self.rng.uniform(0, 2 * np.pi, 3))
            towns.append(Town(
                index=i, code=f"{COUNTY_CODE}{i + 1:03d}", name=name, x=float(x), y=float(y),
                radius=radius, street_spacing=spacing, street_half_width=half,
                angle=float(self.rng.uniform(-0.45, 0.45)), industry_angle=float(self.rng.uniform(0, 2 * np.pi)),
                core=core,
            ))
        return towns

    def _town_polygons(self) -> np.ndarray:
        pts = shapely.multipoints([(t.x, t.y) for t in self.towns])
        cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=self.county.buffer(5000), ordered=True))
        polys = shapely.intersection(cells, self.county)
        self.towns = [
            Town(**{**t.__dict__, "core": shapely.intersection(t.core, polys[t.index])}) for t in self.towns
        ]
        return polys

    @cached_property
    def cores(self) -> shapely.Geometry:
        """The union of the towns' built-up cores."""
        return shapely.union_all([t.core for t in self.towns])

    @cached_property
    def udb(self) -> list[shapely.Geometry]:
        """Urban development boundaries: each core grown by a fifth of its radius, within its town."""
        return [
            shapely.intersection(shapely.buffer(t.core, 0.2 * t.radius, quad_segs=8), self.town_polys[t.index])
            for t in self.towns
        ]

    @cached_property
    def udb_union(self) -> shapely.Geometry:
        """The union of the urban development boundaries."""
        return shapely.union_all(self.udb)

    # -- cadastral subzones --------------------------------------------------------------------------

    def _subzone_seeds(self) -> tuple[np.ndarray, np.ndarray]:
        pts, urban = [], []
        for t in self.towns:
            # community seeds on street crossings, an even number of blocks apart: their cells
            # then meet along streets
            wanted = 1300.0 if t.radius > 1500 else 900.0
            step = t.street_spacing * 2 * max(1, round(wanted / (2 * t.street_spacing)))
            n = np.ceil(t.radius * 1.3 / step)
            g = np.arange(-n, n + 1) * step
            gx, gy = np.meshgrid(g, g)
            x, y = rotate_points(t.x + gx.ravel(), t.y + gy.ravel(), t.angle, t.x, t.y)
            inside = shapely.contains_xy(t.core, x, y)
            if not inside.any():
                x, y, inside = np.array([t.x]), np.array([t.y]), np.array([True])
            pts.append(np.column_stack([x[inside], y[inside]]))
            urban.append(np.ones(int(inside.sum()), bool))
        minx, miny, maxx, maxy = self.bounds
        gx, gy = np.meshgrid(np.arange(minx, maxx, 2100.0), np.arange(miny, maxy, 2100.0))
        x = gx.ravel() + self.rng.uniform(0.2, 0.8, gx.size) * 2100.0
        y = gy.ravel() + self.rng.uniform(0.2, 0.8, gy.size) * 2100.0
        keep = shapely.contains_xy(self.county, x, y) & ~shapely.contains_xy(shapely.buffer(self.cores, 400), x, y)
        pts.append(np.column_stack([x[keep], y[keep]]))
        urban.append(np.zeros(int(keep.sum()), bool))
        return np.vstack(pts), np.concatenate(urban)

    def _units(self) -> None:
        """Cadastral subzones: village / community cells cut by the town boundaries."""
        seeds, urban = self._subzone_seeds()
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=self.county.buffer(5000), ordered=True)
        )
        pieces, seed_idx, town_idx = clip_pieces(cells, self.town_polys)
        rep = shapely.point_on_surface(pieces)
        key = hilbert_key(shapely.get_x(rep), shapely.get_y(rep), self.bounds)
        order = np.lexsort((key, ~urban[seed_idx], town_idx))
        self.units = pieces[order]
        self.unit_town = town_idx[order]
        self.unit_urban = urban[seed_idx[order]]
        starts = np.searchsorted(self.unit_town, self.unit_town, side="left")
        self.unit_no = np.arange(len(order)) - starts + 1
        sx, sy = seeds[seed_idx[order], 0], seeds[seed_idx[order], 1]
        own = shapely.contains_xy(self.units, sx, sy)
        rep = shapely.point_on_surface(self.units)
        self.unit_cx = np.where(own, sx, shapely.get_x(rep))
        self.unit_cy = np.where(own, sy, shapely.get_y(rep))
        self.unit_angle = self.rng.uniform(-np.pi / 2, np.pi / 2, len(order))
        self.unit_name = names.subzone_names(self.unit_urban, self.rng)

    # -- linear features ----------------------------------------------------------------------------

    def _line(self, uv_points, wiggle: float = 0.0) -> shapely.LineString:
        pts = np.asarray(uv_points, float)
        x, y = self.uv(pts[:, 0], pts[:, 1])
        line = chaikin(np.column_stack([x, y]))
        if wiggle:
            d = np.gradient(line, axis=0)
            normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.hypot(d[:, 0], d[:, 1])[:, None]
            t = np.linspace(0, 1, len(line))
            line = line + normal * (wiggle * np.sin(t * 40 + self.rng.uniform(0, 6)) * np.sin(np.pi * t))[:, None]
        return shapely.LineString(line)

    def _water(self) -> tuple[shapely.Geometry, shapely.Geometry]:
        rivers = [self._line(pts, wiggle=160.0).buffer(half, quad_segs=4) for pts, half in RIVERS]
        reservoirs = []
        for (u, v), a, b in RESERVOIRS:
            x, y = self.uv(u, v)
            blob = polar_shape(float(x), float(y), 1.0, self.rng.uniform(0, 6, 3))
            coords = shapely.get_coordinates(blob) - [x, y]
            angle = self.rng.uniform(0, np.pi)
            ex, ey = rotate_points(coords[:, 0] * a, coords[:, 1] * b, angle, 0.0, 0.0)
            reservoirs.append(shapely.Polygon(np.column_stack([ex + x, ey + y])))
        river = shapely.intersection(shapely.union_all(rivers), self.county)
        reservoir = shapely.difference(shapely.intersection(shapely.union_all(reservoirs), self.county), river)
        return river, reservoir

    def _roads(self) -> tuple[shapely.Geometry, shapely.Geometry]:
        seat = self.towns[0]
        lines = [self._line(EXPRESSWAY[0]).buffer(EXPRESSWAY[1], quad_segs=2)]
        for t in self.towns[1:]:
            mid = ((seat.x + t.x) / 2 + self.rng.normal(0, 600), (seat.y + t.y) / 2 + self.rng.normal(0, 600))
            pts = chaikin(np.array([(seat.x, seat.y), mid, (t.x, t.y)]), rounds=3)
            lines.append(shapely.LineString(pts).buffer(ROAD_HALF_WIDTH, quad_segs=2))
        water = shapely.union(self.water_river, self.water_reservoir)
        roads = shapely.difference(shapely.union_all(lines), shapely.union(self.cores, water))
        roads = shapely.intersection(roads, self.county)
        streets = shapely.difference(shapely.union_all([self._street_grid(t) for t in self.towns]), water)
        return roads, streets

    def _street_grid(self, t: Town) -> shapely.Geometry:
        n = np.ceil(t.radius * 1.4 / t.street_spacing)
        r = n * t.street_spacing
        offs = np.arange(-n, n + 1) * t.street_spacing
        segs = [((-r, o), (r, o)) for o in offs] + [((o, -r), (o, r)) for o in offs]
        arr = np.array(segs, float)
        x, y = rotate_points(t.x + arr[..., 0], t.y + arr[..., 1], t.angle, t.x, t.y)
        grid = shapely.MultiLineString(np.stack([x, y], axis=-1).tolist())
        streets = shapely.intersection(grid, t.core).buffer(t.street_half_width, quad_segs=2, cap_style="flat")
        return shapely.intersection(streets, t.core)

    # -- fields used to classify land ---------------------------------------------------------------

    @cached_property
    def _hill_params(self) -> np.ndarray:
        rows = []
        for (u, v), sigma, height in HILLS:
            x, y = self.uv(u, v)
            rows.append((float(x), float(y), sigma, height))
        return np.array(rows)

    def elevation(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Terrain height in metres: a few hills over a low plain, with some ripples."""
        h = np.full(np.shape(x), 4.0)
        for hx, hy, sigma, height in self._hill_params:
            h += height * np.exp(-((x - hx) ** 2 + (y - hy) ** 2) / (2 * sigma**2))
        ripple = np.sin(x / 1900.0 + 1.3) * np.sin(y / 1500.0 + 0.4) + 0.5 * np.sin((x + y) / 900.0)
        return h * (1 + 0.25 * ripple)

    def core_ratio(self, x: np.ndarray, y: np.ndarray, town: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Distance to the town centre over the core radius (< 1 inside the built-up core)."""
        tx = np.array([t.x for t in self.towns])[town]
        ty = np.array([t.y for t in self.towns])[town]
        tr = np.array([t.radius for t in self.towns])[town] * scale
        return np.hypot(x - tx, y - ty) / tr

    def in_core(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True for points inside a town's built-up core."""
        return shapely.contains_xy(self.cores, x, y)

    def industry_side(self, x: np.ndarray, y: np.ndarray, town: np.ndarray) -> np.ndarray:
        """True on the side of a town where its industrial estate lies."""
        tx = np.array([t.x for t in self.towns])[town]
        ty = np.array([t.y for t in self.towns])[town]
        ang = np.array([t.industry_angle for t in self.towns])[town]
        diff = np.angle(np.exp(1j * (np.arctan2(y - ty, x - tx) - ang)))
        return np.abs(diff) < 0.75

    def river_distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance (m) to the nearest river."""
        return np.asarray(shapely.distance(self.water_river, shapely.points(x, y)))
