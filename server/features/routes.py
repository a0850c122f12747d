"""OGC API Features Part 1: the items of a collection and one item.

The source hands back the JSON array of features as bytes; this module only wraps it in the
FeatureCollection envelope (counts, time stamp, paging links) and sends it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.cache import cached
from server.catalog import Collection, VectorCollection
from server.credentials import KEY_PARAMS, without_credentials
from server.errors import InvalidParameter, NotFound
from server.features.params import parse_bbox, parse_properties
from server.filters import CQL2_CONFORMANCE, FILTER_CONFORMANCE, FILTER_CRS, LANGUAGES, filter_fields, parse_filter
from server.html import render_page
from server.params import DATETIME_DESCRIPTION, LIMIT_DESCRIPTION, parse_datetime, parse_limit
from server.policy import note_returned, restriction_for, visible_collection
from server.sources import Cursor, ItemQuery, Page
from server.web import GEOJSON, HTML, JSON, base_url, format_param, link, output_format

router = APIRouter(tags=["Features"])

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    *FILTER_CONFORMANCE,
    *CQL2_CONFORMANCE,
]
CRS84 = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
_FORMATS = ("json", "html")
Format = Annotated[str | None, format_param(*_FORMATS)]
_ITEM_PARAMS = {"f", *KEY_PARAMS}
_ITEMS_PARAMS = {"bbox", "datetime", "limit", "properties", "cursor", "filter", "filter-lang", "filter-crs",
                 *_ITEM_PARAMS}
_FILTER = "A CQL2 filter on the properties the caller may see, the geometry and the time field"
_FILTER_LANG = "The filter's encoding: cql2-text (default) or cql2-json"
_FILTER_CRS = f"The CRS of the filter's geometries: {' or '.join(FILTER_CRS)} (lat/lon order); CRS84 by default"


def collection_links(c: Collection, base: str) -> list[dict]:
    """Items links for the collection document."""
    if not isinstance(c, VectorCollection):
        return []
    url = f"{base}/collections/{c.id}/items"
    return [
        link(url, "items", GEOJSON, "The features as GeoJSON"),
        link(f"{url}?f=html", "items", HTML, "The features as HTML"),
    ]


def vector_collection(request: Request, collection_id: str) -> VectorCollection:
    """The vector collection as the caller may see it, or the one 404 for anything missing, hidden or not vector."""
    return visible_collection(request, collection_id, VectorCollection)


def _reject_unknown(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise InvalidParameter(
            f"Unknown query parameter {', '.join(repr(u) for u in unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}."
        )


def _query(request: Request, *leave_out: str) -> list[tuple[str, str]]:
    """The request's query parameters for a link: never a credential (bodies are cached), nor ``leave_out``."""
    return [(k, v) for k, v in without_credentials(request.query_params.multi_items()) if k not in leave_out]


def _page_link(request: Request, url: str, rel: str, cursor: Cursor, fmt: str) -> dict:
    params = _query(request, "cursor")
    params.append(("cursor", cursor.encode()))
    media = GEOJSON if fmt == "json" else HTML
    return link(f"{url}?{urlencode(params)}", rel, media, f"{rel} page")


def _envelope(request: Request, url: str, page: Page, fmt: str) -> bytes:
    query = urlencode(_query(request, "f"))
    here = f"{url}?{query}&" if query else f"{url}?"
    links = [
        link(f"{here}f=json", "self" if fmt == "json" else "alternate", GEOJSON, "This page as GeoJSON"),
        link(f"{here}f=html", "self" if fmt == "html" else "alternate", HTML, "This page as HTML"),
        link(url.rsplit("/items", 1)[0], "collection", JSON, "The collection"),
    ]
    if page.next_key is not None:
        links.append(_page_link(request, url, "next", Cursor(page.next_key, True), fmt))
    if page.prev_key is not None:
        links.append(_page_link(request, url, "prev", Cursor(page.prev_key, False), fmt))
    tail = {
        "numberReturned": page.number_returned,
        "timeStamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "links": links,
    }
    if page.number_matched is not None:
        tail["numberMatched"] = page.number_matched
    return b'{"type":"FeatureCollection","features":' + page.features + b"," + orjson.dumps(tail)[1:]


