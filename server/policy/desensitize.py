"""Desensitization applied in Python: masking, row exclusion, generalization, coordinate precision.

The embedded store applies these right after reading and before encoding (items and vector tiles);
release bundles apply them while copying. The PostGIS source does the same in SQL
(``server.policy.pgsql``) with the same GEOS
simplifier and the same rounding, so both backends answer the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import shapely

from server.policy.model import Restriction

OUTPUT_PRECISION = 7  # decimal digits of output coordinates (about 1 cm)
DEGREE_M = 111_320.0  # metres per degree of latitude (and of longitude at the equator)
GEOGRAPHIC_SRIDS = frozenset({4326, 4490})


def mask_value(value: Any) -> Any:
    """A string shown as its first character plus one asterisk per remaining character (at least one)."""
    if not isinstance(value, str) or not value:
        return value
    return value[0] + "*" * max(len(value) - 1, 1)


def mask_rows(rows: Iterable[dict[str, Any]], masked: Iterable[str]) -> None:
    """Mask the named fields of each property dict, in place."""
    names = [m for m in masked]
    if not names:
        return
    for row in rows:
        for name in names:
            if name in row:
                row[name] = mask_value(row[name])


def tolerance(generalize_m: float, srid: int) -> float:
    """A tolerance in metres expressed in the units of ``srid`` (degrees for lon/lat CRSs)."""
    return generalize_m / DEGREE_M if srid in GEOGRAPHIC_SRIDS else generalize_m


def grid_size(precision: int) -> float:
    """The snapping grid of a precision in decimal digits."""
    return 10.0 ** -precision


_MULTI: dict[int, tuple[Callable[[list[Any]], shapely.Geometry], int]] = {
    4: (shapely.MultiPoint, 0), 5: (shapely.MultiLineString, 1), 6: (shapely.MultiPolygon, 3),
}


def keep_multi(geoms: np.ndarray, types_before: np.ndarray) -> np.ndarray:
    """Multi-part geometries that an operation turned into single parts, made multi again (as ``ST_Multi``)."""
    geoms = np.array(geoms, dtype=object)
    after = shapely.get_type_id(geoms)
    for multi_id, (make, single_id) in _MULTI.items():
        fix = (types_before == multi_id) & (after == single_id)
        if fix.any():
            geoms[fix] = [make([g]) for g in geoms[fix]]
    return geoms


def desensitize_geometries(geoms: np.ndarray, restriction: Restriction, srid: int) -> np.ndarray:
    """Generalize (topology-preserving, ``generalize_m``) and snap to the restriction's precision grid
    (valid output, as PostGIS ``ST_ReducePrecision(ST_MakeValid(..))``), in the storage CRS ``srid``.

    Geometries come back unchanged when the restriction reduces nothing. Items, vector tiles and
    release bundles all go through this (PostGIS: ``server.policy.pgsql.pg_geometry``).
    """
    if not len(geoms) or not restriction.reduces_geometry:
        return geoms
    types = shapely.get_type_id(geoms)
    if restriction.generalize_m:
        geoms = shapely.simplify(geoms, tolerance(restriction.generalize_m, srid), preserve_topology=True)
    if restriction.precision is not None and restriction.precision < OUTPUT_PRECISION:
        grid = grid_size(restriction.precision)
        geoms = shapely.set_precision(shapely.make_valid(geoms), grid)  # valid in, valid out
    return keep_multi(geoms, types)


def output_digits(restriction: Restriction) -> int:
    """Decimal digits of output coordinates: 7, or the restriction's coarser precision."""
    return OUTPUT_PRECISION if restriction.precision is None else min(OUTPUT_PRECISION, restriction.precision)


def reduce_geometries(geoms: np.ndarray, restriction: Restriction, srid: int) -> np.ndarray:
    """``desensitize_geometries``, then coordinates rounded for output (to ``output_digits``)."""
    if not len(geoms):
        return geoms
    geoms = desensitize_geometries(geoms, restriction, srid)
    coords = shapely.get_coordinates(geoms)
    return shapely.set_coordinates(geoms, np.round(coords, output_digits(restriction)))
