"""OGC API Features Part 1: the items of a collection and one item.

The source hands back the JSON array of features as bytes; this module only wraps it in the
FeatureCollection envelope (counts, time stamp, paging links) and sends it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.cache import cached
from server.catalog import Collection, VectorCollection
from server.credentials import KEY_PARAMS, redacted_query
from server.crs import offered
from server.errors import InvalidParameter, NotFound
from server.features.formats import CSV, FLATGEOBUF, to_csv, to_flatgeobuf
from server.features.params import bbox_filter, parse_bbox, parse_properties, parse_sortby
from server.features.schemas import router as schemas_router
from server.features.schemas import schema_links
from server.filters import CQL2_CONFORMANCE, FILTER_CONFORMANCE, LANGUAGES, Filter, filter_fields, parse_filter
from server.html import render_page
from server.params import DATETIME_DESCRIPTION, LIMIT_DESCRIPTION, parse_datetime, parse_limit
from server.policy import Restriction, note_returned, restriction_for, visible_collection
from server.sources import Cursor, ItemQuery, Page
from server.web import GEOJSON, HTML, JSON, base_url, format_param, link, output_format

router = APIRouter(tags=["Features"])
router.include_router(schemas_router)

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/sortables",
    *FILTER_CONFORMANCE,
    *CQL2_CONFORMANCE,
]
CRS_DESCRIPTION = "The CRS of the response geometries, one of the collection's `crs` list (default CRS84)"
BBOX_CRS_DESCRIPTION = "The CRS of `bbox`, one of the collection's `crs` list (default CRS84); axis order as it defines"
_FORMATS = ("json", "html", "csv", "fgb")
ITEM_FORMATS = ("json", "html")
MEDIA = {"json": GEOJSON, "html": HTML, "csv": CSV, "fgb": FLATGEOBUF}
_TITLES = {"json": "GeoJSON", "html": "HTML", "csv": "CSV (WKT geometry)", "fgb": "FlatGeobuf"}
Format = Annotated[str | None, format_param(*_FORMATS)]
ItemFormat = Annotated[str | None, format_param(*ITEM_FORMATS)]
SORTBY_DESCRIPTION = ("Comma-separated sort keys, `+field` (or `field`) ascending, `-field` descending, from the "
                      "collection's sortables; ties are broken by the id")
_ITEM_PARAMS = {"f", "crs", *KEY_PARAMS}
_ITEMS_PARAMS = {"bbox", "bbox-crs", "datetime", "limit", "properties", "sortby", "cursor", "filter", "filter-lang",
                 "filter-crs", *_ITEM_PARAMS}
_FILTER = "A CQL2 filter on the properties the caller may see, the geometry and the time field"
_FILTER_LANG = "The filter's encoding: cql2-text (default) or cql2-json"
_FILTER_CRS = "The CRS of the filter's geometries: one of the collection's `crs` (in its axis order); CRS84 by default"


def collection_links(c: Collection, base: str) -> list[dict]:
    """Items links (one per format), queryables and sortables for the collection document."""
    if not isinstance(c, VectorCollection):
        return []
    url = f"{base}/collections/{c.id}/items"
    return [
        *(link(url if f == "json" else f"{url}?f={f}", "items", MEDIA[f], f"The features as {_TITLES[f]}")
          for f in _FORMATS),
        *schema_links(c, base),
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


def _query(request: Request, *leave_out: str) -> str:
    """The request's query for a link, as the client encoded it: never a credential (bodies are cached),
    nor ``leave_out``; each ending in "&" to append one more parameter."""
    query = redacted_query(request.scope["query_string"].decode("latin-1"), leave_out)
    return f"{query}&" if query else ""


def _page_links(request: Request, url: str, page: Page, q: ItemQuery, fmt: str) -> list[dict]:
    """``next`` and ``prev`` links: cursors carrying the boundary row's id and sort key values."""
    found = []
    for rel, key, values, forward in (("next", page.next_key, page.next_values, True),
                                      ("prev", page.prev_key, page.prev_values, False)):
        if key is not None:
            cursor = urlencode({"cursor": Cursor(key, forward, values, q.sort_token).encode()})
            found.append(link(f"{url}?{_query(request, 'cursor')}{cursor}", rel, MEDIA[fmt], f"{rel} page"))
    return found


def _envelope(request: Request, url: str, page: Page, q: ItemQuery, fmt: str) -> bytes:
    here = f"{url}?{_query(request, 'f')}"
    links = [
        link(f"{here}f={f}", "self" if f == fmt else "alternate", MEDIA[f], f"This page as {_TITLES[f]}")
        for f in _FORMATS
    ]
    links += [link(url.rsplit("/items", 1)[0], "collection", JSON, "The collection"),
              *_page_links(request, url, page, q, fmt)]
    tail = {
        "numberReturned": page.number_returned,
        "timeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "links": links,
    }
    if page.number_matched is not None:
        tail["numberMatched"] = page.number_matched
    return b'{"type":"FeatureCollection","features":' + page.features + b"," + orjson.dumps(tail)[1:]


def _item_query(request: Request, c: VectorCollection, fmt: str, params: dict[str, Any]) -> ItemQuery:
    """The validated items query (a 400 naming the first parameter that is wrong)."""
    settings = request.app.state.settings
    restriction = restriction_for(request, c)
    interval = parse_datetime(params["datetime"])
    if interval and not c.temporal_field:
        raise InvalidParameter(f"Parameter 'datetime': collection '{c.id}' has no temporal property.")
    in_crs = offered(c, params["bbox-crs"], "bbox-crs")
    box, area = bbox_filter(parse_bbox(params["bbox"], in_crs), in_crs, c)
    out_crs = offered(c, params["crs"])
    return ItemQuery(
        filter=_filter(c, restriction, params),
        properties=parse_properties(params["properties"], c, c.field_names),
        limit=parse_limit(params["limit"], settings.default_limit, settings.max_limit),
        bbox=box,
        interval=interval,
        cursor=Cursor.decode(params["cursor"]) if params["cursor"] else None,
        crs=replace(out_crs, lat_first=False) if fmt == "fgb" else out_crs,
        bbox_area=area,
        sortby=parse_sortby(params["sortby"], c, restriction),
    )


