"""The sample county as batches of rows, collection by collection, ready for any writer.

Every random draw comes from a generator seeded by the scale and a fixed tag, so a given scale
always yields the same rows in the same order. Geometries leave here as MultiPolygons in EPSG:4490
(lon/lat); areas are computed before that, in the planar EPSG:4549 frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import shapely

from server.codes.classes import LAND_SURVEY_CLASSES, PLANNING_USE_CLASSES, land_class
from server.sample import names
from server.sample.buildings import buildings_for
from server.sample.controls import control_lines
from server.sample.county import CITY_CODE, COUNTY_CODE, COUNTY_NAME, Layout
from server.sample.geom import to_multipolygons
from server.sample.landuse import Patches, planning_zones, survey_patches
from server.sample.life import chunk_events
from server.sample.owners import PERSON_KINDS, Owners, household_counts
from server.sample.parcels import CHOICES, allocate, chunks, subdivide
from server.stores.batches import Batch

BASE_SEED = 37346
SURVEY_YEAR = 2023
SURVEY_DATE = "2023-12-31"
PLAN_NAME = f"{COUNTY_NAME}国土空间总体规划（2021—2035年）"
PLAN_DATE = "2023-06-30"
LINES_DATE = "2022-10-01"
CHUNK_PARCELS = 60_000
DECIMALS = 7  # coordinates are stored as served: lon/lat rounded to 7 decimals (~1 cm)
REGISTRATION = (np.datetime64("2015-01-01"), np.datetime64("2024-12-31"))


def _rng(scale: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, scale, *tags])


def _multi(layout: Layout, geoms) -> tuple[np.ndarray, np.ndarray]:
    """MultiPolygons in lon/lat on the 7-decimal grid features are served on, and their areas.

    Areas (m², 2 decimals) are those of the stored geometries, measured in EPSG:4549.
    """
    multi, kept = to_multipolygons(np.asarray(geoms, dtype=object))
    if len(kept) != len(geoms):
        raise RuntimeError("a generated feature has no area")
    lonlat = layout.proj.to_lonlat(multi, DECIMALS)
    bad = np.flatnonzero(~shapely.is_valid(lonlat))
    if bad.size:
        fixed, ok = to_multipolygons(shapely.make_valid(lonlat[bad]))
        if len(ok) == bad.size:
            fixed, ok = to_multipolygons(shapely.set_precision(fixed, 10.0**-DECIMALS))
        if len(ok) != bad.size:
            raise RuntimeError("a generated feature collapsed on the coordinate grid")
        lonlat[bad] = fixed
    return lonlat, np.round(shapely.area(layout.proj.to_plane_geoms(lonlat)), 2)


def admin_batch(layout: Layout) -> Batch:
    """The county and its towns."""
    geoms, _ = _multi(layout, [layout.county, *layout.town_polys])
    towns = layout.towns
    return Batch("admin_boundaries", {
        "code": [COUNTY_CODE] + [t.code for t in towns],
        "name": [COUNTY_NAME] + [t.name for t in towns],
        "level": ["county"] + ["town"] * len(towns),
        "parent_code": [CITY_CODE] + [COUNTY_CODE] * len(towns),
    }, geoms)


def survey_batch(layout: Layout, patches: Patches) -> Batch:
    """The land survey patches, ids 1..n."""
    geoms, area = _multi(layout, patches.geoms)
    classes = [land_class(c) for c in patches.code]
    n = len(patches)
    return Batch("land_survey", {
        "id": list(range(1, n + 1)),
        "land_code": [c[0] for c in classes],
        "land_name": [c[1] for c in classes],
        "class_code": [c[2] for c in classes],
        "class_name": [c[3] for c in classes],
        "county_code": [COUNTY_CODE] * n,
        "survey_year": [SURVEY_YEAR] * n,
        "survey_date": [SURVEY_DATE] * n,
        "area_m2": area.tolist(),
    }, geoms)


def planning_batch(layout: Layout, zones: Patches) -> Batch:
    """The planning use zones, ids 1..n."""
    geoms, area = _multi(layout, zones.geoms)
    n = len(zones)
    return Batch("planning_zones", {
        "id": list(range(1, n + 1)),
        "use_code": zones.code.tolist(),
        "use_name": [PLANNING_USE_CLASSES[c] for c in zones.code],
        "plan_name": [PLAN_NAME] * n,
        "approved_date": [PLAN_DATE] * n,
        "area_m2": area.tolist(),
    }, geoms)


def controls_batch(layout: Layout, patches: Patches, rng: np.random.Generator) -> Batch:
    """The three control lines."""
    lines = control_lines(layout, patches, rng)
    geoms, area = _multi(layout, lines.geoms)
    n = len(lines.geoms)
    return Batch("control_lines", {
        "id": list(range(1, n + 1)),
        "line_type": lines.line_type,
        "line_name": lines.line_name,
        "approved_date": [LINES_DATE] * n,
        "area_m2": area.tolist(),
    }, geoms)


def _dates(lo: np.datetime64, hi: np.datetime64, n: int, rng: np.random.Generator) -> list[str]:
    span = int((hi - lo).astype(int)) + 1
    return (lo + rng.integers(0, span, n)).astype("datetime64[D]").astype(str).tolist()


class ParcelMaker:
    """Parcels and their buildings, chunk by chunk (whole subzones per chunk)."""

    def __init__(self, layout: Layout, patches: Patches, scale: int) -> None:
        self.layout, self.patches, self.scale = layout, patches, scale
        self.alloc = allocate(patches, scale, _rng(scale, 4))
        kinds = np.array([c[4] for c in CHOICES] + [""], dtype=object)
        per_patch_people = np.where(np.isin(kinds[self.alloc.rule], PERSON_KINDS), self.alloc.count, 0)
        people = np.bincount(patches.cover, weights=per_patch_people, minlength=len(layout.units))
        households = household_counts(people)
        slots = names.person_slots(int(households.sum()), _rng(scale, 5))
        self.owners = Owners(households, slots, layout.unit_name, scale)

    def batches(self, progress: Callable[[str], None]) -> Iterator[Batch]:
        """Parcel and building batches, in unit-code order."""
        done = 0
        for units in chunks(self.patches, self.alloc, len(self.layout.units), CHUNK_PARCELS):
            rng = _rng(self.scale, 100, int(units[0]))
            made = self._parcels(units, rng)
            if made is None:
                continue
            parcels, geoms_planar, land_codes, angle = made
            yield parcels
            buildings = self._buildings(parcels, geoms_planar, land_codes, angle, rng)
            yield buildings
            yield self._events(parcels, buildings, _rng(self.scale, 200, int(units[0])))
            done += len(parcels)
            progress(f"parcels: {done:,} / {self.scale:,}")

    def _parcels(self, units: np.ndarray, rng: np.random.Generator):
        layout, p = self.layout, self.patches
        chunk = subdivide(p, self.alloc, units, layout.bounds)
        if len(chunk.geoms) == 0:
            return None
        choice = [CHOICES[r] for r in chunk.rule]
        own = np.array([c[1] for c in choice], dtype=object)
        ptype = np.array([c[2] for c in choice], dtype=object)
        town = layout.unit_town[chunk.unit]
        sub = layout.unit_no[chunk.unit]
        parcel_code = [f"{COUNTY_CODE}{t + 1:03d}{s:03d}{o}{ty}{q:05d}"
                       for t, s, o, ty, q in zip(town.tolist(), sub.tolist(), own, ptype, chunk.sequence.tolist(),
                                                 strict=True)]
        order = np.argsort(np.array(parcel_code))
        chunk_geoms = chunk.geoms[order]
        parcel_code = [parcel_code[i] for i in order]
        choice = [choice[i] for i in order]
        unit, town = chunk.unit[order], town[order]
        land_codes = np.array([c[0] for c in choice], dtype=object)
        geoms, area = _multi(layout, chunk_geoms)
        kinds = np.array([c[4] for c in choice], dtype=object)
        owner_names, owner_ids = self.owners.assign(kinds, unit, rng)
        n = len(parcel_code)
        batch = Batch("parcels", {
            "unit_code": [c + "W00000000" for c in parcel_code],
            "parcel_code": parcel_code,
            "ownership": [c[1] for c in choice],
            "parcel_type": [c[2] for c in choice],
            "right_type": [c[3] for c in choice],
            "land_use": land_codes.tolist(),
            "land_use_name": [LAND_SURVEY_CLASSES[c] for c in land_codes],
            "area_m2": area.tolist(),
            "registration_date": _dates(*REGISTRATION, n, rng),
            "owner_name": owner_names,
            "owner_id_number": owner_ids,
            "town_code": [layout.towns[t].code for t in town.tolist()],
        }, geoms)
        return batch, chunk_geoms, land_codes, p.angle[chunk.patch[order]]

    def _buildings(self, parcels: Batch, geoms_planar: np.ndarray, land_codes: np.ndarray,
                   angle: np.ndarray, rng: np.random.Generator) -> Batch:
        b = buildings_for(geoms_planar, land_codes, angle, rng)
        geoms, _ = _multi(self.layout, b.geoms) if len(b.geoms) else (np.empty(0, dtype=object), None)
        codes = parcels.columns["parcel_code"]
        parcel_code = [codes[i] for i in b.parcel.tolist()]
        return Batch("buildings", {
            "unit_code": [f"{c}F{n:04d}0000" for c, n in zip(parcel_code, b.number.tolist(), strict=True)],
            "parcel_code": parcel_code,
            "height_m": b.height_m.tolist(),
            "floors": b.floors.tolist(),
            "building_use": b.use,
            "completed_date": b.completed.astype(str).tolist(),
        }, geoms)


    @staticmethod
    def _events(parcels: Batch, buildings: Batch, rng: np.random.Generator) -> Batch:
        """The life records of the chunk's parcels (a generator of their own: parcels stay as they were)."""
        completed: dict[str, str] = {}
        for code, day in zip(buildings.columns["parcel_code"], buildings.columns["completed_date"], strict=True):
            completed[code] = min(day, completed.get(code, day))
        columns, geoms = chunk_events(parcels.columns, parcels.geoms, completed, rng)
        return Batch("parcel_events", columns, geoms)


def generate(scale: int, progress: Callable[[str], None] | None = None) -> Iterator[Batch]:
    """All rows of the sample county for ``scale`` parcels, collection after collection."""
    if scale < 100:
        raise ValueError("scale must be at least 100 parcels")
    say = progress or (lambda _m: None)
    layout = Layout()
    yield admin_batch(layout)
    patches = survey_patches(layout, scale, _rng(scale, 1))
    yield survey_batch(layout, patches)
    say(f"land_survey: {len(patches):,} patches")
    zones = planning_zones(layout, scale, _rng(scale, 2))
    yield planning_batch(layout, zones)
    say(f"planning_zones: {len(zones):,} zones")
    yield controls_batch(layout, patches, _rng(scale, 3))
    say("control_lines: done")
    yield from ParcelMaker(layout, patches, scale).batches(say)
