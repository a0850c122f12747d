"""STAC API item search: parameters from a GET query or a POST body, filtering and paging.

Parameters: ``collections``, ``ids``, ``bbox`` (4 or 6 numbers, CRS84; west > east crosses the
antimeridian), ``intersects`` (a GeoJSON geometry; not with ``bbox``), ``datetime`` and ``limit``
(parsed as everywhere else: ``server.params``) and ``token`` (a paging token from a ``next``/``prev``
link), and the Filter, Sort and Fields extensions' ``filter``/``filter-lang``/``filter-crs``,
``sortby`` and ``fields`` (``server.stac_api.extensions``). ``SearchQuery`` declares them for GET,
``SearchBody`` for POST (lists as JSON arrays), so that ``/api`` documents them; anything malformed
is a 400 naming it.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from server.errors import InvalidParameter
from server.filters import Filter
from server.params import DATETIME_DESCRIPTION, LIMIT_DESCRIPTION, TimeInterval, parse_datetime, parse_limit
from server.policy.model import Restriction, restricted_ids
from server.stac_api.extensions import (
    FieldsSpec,
    item_row,
    matcher,
    parse_fields,
    parse_search_filter,
    parse_sortby,
    sort_rows,
)

_BBOX = "CRS84 west,south,east,north (or 6 numbers: a 3D bbox); west > east crosses the antimeridian"
_INTERSECTS = "A GeoJSON geometry the items intersect (not with bbox)"
_TOKEN = "A paging token from a next or prev link"
_FILTER = "A CQL2 filter on the queryables (/stac/queryables): text in a GET, text or CQL2-JSON in a POST"
_FILTER_LANG = "cql2-text or cql2-json (default: cql2-text in a GET, by the filter's type in a POST)"
_FILTER_CRS = "The CRS of the filter's geometries: CRS84 (default) or EPSG:4490 (lat/lon)"
_SORTBY = "Sort keys: '-datetime,+id' in a GET, [{field, direction}] in a POST"
_FIELDS = "Item parts to return: 'id,properties.datetime,-assets' in a GET, {include, exclude} in a POST"
_GEOMETRIES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"}


@dataclass
class SearchQuery:
    """The search parameters of a GET (``/stac/search`` and a collection's items)."""

    bbox: Annotated[str | None, Query(description=_BBOX)] = None
    intersects: Annotated[str | None, Query(description=f"{_INTERSECTS}, as JSON text")] = None
    datetime: Annotated[str | None, Query(description=DATETIME_DESCRIPTION)] = None
    ids: Annotated[str | None, Query(description="Comma-separated item ids")] = None
    collections: Annotated[str | None, Query(description="Comma-separated collection ids")] = None
    limit: Annotated[int | None, Query(ge=1, description=LIMIT_DESCRIPTION)] = None
    token: Annotated[str | None, Query(description=_TOKEN)] = None
    filter: Annotated[str | None, Query(description=_FILTER)] = None
    filter_lang: Annotated[str | None, Query(alias="filter-lang", description=_FILTER_LANG)] = None
    filter_crs: Annotated[str | None, Query(alias="filter-crs", description=_FILTER_CRS)] = None
    sortby: Annotated[str | None, Query(description=_SORTBY)] = None
    fields: Annotated[str | None, Query(description=_FIELDS)] = None

    def given(self) -> dict[str, Any]:
        """The parameters the client sent (by their names in the query)."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items() if v is not None}


class SearchBody(BaseModel):
    """The JSON body of a POST search: the GET parameters, with lists as JSON arrays."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    bbox: list[float] | None = Field(None, description=_BBOX)
    intersects: dict[str, Any] | None = Field(None, description=_INTERSECTS)
    datetime: str | None = Field(None, description=DATETIME_DESCRIPTION)
    ids: list[str] | None = Field(None, description="Item ids")
    collections: list[str] | None = Field(None, description="Collection ids")
    limit: int | None = Field(None, ge=1, description=LIMIT_DESCRIPTION)
    token: str | None = Field(None, description=_TOKEN)
    filter: dict[str, Any] | str | None = Field(None, description=_FILTER)
    filter_lang: str | None = Field(None, alias="filter-lang", description=_FILTER_LANG)
    filter_crs: str | None = Field(None, alias="filter-crs", description=_FILTER_CRS)
    sortby: list[dict[str, Any]] | None = Field(None, description=_SORTBY)
    fields: dict[str, Any] | None = Field(None, description=_FIELDS)


@dataclass(frozen=True)
class Search:
    """A validated search."""

    limit: int
    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    area: BaseGeometry | None = None
    interval: TimeInterval | None = None
    offset: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    filter: Filter | None = None
    sortby: tuple[tuple[str, bool], ...] = ()
    fields: FieldsSpec | None = None


def _strings(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise InvalidParameter(f"Parameter '{name}' must be a list of non-empty strings.")
    return tuple(v.strip() for v in items)


def _bbox(value: Any) -> BaseGeometry | None:
    if value is None:
        return None
    try:
        nums = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        raise InvalidParameter("Parameter 'bbox' must be 4 or 6 numbers.") from None
    if len(nums) not in (4, 6):
        raise InvalidParameter(f"Parameter 'bbox' must be 4 or 6 numbers, not {len(nums)}.")
    west, south, east, north = (nums[0], nums[1], nums[3], nums[4]) if len(nums) == 6 else nums
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise InvalidParameter(
            "Parameter 'bbox': longitudes must be in -180..180, latitudes in -90..90, south <= north."
        )
    if west > east:  # crosses the antimeridian
        return box(west, south, 180, north).union(box(-180, south, east, north))
    return box(west, south, east, north)


def _intersects(value: Any) -> BaseGeometry | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidParameter("Parameter 'intersects' is not valid JSON.") from None
    if not isinstance(value, dict) or value.get("type") not in _GEOMETRIES:
        raise InvalidParameter("Parameter 'intersects' must be a GeoJSON geometry object.")
    try:
        geom = shape(value)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        raise InvalidParameter("Parameter 'intersects' is not a valid GeoJSON geometry.") from None
    if geom.is_empty:
        raise InvalidParameter("Parameter 'intersects' is an empty geometry.")
    return geom


def encode_token(offset: int) -> str:
    """A paging token for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _offset(token: Any) -> int:
    if token is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4)).decode()
        if raw[0] != "o" or int(raw[1:]) < 0:
            raise ValueError
        return int(raw[1:])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise InvalidParameter("Parameter 'token' is not a paging token this server issued.") from None


def parse(params: dict[str, Any], default_limit: int, max_limit: int) -> Search:
    """Validate search parameters: ``SearchQuery.given()`` or a ``SearchBody`` as a dict."""
    empty = [k for k in ("bbox", "intersects") if params.get(k) in ("", [])]
    if empty:
        raise InvalidParameter(f"Parameter '{empty[0]}' is empty.")
    area = _bbox(params.get("bbox"))
    geom = _intersects(params.get("intersects"))
    if area is not None and geom is not None:
        raise InvalidParameter("Give either 'bbox' or 'intersects', not both.")
    return Search(
        limit=parse_limit(params.get("limit"), default_limit, max_limit),
        collections=_strings(params.get("collections"), "collections"),
        ids=_strings(params.get("ids"), "ids"),
        area=area if area is not None else geom,
        interval=parse_datetime(params.get("datetime")),
        offset=_offset(params.get("token")),
        body={k: v for k, v in params.items() if k != "token"},
        filter=parse_search_filter(params),
        sortby=parse_sortby(params.get("sortby")),
        fields=parse_fields(params.get("fields")),
    )


@dataclass(frozen=True)
class Entry:
    """One searchable item: its collection, id, time, footprint and JSON (without API links)."""

    collection: str
    id: str
    datetime: dt.datetime
    geometry: BaseGeometry
    doc: dict[str, Any]


def _row(entry: Entry) -> dict[str, Any]:
    return item_row(entry.id, entry.collection, entry.datetime, entry.doc.get("properties", {}))


def matches(entry: Entry, s: Search, condition: Callable | None = None) -> bool:
    """Whether an item satisfies every filter of the search (``condition``: its CQL2 filter's predicate)."""
    if s.collections is not None and entry.collection not in s.collections:
        return False
    if s.ids is not None and entry.id not in s.ids:
        return False
    if s.interval is not None:
        start, end = s.interval.start, s.interval.end
        if (start and entry.datetime < start) or (end and entry.datetime > end):
            return False
    if s.area is not None and not s.area.intersects(entry.geometry):
        return False
    return condition is None or condition(_row(entry), entry.geometry)


def run(entries: list[Entry], s: Search, *, restrictions: Mapping[str, Restriction]) -> tuple[list[Entry], int, bool]:
    """The page of matching entries, the number matched, and whether more follow.

    Only items of the collections in ``restrictions`` (the caller's, by collection id) ever match.
    """
    visible = restricted_ids(restrictions)
    condition = matcher(s.filter)
    found = [e for e in entries if e.collection in visible and matches(e, s, condition)]
    if s.sortby:
        found = sort_rows(found, (*s.sortby, ("collection", False), ("id", False)), _row)
    page = found[s.offset : s.offset + s.limit]
    return page, len(found), s.offset + s.limit < len(found)