@router.get("/collections/{collectionId}/items", summary="Features of a collection")
async def items(
    request: Request,
    collectionId: str,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in CRS84 (or 6 numbers: a 3D bbox)")] = None,
    datetime: Annotated[str | None, Query(description=DATETIME_DESCRIPTION)] = None,
    limit: Annotated[int | None, Query(ge=1, description=LIMIT_DESCRIPTION)] = None,
    properties: Annotated[str | None, Query(description="Comma-separated property names to return")] = None,
    cursor: Annotated[str | None, Query(description="Opaque paging cursor from a next/prev link")] = None,
    filter: Annotated[str | None, Query(description=_FILTER)] = None,
    filter_lang: Annotated[str | None, Query(alias="filter-lang", description=_FILTER_LANG,
                                             json_schema_extra={"enum": list(LANGUAGES)})] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs", description=_FILTER_CRS,
                                            json_schema_extra={"enum": list(FILTER_CRS)})] = None,
    f: Format = None,
):
    """A page of features, in id order, filtered by bbox, datetime and a CQL2 filter, with next/prev links."""
    c = vector_collection(request, collectionId)
    _reject_unknown(request, _ITEMS_PARAMS)
    fmt = output_format(request, _FORMATS)
    settings = request.app.state.settings
    interval = parse_datetime(datetime)
    if interval and not c.temporal_field:
        raise InvalidParameter(f"Parameter 'datetime': collection '{c.id}' has no temporal property.")
    restriction = restriction_for(request, c)
    if filter is None and (filter_lang or filter_crs):
        raise InvalidParameter("Parameters 'filter-lang' and 'filter-crs' apply to a 'filter', and none was given.")
    checked = None if filter is None else parse_filter(filter, filter_lang, filter_crs, filter_fields(c, restriction))
    q = ItemQuery(
        filter=checked,
        properties=parse_properties(properties, c, c.field_names),
        limit=parse_limit(limit, settings.default_limit, settings.max_limit),
        bbox=parse_bbox(bbox),
        interval=interval,
        cursor=Cursor.decode(cursor) if cursor else None,
    )

    async def produce() -> Response:
        page = await request.app.state.source.query(c, q, restriction=restriction)
        note_returned(request, page.number_returned)
        url = f"{base_url(request)}/collections/{c.id}/items"
        body = _envelope(request, url, page, fmt)
        if fmt == "html":
            return render_page(request, "items.html", doc=orjson.loads(body), collection=c)
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": CRS84})

    return await cached(request, "items", (c.id, fmt), produce, collections=[c], base=True)


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature")
async def item(request: Request, collectionId: str, featureId: str, f: Format = None):
    """One feature by its id (for parcels, the 28-character unit code)."""
    c = vector_collection(request, collectionId)
    _reject_unknown(request, _ITEM_PARAMS)
    fmt = output_format(request, _FORMATS)

    async def produce() -> Response:
        feature = await request.app.state.source.get(
            c, featureId, c.field_names, restriction=restriction_for(request, c)
        )
        if feature is None:
            raise NotFound(f"Feature '{featureId}' does not exist in collection '{c.id}'.")
        base = base_url(request)
        url = f"{base}/collections/{c.id}/items/{featureId}"
        links = [
            link(url if fmt == "json" else f"{url}?f=json", "self" if fmt == "json" else "alternate", GEOJSON, "This feature"),
            link(f"{url}?f=html", "self" if fmt == "html" else "alternate", HTML, "This feature as HTML"),
            link(f"{base}/collections/{c.id}", "collection", JSON, "The collection"),
        ]
        body = feature[:-1] + b',"links":' + orjson.dumps(links) + b"}"
        if fmt == "html":
            return render_page(request, "item.html", doc=orjson.loads(body), collection=c)
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": CRS84})

    return await cached(request, "item", (c.id, featureId, fmt), produce, collections=[c], base=True)
