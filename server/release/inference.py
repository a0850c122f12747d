"""Inference control in releases: nothing removed may be worked out from what is left.

Removing a row from a layer that covers its area without gaps leaves a hole of the row's exact
shape, and removing a row of a numbered sequence leaves a gap in the numbers. For the collections
``editions.yaml`` names under ``release:``:

- ``coverage``: the removed rows' area (adjacent rows merged) is grown by ``grid_m`` and snapped to
  a ``grid_m`` grid in the rule's planar CRS, clipped to the layer around it, and published as
  placeholder rows with only the rule's placeholder values; the published rows give that area up
  (a row wholly inside it is absorbed) and get their area field recomputed. What a reader can
  reconstruct is then the snapped, grown area, at least about ``grid_m`` from the removed outline
  everywhere, never the outline.
- ``rekey_ids``: every row (placeholders included) gets a fresh id, 1..n in a random order, and
  rows are written in that order, so neither the ids nor the storage order keep the old sequence.

The removed rows are read (their id and geometry only) to compute the fill; nothing of them is
written but the fill. Such collections are prepared in memory.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyproj
import shapely

from server.catalog import VectorCollection
from server.policy.editions import Coverage, ReleaseRules
from server.policy.model import Restriction
from server.stores import Store
from server.stores.batches import Batch

STORAGE_CRS = "EPSG:4490"
Progress = Callable[[str], None]


def _multi(geom: shapely.Geometry) -> shapely.MultiPolygon | None:
    """The polygons of ``geom`` as one MultiPolygon, or None when it has no area."""
    polys = [p for p in shapely.get_parts(shapely.make_valid(geom))
             if isinstance(p, shapely.Polygon) and not p.is_empty and p.area > 0]
    return shapely.MultiPolygon(polys) if polys else None


class _Frame:
    """Moves geometries between the storage CRS (lon/lat) and a planar CRS in metres."""

    def __init__(self, crs: str) -> None:
        self._fwd = pyproj.Transformer.from_crs(STORAGE_CRS, crs, always_xy=True)
        self._inv = pyproj.Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)

    def plane(self, geoms: Any) -> Any:
        """The geometries in the planar CRS."""
        return shapely.transform(geoms, lambda xy: np.column_stack(self._fwd.transform(xy[:, 0], xy[:, 1])))

    def lonlat(self, geoms: Any, precision: int | None) -> Any:
        """The geometries back in lon/lat, snapped to ``precision`` decimal degrees when given."""
        out = shapely.transform(geoms, lambda xy: np.column_stack(self._inv.transform(xy[:, 0], xy[:, 1])))
        return out if precision is None else shapely.set_precision(out, 10.0 ** -precision)


def _collect(batches: Iterator[Batch], view: VectorCollection) -> Batch:
    """Every batch of one collection as a single one."""
    columns: dict[str, list] = {f.name: [] for f in view.fields}
    geoms: list[Any] = []
    for b in batches:
        for name, values in b.columns.items():
            columns[name].extend(values)
        geoms.extend(b.geoms)
    return Batch(view.id, columns, np.array(geoms, dtype=object))


def _removed(store: Store, view: VectorCollection, published: set) -> list[Any]:
    """The geometries of the rows the restriction removes (read with their id only)."""
    id_field = view.source.id_field
    probe_view = view.model_copy(update={"fields": [f for f in view.fields if f.name == id_field]})
    probe = Restriction(collection=view.id, fields=(id_field,))
    return [g for b in store.batches(probe_view, restriction=probe)
            for key, g in zip(b.columns[id_field], b.geoms, strict=True) if key not in published]


def _fill(removed_plane: Any, rows_plane: Any, grid_m: float) -> Any:
    """The removed area grown by ``grid_m``, snapped to the grid and clipped to the layer around it."""
    removed = shapely.union_all(removed_plane)
    grown = shapely.set_precision(shapely.buffer(removed, grid_m, join_style="mitre"), grid_m)
    near = rows_plane[shapely.intersects(rows_plane, grown)]
    layer = shapely.union_all(np.concatenate([near, [removed]]))
    return shapely.intersection(shapely.make_valid(grown), layer)


def fill_coverage(rows: Batch, removed: list[Any], precision: int | None, cov: Coverage) -> tuple[Batch, int, int]:
    """``rows`` with the fill of the ``removed`` geometries (new vertices snapped to ``precision``
    decimal degrees); also (placeholders added, rows absorbed)."""
    frame = _Frame(cov.crs)
    plane = frame.plane(rows.geoms)
    fill = _fill(frame.plane(np.array(removed, dtype=object)), plane, cov.grid_m)
    keep, geoms, areas = [], [], []
    for i, (g, touched) in enumerate(zip(plane, shapely.intersects(plane, fill), strict=True)):
        if touched:
            g = _multi(shapely.difference(g, fill))
            if g is None:
                continue
        keep.append(i)
        geoms.append(frame.lonlat(g, precision) if touched else rows.geoms[i])
        areas.append(round(float(g.area), 2) if touched else None)
    columns = {name: [values[i] for i in keep] for name, values in rows.columns.items()}
    if cov.area_field:
        old = columns[cov.area_field]
        columns[cov.area_field] = [a if a is not None else o for a, o in zip(areas, old, strict=True)]
    parts = [p for p in shapely.get_parts(fill) if isinstance(p, shapely.Polygon) and p.area > 0]
    for part in parts:
        for name, values in columns.items():
            values.append(round(part.area, 2) if name == cov.area_field else cov.placeholder.get(name))
        geoms.append(_multi(frame.lonlat(part, precision)))
    return Batch(rows.collection, columns, np.array(geoms, dtype=object)), len(parts), len(rows) - len(keep)


def rekey(rows: Batch, id_field: str) -> Batch:
    """Fresh ids 1..n in a random order (``SystemRandom``), rows written in the order of their new id."""
    n = len(rows)
    order = list(range(n))
    random.SystemRandom().shuffle(order)  # row order[k] gets id k + 1
    columns = {name: [values[i] for i in order] for name, values in rows.columns.items()}
    columns[id_field] = list(range(1, n + 1))
    return Batch(rows.collection, columns, rows.geoms[order] if n else rows.geoms)


def release_batches(store: Store, view: VectorCollection, restriction: Restriction, rules: ReleaseRules | None,
                    say: Progress) -> Iterator[Batch]:
    """The batches of one collection for a release (``view`` read under ``restriction``), with its
    release rules applied."""
    batches = store.batches(view, restriction=restriction)
    cov = rules.coverage if rules and restriction.exclude else None
    if rules is None or not (rules.rekey_ids or cov):
        yield from batches
        return
    rows = _collect(batches, view)
    id_field = view.source.id_field
    if cov is not None:
        removed = _removed(store, view, set(rows.columns[id_field]))
        if removed:
            rows, added, absorbed = fill_coverage(rows, removed, restriction.precision, cov)
            say(f"{view.id}: {len(removed)} removed row(s) filled by {added} placeholder(s), {absorbed} absorbed")
    if rules.rekey_ids:
        rows = rekey(rows, id_field)
    if len(rows):
        yield rows