def _filter(c: VectorCollection, restriction: Restriction, params: dict[str, Any]) -> Filter | None:
    """The checked CQL2 filter, if any: its geometries in ``filter-crs`` (any CRS the collection offers)."""
    if params["filter"] is None:
        if params["filter-lang"] or params["filter-crs"]:
            raise InvalidParameter("Parameters 'filter-lang' and 'filter-crs' apply to a 'filter', and none was given.")
        return None
    crs = offered(c, params["filter-crs"], "filter-crs")
    return parse_filter(params["filter"], params["filter-lang"], crs, filter_fields(c, restriction))


def _encoded(request: Request, c: VectorCollection, q: ItemQuery, page: Page, fmt: str) -> Response:
    """The page in the format asked for; CSV and FlatGeobuf carry paging links as ``Link`` headers."""
    url = f"{base_url(request)}/collections/{c.id}/items"
    if fmt in ("json", "html"):
        body = _envelope(request, url, page, q, fmt)
        if fmt == "html":
            return render_page(request, "items.html", doc=orjson.loads(body), collection=c)
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": q.crs.header})
    props = restriction_for(request, c).select(c, q.properties)
    body = to_csv(page.features, props) if fmt == "csv" else to_flatgeobuf(page.features, c, props, q.crs)
    headers = {"Content-Crs": q.crs.header,
               "Content-Disposition": f'attachment; filename="{c.id}.{fmt}"'}
    if paging := _page_links(request, url, page, q, fmt):
        headers["Link"] = ", ".join(f'<{p["href"]}>; rel="{p["rel"]}"' for p in paging)
    return Response(body, media_type=MEDIA[fmt], headers=headers)


@router.get("/collections/{collectionId}/items", summary="Features of a collection")
async def items(
    request: Request,
    collectionId: str,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in bbox-crs (or 6 numbers: a 3D bbox)")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description=BBOX_CRS_DESCRIPTION)] = None,
    crs: Annotated[str | None, Query(description=CRS_DESCRIPTION)] = None,
    datetime: Annotated[str | None, Query(description=DATETIME_DESCRIPTION)] = None,
    limit: Annotated[int | None, Query(ge=1, description=LIMIT_DESCRIPTION)] = None,
    properties: Annotated[str | None, Query(description="Comma-separated property names to return")] = None,
    sortby: Annotated[str | None, Query(description=SORTBY_DESCRIPTION)] = None,
    cursor: Annotated[str | None, Query(description="Opaque paging cursor from a next/prev link")] = None,
    filter: Annotated[str | None, Query(description=_FILTER)] = None,
    filter_lang: Annotated[str | None, Query(alias="filter-lang", description=_FILTER_LANG,
                                             json_schema_extra={"enum": list(LANGUAGES)})] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs", description=_FILTER_CRS)] = None,
    f: Format = None,
):
    """A page of features in id order (or ``sortby``), filtered by bbox, datetime and a CQL2 filter, with
    next/prev links."""
    c = vector_collection(request, collectionId)
    _reject_unknown(request, _ITEMS_PARAMS)
    fmt = output_format(request, _FORMATS)
    restriction = restriction_for(request, c)
    q = _item_query(request, c, fmt, {
        "bbox": bbox, "bbox-crs": bbox_crs, "crs": crs, "datetime": datetime, "limit": limit,
        "properties": properties, "sortby": sortby, "cursor": cursor,
        "filter": filter, "filter-lang": filter_lang, "filter-crs": filter_crs,
    })

    async def produce() -> Response:
        page = await request.app.state.source.query(c, q, restriction=restriction)
        note_returned(request, page.number_returned)
        return _encoded(request, c, q, page, fmt)

    return await cached(request, "items", (c.id, fmt), produce, collections=[c], base=True)


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature")
async def item(
    request: Request, collectionId: str, featureId: str,
    crs: Annotated[str | None, Query(description=CRS_DESCRIPTION)] = None, f: ItemFormat = None,
):
    """One feature by its id (for parcels, the 28-character unit code)."""
    c = vector_collection(request, collectionId)
    _reject_unknown(request, _ITEM_PARAMS)
    fmt = output_format(request, ITEM_FORMATS)
    out_crs = offered(c, crs)

    async def produce() -> Response:
        feature = await request.app.state.source.get(
            c, featureId, c.field_names, restriction=restriction_for(request, c), crs=out_crs
        )
        if feature is None:
            raise NotFound(f"Feature '{featureId}' does not exist in collection '{c.id}'.")
        base = base_url(request)
        url = f"{base}/collections/{c.id}/items/{featureId}"
        links = [
            link(url if fmt == "json" else f"{url}?f=json", "self" if fmt == "json" else "alternate", GEOJSON,
                 "This feature"),
            link(f"{url}?f=html", "self" if fmt == "html" else "alternate", HTML, "This feature as HTML"),
            link(f"{base}/collections/{c.id}", "collection", JSON, "The collection"),
        ]
        body = feature[:-1] + b',"links":' + orjson.dumps(links) + b"}"
        if fmt == "html":
            return render_page(request, "item.html", doc=orjson.loads(body), collection=c)
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": out_crs.header})

    return await cached(request, "item", (c.id, featureId, fmt), produce, collections=[c], base=True)
