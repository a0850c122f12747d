"""A deterministic, plausible landscape for the sample county, drawn as arrays.

One geography is shared by the imagery and the DEM: a plain in the north-west with fields, ponds,
villages and a town, a river meandering from the west to the north-east, and forested hills rising
in the south-east. Positions are ground metres east (``e``) and north (``n``) of the county centre
(121.55E, 29.85N). Everything is vectorised numpy on row strips; no randomness outside seeded
generators, so the same call always draws the same pixels.

Imagery for the second date differs from the first: the season changes the crops, and a
development zone south-east of the town is cleared and partly built up.
"""

from __future__ import annotations

import math

import numpy as np

LON0, LAT0 = 121.55, 29.85
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT0))

# field parcels are aligned on a grid turned by this angle (radians)
_THETA = 0.2
_COS, _SIN = math.cos(_THETA), math.sin(_THETA)
_TOWN = (-1800.0, 1200.0, 1100.0)  # centre e, n and radius (m)
_DEV_ZONE = (-640.0, 260.0, 2290.0, 2890.0)  # u0, u1, v0, v1 in the parcel grid (m)

# colours (R, G, B) by season: 0 = November, 1 = May
_CROPS = (
    ((168, 152, 104), (118, 96, 72), (96, 124, 64), (150, 140, 96), (112, 134, 78)),
    ((72, 104, 82), (84, 130, 62), (176, 160, 98), (64, 96, 90), (98, 138, 70)),
)
_ROOFS = np.array([(150, 150, 150), (168, 84, 64), (112, 124, 140), (190, 186, 178), (134, 106, 92)])
_NEW_ROOFS = np.array([(214, 218, 222), (80, 130, 190), (200, 204, 210)])


