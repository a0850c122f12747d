"""CQL2 filtering (OGC API Features Part 3, STAC API Filter): parse, check, compile.

``parse_filter`` reads ``filter``/``filter-lang``/``filter-crs`` into a ``Filter`` - a typed tree
checked against the caller's queryable fields - which the sources compile themselves:
``pg_filter`` (PostGIS SQL with bound values) and ``row_predicate`` (Python and shapely, for the
embedded store). No library's SQL backend is involved; ``cql2`` only parses.

``filter-crs`` takes CRS84 (the default) or EPSG:4490 (lat/lon axis order, as EPSG defines it).
Other CRSs are refused here; when the floor gains a general CRS module, ``FILTER_CRS`` and
``_swap_axes`` are the one place to widen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.catalog import VectorCollection
from server.errors import InvalidParameter
from server.filters.build import Fields, build
from server.filters.parse import LANGUAGES, MAX_LENGTH, parse_cql2
from server.filters.pgsql import pg_filter
from server.filters.predicate import OUT_OF_RANGE, row_predicate
from server.filters.tree import Expr, fields_of
from server.policy.model import Restriction

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4490_URI = "http://www.opengis.net/def/crs/EPSG/0/4490"
FILTER_CRS = (CRS84_URI, EPSG4490_URI)

FILTER_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
]
CQL2_CONFORMANCE = [
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
]

__all__ = [
    "CQL2_CONFORMANCE", "FILTER_CONFORMANCE", "FILTER_CRS", "LANGUAGES", "MAX_LENGTH", "OUT_OF_RANGE",
    "Fields", "Filter",
    "filter_fields", "parse_filter", "pg_filter", "row_predicate",
]


@dataclass(frozen=True)
class Filter:
    """A checked filter: its tree and the properties it reads."""

    expr: Expr
    fields: frozenset[str]


def _swap_axes(crs: str | None) -> bool:
    """Whether the filter's coordinates come lat/lon; a 400 naming the accepted CRSs otherwise."""
    if crs is None or crs == CRS84_URI:
        return False
    if crs == EPSG4490_URI:
        return True
    raise InvalidParameter(f"Parameter 'filter-crs' must be one of {', '.join(FILTER_CRS)}, not {crs!r}.")


def parse_filter(raw: str | dict[str, Any], lang: str | None, crs: str | None, fields: Fields) -> Filter:
    """The filter a client sent, parsed and checked; a 400 naming what is wrong otherwise."""
    swap = _swap_axes(crs)
    expr = build(parse_cql2(raw, lang), fields, swap)
    return Filter(expr, frozenset(fields_of(expr)))


def filter_fields(collection: VectorCollection, restriction: Restriction) -> Fields:
    """What a filter on ``collection`` may name for this caller: the fields it sees unmasked, and the
    geometry (by its column name or as ``geometry``)."""
    shown = set(restriction.fields) - restriction.masked
    types = {f.name: f.type for f in collection.fields if f.name in shown}
    return Fields(collection.id, types, frozenset({collection.source.geometry_field, "geometry"}))
