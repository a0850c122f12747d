"""CQL2 filtering (OGC API Features Part 3, STAC API Filter): parse, check, compile.

``parse_filter`` reads ``filter``/``filter-lang``/``filter-crs`` into a ``Filter`` - a typed tree
checked against the caller's queryable fields - which the sources compile themselves:
``pg_filter`` (PostGIS SQL with bound values) and ``row_predicate`` (Python and shapely, for the
embedded store). No library's SQL backend is involved; ``cql2`` only parses.

``filter-crs`` is a ``server.crs.Crs`` the caller checked (Features: any CRS the collection offers;
STAC: a geographic one); the filter's geometries are taken to CRS84 (lon/lat) in that CRS's axis order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry

from server.catalog import VectorCollection
from server.crs import CRS84, Crs, to_storage
from server.filters.build import Convert, Fields, build
from server.filters.parse import LANGUAGES, MAX_LENGTH, parse_cql2
from server.filters.pgsql import PgCondition, once, pg_filter
from server.filters.predicate import OUT_OF_RANGE, row_predicate
from server.filters.tree import Expr, fields_of
from server.policy.model import Restriction
from server.queryables import queryable_fields

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
    "CQL2_CONFORMANCE", "FILTER_CONFORMANCE", "LANGUAGES", "MAX_LENGTH", "OUT_OF_RANGE",
    "Fields", "Filter", "PgCondition",
    "filter_fields", "once", "parse_filter", "pg_filter", "row_predicate",
]


@dataclass(frozen=True)
class Filter:
    """A checked filter: its tree and the properties it reads."""

    expr: Expr
    fields: frozenset[str]


def _to_crs84(crs: Crs) -> Convert:
    def convert(geom: BaseGeometry) -> BaseGeometry:
        out = to_storage(geom, crs, CRS84.srid)
        assert isinstance(out, BaseGeometry)  # shapely hands back the geometry's own class
        return out

    return convert


def parse_filter(raw: str | dict[str, Any], lang: str | None, crs: Crs | None, fields: Fields) -> Filter:
    """The filter a client sent, its geometries in ``crs`` (None: CRS84), parsed and checked; a 400
    naming what is wrong otherwise."""
    to_crs84 = None if crs is None or crs == CRS84 else _to_crs84(crs)
    expr = build(parse_cql2(raw, lang), fields, to_crs84)
    return Filter(expr, frozenset(fields_of(expr)))


def filter_fields(collection: VectorCollection, restriction: Restriction) -> Fields:
    """What a filter on ``collection`` may name for this caller: the fields it sees unmasked, and the
    geometry (by its column name or as ``geometry``)."""
    types = {f.name: f.type for f in queryable_fields(collection, restriction)}
    return Fields(collection.id, types, frozenset({collection.source.geometry_field, "geometry"}))