def to_ground(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground metres east and north of the county centre (local equirectangular)."""
    return (lon - LON0) * M_PER_DEG_LON, (lat - LAT0) * M_PER_DEG_LAT


def river_distance(e: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (m) from the river's centre line and the river's half width at ``e``."""
    centre = 400.0 + 0.3 * e + 420.0 * np.sin(e / 1300.0) + 140.0 * np.sin(e / 370.0 + 1.0)
    slope = 0.3 + 420.0 / 1300.0 * np.cos(e / 1300.0) + 140.0 / 370.0 * np.cos(e / 370.0 + 1.0)
    dist = np.abs(n - centre) / np.sqrt(1.0 + slope * slope)
    return dist, 32.0 + 8.0 * np.sin(e / 900.0)


def hill_mask(e: np.ndarray, n: np.ndarray) -> np.ndarray:
    """0 on the plain, rising to 1 in the south-eastern hills (smooth, no noise)."""
    s = (0.75 * e - 0.66 * n - 5200.0 + 900.0 * np.sin(n / 1700.0) + 600.0 * np.cos(e / 2300.0)) / 1400.0
    return 1.0 / (1.0 + np.exp(-s))


def resize(coarse: np.ndarray, shape: tuple[int, int], cell: float, smooth: bool = True) -> np.ndarray:
    """Separable bilinear upsampling of a coarse grid to ``shape`` (``cell`` pixels per cell).

    With ``smooth`` the weights are smooth-stepped, which hides the grid in noise.
    """

    def weights(size: int) -> tuple[np.ndarray, np.ndarray]:
        pos = np.arange(size, dtype=np.float32) / cell
        floor = np.floor(pos)
        f = pos - floor
        i0 = floor.astype(np.int32)
        return i0, (f * f * (3 - 2 * f)) if smooth else f

    y0, fy = weights(shape[0])
    x0, fx = weights(shape[1])
    rows = coarse[:, x0] * (1 - fx) + coarse[:, x0 + 1] * fx
    fy = fy[:, None]
    return rows[y0] * (1 - fy) + rows[y0 + 1] * fy


def _noise_at(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Value noise in [-1, 1] at positions given in lattice cells (any orientation)."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    ix, iy = (x0 - x0.min()).astype(np.int32), (y0 - y0.min()).astype(np.int32)
    lattice = rng.uniform(-1, 1, (int(iy.max()) + 2, int(ix.max()) + 2)).astype(np.float32)
    top = lattice[iy, ix] * (1 - fx) + lattice[iy, ix + 1] * fx
    bottom = lattice[iy + 1, ix] * (1 - fx) + lattice[iy + 1, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def _octave(e: np.ndarray, n: np.ndarray, wavelength: float, rng: np.random.Generator) -> np.ndarray:
    """One octave of noise on a lattice turned by a random angle, so no grid shows.

    Long wavelengths are evaluated on every 2nd or 4th position and interpolated (they are smooth).
    """
    angle = rng.uniform(0, np.pi)
    c, s = np.float32(np.cos(angle) / wavelength), np.float32(np.sin(angle) / wavelength)
    cells = wavelength / _spacing(e)
    step = 4 if cells >= 40 else 2 if cells >= 12 else 1
    es, ns = e[::step, ::step], n[::step, ::step]
    values = _noise_at(es * c + ns * s, ns * c - es * s, rng)
    if step == 1:
        return values
    padded = np.pad(values, ((0, 1), (0, 1)), mode="edge")
    return resize(padded, e.shape, step, smooth=False)


def _spacing(e: np.ndarray) -> float:
    """Grid spacing (m) of a 2-D array of eastings."""
    return float(abs(e[0, 1] - e[0, 0])) if e.shape[1] > 1 else 1.0


def elevation(e: np.ndarray, n: np.ndarray, seed: int = 7) -> np.ndarray:
    """Elevation (m) at ground positions ``e``, ``n`` (2-D float32 arrays of metres)."""
    rng = np.random.default_rng(seed)
    ridged = np.zeros(e.shape, np.float32)
    for wavelength, weight in ((5000, 0.42), (2300, 0.3), (1000, 0.16), (430, 0.08), (170, 0.04)):
        ridged += weight * (1.0 - np.abs(_octave(e, n, wavelength, rng)))
    hills = hill_mask(e, n).astype(np.float32)
    plain = 4.0 + 2.5 * _octave(e, n, 3000, rng)
    knolls = np.clip(_octave(e, n, 1400, rng) - 0.55, 0, None) * 160.0
    height = plain + knolls * ridged + hills * (60.0 + 720.0 * ridged**1.6)
    dist, half_width = river_distance(e, n)
    valley = np.exp(-((dist / 700.0) ** 2))
    height = height * (1.0 - 0.85 * valley) + 2.0 * valley
    return np.where(dist < half_width, 1.2, height).astype(np.float32)


def _hash(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) for integer cell indices."""
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ (salt * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65536.0


def _buildings(u, v, period_u, period_v, size_u, size_v):
    """Rows of rectangular footprints on a (u, v) lattice; returns the mask and per-building ids."""
    iu, iv = np.floor(u / period_u), np.floor(v / period_v)
    mask = ((u - iu * period_u) < size_u) & ((v - iv * period_v) < size_v)
    return mask, iu, iv


def _paint(rgb: np.ndarray, mask: np.ndarray, colour) -> None:
    """Set the masked pixels of an (3, h, w) image to ``colour`` (a triple or (3, h, w) array)."""
    for k in range(3):
        value = colour[k] if np.ndim(colour[k]) == 0 else colour[k][mask]
        rgb[k][mask] = value


def _fields(u, v, season: int) -> np.ndarray:
    """Cropland: parcels of about 90 x 35 m with a crop each, ridges between them."""
    pu, pv = np.floor(u / 90.0), np.floor(v / 35.0)
    crop = (_hash(pu, pv, 1) * len(_CROPS[season])).astype(np.int32)
    palette = np.array(_CROPS[season], np.float32)
    shade = 0.88 + 0.24 * _hash(pu, pv, 2 + season)
    rgb = np.ascontiguousarray(np.moveaxis(palette[crop], -1, 0)) * shade
    rgb += (2.5 * np.sin(v * 4.2))  # crop rows
    ridge = ((u - pu * 90.0) < 1.3) | ((v - pv * 35.0) < 1.3)
    _paint(rgb, ridge, (150, 142, 112))
    return rgb


def _settlements(rgb, u, v, e, n, season: int) -> None:
    """Villages on the plain and the town, with roof colours, streets and shadows."""
    cell_u, cell_v = np.floor(u / 420.0), np.floor(v / 320.0)
    du, dv = u - cell_u * 420.0, v - cell_v * 320.0
    village = (du > 90) & (du < 330) & (dv > 70) & (dv < 250) & (_hash(cell_u, cell_v, 5) < 0.16)
    de, dn = e - _TOWN[0], n - _TOWN[1]
    angle = np.arctan2(dn, de)
    town = np.hypot(de, dn) < _TOWN[2] + 110.0 * np.sin(angle * 3) + 70.0 * np.sin(angle * 7 + 1.0)
    ground = village | town
    if not ground.any():
        return
    _paint(rgb, ground, (128, 124, 112))
    # the rest is drawn on the settled pixels only
    uu, vv, in_town = u[ground], v[ground], town[ground]
    houses, hu, hv = _buildings(uu, vv, 16.0, 14.0, 11.0, 9.0)
    blocks, bu, bv = _buildings(uu, vv, 34.0, 24.0, 24.0, 13.0)
    roofs = np.where(in_town, blocks & ((uu % 170.0) > 14) & ((vv % 130.0) > 12), houses)
    shadow_h, _, _ = _buildings(uu + 2.5, vv + 2.0, 16.0, 14.0, 11.0, 9.0)
    shadow_b, _, _ = _buildings(uu + 3.5, vv + 3.0, 34.0, 24.0, 24.0, 13.0)
    shadow = np.where(in_town, shadow_b, shadow_h) & ~roofs
    ids = np.where(in_town, _hash(bu, bv, 9), _hash(hu, hv, 9))
    colour = np.where(shadow[:, None], np.float32(62), _ROOFS[(ids * len(_ROOFS)).astype(np.int32)])
    streets = in_town & (((uu % 170.0) < 10) | ((vv % 130.0) < 8))
    colour[streets] = (96, 96, 98)
    drawn = roofs | shadow | streets
    where = np.flatnonzero(ground.ravel())[drawn]
    for k in range(3):
        rgb[k].ravel()[where] = colour[drawn, k]


def _development(rgb, u, v, season: int) -> None:
    """The development zone: fields in November 2023; cleared land and new plants by May 2024."""
    if season == 0:
        return
    u0, u1, v0, v1 = _DEV_ZONE
    zone = (u > u0) & (u < u1) & (v > v0) & (v < v1)
    if not zone.any():
        return
    _paint(rgb, zone, (176, 146, 110))
    plants, pu, pv = _buildings(u - u0, v - v0, 140.0, 110.0, 96.0, 62.0)
    built = zone & plants & (u < (u0 + u1) / 2 + 60)
    roof = np.moveaxis(_NEW_ROOFS[(_hash(pu, pv, 11) * len(_NEW_ROOFS)).astype(np.int32)], -1, 0)
    _paint(rgb, built, roof)
    track = zone & ((np.abs(v - (v0 + v1) / 2) < 7) | (np.abs(u - (u0 + 40)) < 6))
    _paint(rgb, track, (104, 104, 106))


def _ponds_and_forest(rgb, u, v, e, n, season: int) -> None:
    """Fish ponds among the fields and forest on the hills."""
    pu, pv = np.floor(u / 90.0), np.floor(v / 35.0)
    ponds = (_hash(np.floor(pu / 3), np.floor(pv / 4), 3) < 0.07) & ((u - pu * 90) > 4) & ((v - pv * 35) > 4)
    _paint(rgb, ponds, (58, 84, 78) if season else (66, 88, 84))
    _paint(rgb, hill_mask(e, n) > 0.45, (46, 74, 44) if season else (52, 72, 44))


def _roads_and_river(rgb, u, v, e, n, season: int) -> None:
    """Trunk and farm roads, then the river with its green banks."""
    farm_road = ((v % 315.0) < 4.0) & (hill_mask(e, n) < 0.45)
    trunk = ((u % 1260.0) < 14.0) | ((v % 945.0) < 12.0)
    _paint(rgb, farm_road, (170, 166, 152))
    _paint(rgb, trunk, (88, 88, 92))
    dist, half = river_distance(e, n)
    _paint(rgb, (dist < half + 14.0) & ~trunk, (92, 118, 72))
    _paint(rgb, dist < half, (54, 78, 86) if season else (64, 86, 92))


def imagery_strip(lon: np.ndarray, lat: np.ndarray, season: int, seed: int) -> np.ndarray:
    """RGB uint8 (3, len(lat), len(lon)) for pixel centres at ``lon`` (columns) x ``lat`` (rows)."""
    e, n = to_ground(lon[None, :], lat[:, None])
    e, n = e.astype(np.float32), n.astype(np.float32)  # (1, w) and (h, 1): broadcast on use
    u = e * np.float32(_COS) + n * np.float32(_SIN)
    v = n * np.float32(_COS) - e * np.float32(_SIN)
    rgb = _fields(u, v, season)
    _ponds_and_forest(rgb, u, v, e, n, season)
    _settlements(rgb, u, v, e, n, season)
    _roads_and_river(rgb, u, v, e, n, season)
    _development(rgb, u, v, season)
    rng = np.random.default_rng(seed)
    grain = rng.integers(-7, 8, size=(lat.size, lon.size), dtype=np.int16).astype(np.float32)
    rgb += grain
    return np.clip(rgb, 0, 255).astype(np.uint8)
