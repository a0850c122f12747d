"""The unit-code profile (一码全息): everything about one parcel, in one document.

The parcel is read by its unit code through the ``Source`` with the caller's ``Restriction`` (masked
owner names stay masked); the buildings on it, the planning zones and control lines over it and the
land survey classes under it are measured with ``Source.overlaps`` on the parcel's geometry as the
caller sees it (m² in the GK zone, % of the parcel); imagery and elevation come from the raster
collections the caller may see. A part whose collection the caller may not see is left out and named
in ``unavailable``; a parcel the caller may not see is the same 404 as one that does not exist.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import orjson
from shapely.geometry import shape

from server.catalog import RasterCollection, VectorCollection
from server.codes.classes import CODE_LISTS
from server.codes.unit_code import FIXTURE_TYPES, OWNERSHIPS, PARCEL_TYPES, UnitCode
from server.errors import NotFound
from server.filters import filter_fields, parse_filter
from server.policy import Policy, RestrictionError
from server.profiles.rasters import elevation, imagery
from server.sources import ItemQuery, Source
from server.sources.areas import Overlap, Site, readable_fields
from server.sources.base import AreaLayer

PARCELS = "parcels"
NO_FIXTURE = "W00000000"
# collection -> the field grouping its overlap areas
MEASURED = {"planning_zones": "use_code", "control_lines": "line_type", "land_survey": "land_code"}
BUILDING_FIELDS = ("parcel_code", "building_use", "floors", "height_m")
EVENTS = "parcel_events"
LIFE_MAX = 1_000  # records of one parcel read at most
STAGES = ("planning", "approval", "supply", "use", "registration", "supervision")  # 规、批、供、用、登、管


def code_parts(code: UnitCode) -> dict[str, Any]:
    """The code parsed into its parts, with the names of its letters."""
    return {
        "county": code.county, "cadastral_zone": code.zone, "cadastral_subzone": code.subzone,
        "ownership": {"code": code.ownership, "name": OWNERSHIPS[code.ownership]},
        "parcel_type": {"code": code.parcel_type, "name": PARCEL_TYPES[code.parcel_type]},
        "parcel_sequence": code.sequence, "parcel_code": code.parcel_code,
        "fixture": {"type": code.fixture_type, "name": FIXTURE_TYPES[code.fixture_type], "number": code.fixture_number},
        "display": code.display,
    }


def not_found(code: UnitCode) -> NotFound:
    """The one answer for a code without a parcel, or with one the caller may not see."""
    return NotFound(f"No parcel has the unit code '{code.code}'.")


async def _measure(source: Source, policy: Policy, site: Site,
                   layers: list[tuple[str, tuple[str, ...]]]) -> list[list[Overlap] | None]:
    """The overlaps of each layer the caller may see with its fields readable (None for the others), read
    at once: one statement on PostGIS."""
    readable: list[tuple[int, AreaLayer]] = []
    for i, (cid, fields) in enumerate(layers):
        access = policy.access(cid)
        if access is None or not isinstance(access.view, VectorCollection):
            continue
        try:
            readable.append((i, (access.view, readable_fields(fields, access.restriction), access.restriction)))
        except RestrictionError:
            continue
    found = await source.overlaps_many([layer for _, layer in readable], site) if readable else []
    out: list[list[Overlap] | None] = [None] * len(layers)
    for (i, _), overlaps in zip(readable, found, strict=True):
        out[i] = overlaps
    return out


def _classes(policy: Policy, cid: str, field: str, overlaps: list[Overlap], parcel_m2: float,
             base: str) -> list[dict[str, Any]]:
    """Areas by class, largest first, each with its share of the parcel and the features behind it."""
    access = policy.access(cid)
    spec = access.view.field(field) if access is not None and isinstance(access.view, VectorCollection) else None
    names = CODE_LISTS.get(spec.codes or "", {}) if spec is not None else {}
    groups: dict[str, list[Overlap]] = {}
    for o in overlaps:
        groups.setdefault(str(o.values[0]), []).append(o)
    rows = []
    for value, members in groups.items():
        area = sum(o.area_m2 for o in members)
        rows.append({"code": value, "name": names.get(value), "area_m2": round(area, 2),
                     "percent": round(100 * area / parcel_m2, 2) if parcel_m2 else None,
                     "features": [f"{base}/collections/{cid}/items/{o.id}" for o in members]})
    return sorted(rows, key=lambda r: (-r["area_m2"], r["code"]))


async def _parcel(source: Source, policy: Policy, code: UnitCode) -> dict[str, Any]:
    access = policy.access(PARCELS)
    if access is None or not isinstance(access.view, VectorCollection):
        raise not_found(code)
    found = await source.get(access.view, code.parcel_code + NO_FIXTURE, access.view.field_names,
                             restriction=access.restriction)
    if found is None:
        raise not_found(code)
    return orjson.loads(found)


async def profile(source: Source, policy: Policy, code: UnitCode, data_dir: Path, base: str) -> dict[str, Any]:
    """The profile document of ``code`` for a caller with ``policy``; ``NotFound`` when there is nothing to show."""
    parcel = await _parcel(source, policy, code)
    geometry = shape(parcel["geometry"])
    site = Site.of(geometry)
    doc: dict[str, Any] = {"unit_code": code.code, "code": code_parts(code), "parcel": parcel, "unavailable": []}
    parcel_m2 = site.area_m2
    doc["parcel_area_m2"] = round(parcel_m2, 2)
    layers = [("buildings", BUILDING_FIELDS), *((cid, (field,)) for cid, field in MEASURED.items())]
    found, life = await asyncio.gather(  # the layers in one read, the life records beside it
        _measure(source, policy, site, layers), _life(source, policy, code, geometry, base))
    buildings, *measured = found
    if buildings is None:
        doc["unavailable"].append("buildings")
    else:
        on_parcel = [b for b in buildings if b.values[0] == code.parcel_code]
        if code.fixture_type != "W" and code.code not in {b.id for b in on_parcel}:
            raise not_found(code)
        doc["fixtures"] = [{"unit_code": b.id, **dict(zip(BUILDING_FIELDS[1:], b.values[1:], strict=True)),
                            "footprint_on_parcel_m2": round(b.area_m2, 2),
                            "href": f"{base}/collections/buildings/items/{b.id}"} for b in on_parcel]
    for (cid, field), found in zip(MEASURED.items(), measured, strict=True):
        if found is None:
            doc["unavailable"].append(cid)
        else:
            doc[cid] = _classes(policy, cid, field, found, parcel_m2, base)
    if life is None:
        doc["unavailable"].append(EVENTS)
    else:
        doc["life"] = life
    doc.update(await _rasters(policy, geometry, data_dir, base))
    return doc


async def _life(source: Source, policy: Policy, code: UnitCode, geometry: Any,
                base: str) -> dict[str, list[dict[str, Any]]] | None:
    """The parcel's life records the caller may see, by stage (规批供用登管 order), each stage in time order.

    They are read as Features reads them - the records of this parcel code in the parcel's bbox (each
    record has its parcel's geometry) - so masked fields are served masked, hidden ones are absent and
    excluded rows are missing; without the parcel code and the stage unmasked the part is unavailable."""
    access = policy.access(EVENTS)
    view = access.view if access is not None else None
    if access is None or not isinstance(view, VectorCollection):
        return None
    restriction, id_field = access.restriction, view.source.id_field
    fields = filter_fields(view, restriction)
    if not {"parcel_code", "stage"} <= set(fields.types):
        return None
    q = ItemQuery(properties=tuple(f for f in view.field_names if f in restriction.fields), limit=LIFE_MAX,
                  bbox=tuple(geometry.bounds),
                  filter=parse_filter(f"parcel_code = '{code.parcel_code}'", "cql2-text", None, fields))
    page = await source.query(view, q, restriction=restriction)
    records = [{id_field: f["id"], **f["properties"]} for f in orjson.loads(page.features)]
    date = "event_date" if "event_date" in fields.types else id_field  # a masked date orders nothing
    records.sort(key=lambda r: (str(r.get(date) or ""), r[id_field]))
    by_stage: dict[str, list[dict[str, Any]]] = {stage: [] for stage in STAGES}
    for r in records:
        r["href"] = f"{base}/collections/{EVENTS}/items/{r[id_field]}"
        by_stage.setdefault(r["stage"], []).append(r)
    return by_stage


async def _rasters(policy: Policy, geometry: Any, data_dir: Path, base: str) -> dict[str, Any]:
    """Imagery covering the parcel and elevation statistics, from the raster collections the caller sees."""
    out: dict[str, Any] = {"imagery": [], "elevation": None}
    for access in policy.collections.values():
        c = access.view
        if not isinstance(c, RasterCollection):
            continue
        if c.raster.kind == "imagery":
            out["imagery"] += await anyio.to_thread.run_sync(imagery, c, data_dir, geometry, base)
        elif out["elevation"] is None:
            out["elevation"] = await anyio.to_thread.run_sync(elevation, c, data_dir, geometry, access.restriction)
    out["imagery"].sort(key=lambda a: a["datetime"], reverse=True)
    return out
