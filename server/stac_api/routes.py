"""STAC API at ``/stac``: landing page, conformance, collections, items and item search.

Implements STAC API - Core, Collections, Features (OGC API Features over the STAC items) and Item
Search (GET and POST, with ``next``/``prev`` links; POST links carry the body to send). The
holdings are the catalog's raster collections (``server.stac_catalog.build``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.cache import all_rasters, cache_response, path_collection
from server.catalog import Collection, RasterCollection
from server.credentials import KEY_PARAMS, without_credentials
from server.errors import InvalidParameter, NotFound, collection_not_found
from server.filters import CQL2_CONFORMANCE
from server.html import html_alternative
from server.policy import restrictions
from server.stac_api import search
from server.stac_api.extensions import EXTENSION_CONFORMANCE, apply_fields, queryables
from server.stac_api.index import (
    GEOJSON,
    JSON,
    StacIndex,
    build_index,
    collection_json,
    item_json,
    resolution_caps,
    versions,
)
from server.web import OPENAPI, OPENAPI_VERSION, base_url, json_response, link

router = APIRouter(prefix="/stac", tags=["STAC API"])

STAC_VERSION = "1.1.0"
CONFORMS_TO = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    *EXTENSION_CONFORMANCE,
    *CQL2_CONFORMANCE,
]


def landing_links(base: str) -> list[dict[str, Any]]:
    """The OGC landing page links to the STAC API."""
    return [link(f"{base}/stac", "data", JSON, "STAC API: the imagery and elevation catalog")]


def collection_links(collection: Collection, base: str) -> list[dict[str, Any]]:
    """A raster collection links to its STAC collection."""
    if not isinstance(collection, RasterCollection):
        return []
    return [link(f"{base}/stac/collections/{collection.id}", "alternate", JSON, "STAC collection")]


async def _index(request: Request) -> tuple[StacIndex, str]:
    """The index for this base URL (rebuilt when a raster file changed), as the caller may see it."""
    state = request.app.state
    base = base_url(request)
    seen = restrictions(request)
    caps = resolution_caps(seen)  # rasters are described at the resolution this caller is served
    key = (base, versions(state.catalog, state.settings.data_dir))
    cached = getattr(state, "stac_index", None)
    if cached is None or cached[0] != key:
        cached = (key, {})  # an index per set of resolution caps (one or two per edition)
        state.stac_index = cached
    indexes: dict[tuple[tuple[str, float], ...], StacIndex] = cached[1]
    index = indexes.get(caps)
    if index is None:
        index = await run_in_threadpool(build_index, state.catalog, state.settings.data_dir, base, dict(caps))
        indexes[caps] = index
    return index.visible(restrictions=seen), f"{base}/stac"


@router.get("", summary="STAC API landing page")
@html_alternative("stac_catalog.html")
@cache_response("stac-landing", query=False, collections=all_rasters)
async def landing(request: Request):
    """The root catalog: conformance, links to collections, search and the API definition."""
    index, root = await _index(request)
    base = base_url(request)
    links = [
        link(root, "self", JSON, "This catalog"),
        link(root, "root", JSON, "This catalog"),
        link(f"{root}/conformance", "conformance", JSON, "STAC API conformance classes"),
        link(f"{root}/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json",
             "Queryable properties of item search"),
        link(f"{root}/collections", "data", JSON, "Collections"),
        link(f"{root}/search", "search", GEOJSON, "Item search (GET)", method="GET"),
        link(f"{root}/search", "search", GEOJSON, "Item search (POST)", method="POST"),
        link(f"{base}/api", "service-desc", OPENAPI, f"The API definition (OpenAPI {OPENAPI_VERSION})"),
        link(f"{base}/api.html", "service-doc", "text/html", "The API documentation"),
    ]
    links += [link(f"{root}/collections/{cid}", "child", JSON, doc.get("title"))
              for cid, doc in index.collections.items()]
    return json_response({
        "type": "Catalog", "id": "onemap", "stac_version": STAC_VERSION, "stac_extensions": [],
        "title": "OneMap 自然资源一张图 data catalog",
        "description": "Imagery and elevation holdings of the natural-resources one map.",
        "conformsTo": CONFORMS_TO, "links": links,
    })


@router.get("/conformance", summary="STAC API conformance classes")
@html_alternative("conformance.html")
async def conformance(request: Request):
    """The STAC API and OGC API Features classes implemented here."""
    return json_response({"conformsTo": CONFORMS_TO})


@router.get("/collections", summary="STAC collections")
@html_alternative("stac_collections.html")
@cache_response("stac-collections", query=False, collections=all_rasters)
async def collections(request: Request):
    """Every raster collection as a STAC Collection."""
    index, root = await _index(request)
    return json_response({
        "collections": [collection_json(doc, root) for doc in index.collections.values()],
        "links": [link(f"{root}/collections", "self", JSON), link(root, "root", JSON), link(root, "parent", JSON)],
    })


@router.get("/collections/{collectionId}", summary="One STAC collection")
@html_alternative("stac_collection.html")
@cache_response("stac-collection", query=False, collections=path_collection)
async def collection(request: Request, collectionId: str):
    """One STAC Collection."""
    index, root = await _index(request)
    doc = index.collections.get(collectionId)
    if doc is None:
        raise collection_not_found(collectionId)
    return json_response(collection_json(doc, root))


def _page(request: Request, index: StacIndex, root: str, s: search.Search, url: str, post: bool) -> Response:
    page, matched, more = search.run(index.entries, s, restrictions=restrictions(request))
    links = [link(root, "root", JSON)]
    query = without_credentials(request.query_params.multi_items())  # never into a (cacheable) body
    if not post:
        links.append(link(f"{url}?{urlencode(query)}" if query else url, "self", GEOJSON))
    for rel, offset, wanted in (("next", s.offset + s.limit, more), ("prev", max(0, s.offset - s.limit), s.offset > 0)):
        if not wanted:
            continue
        token = search.encode_token(offset)
        if post:
            links.append(link(url, rel, GEOJSON, method="POST", body={**s.body, "token": token}, merge=False))
        else:
            paged = [(k, v) for k, v in query if k != "token"] + [("token", token)]
            links.append(link(f"{url}?{urlencode(paged)}", rel, GEOJSON, method="GET"))
    features = [apply_fields(item_json(e, root), s.fields) for e in page]
    body = {"type": "FeatureCollection", "features": features,
            "links": links, "numberMatched": matched, "numberReturned": len(page)}
    return json_response(body, media_type=GEOJSON)


_SEARCH_PARAMS = {"bbox", "datetime", "limit", "token", "collections", "ids", "intersects", "filter", "filter-lang",
                  "filter-crs", "sortby", "fields"}
_TOLERATED = {"f", *KEY_PARAMS}  # OGC clients add f=json; a key may come as a parameter


def _parse(request: Request, params: dict[str, Any]) -> search.Search:
    settings = request.app.state.settings
    return search.parse(params, settings.default_limit, settings.max_limit)


def _query(request: Request, query: search.SearchQuery) -> search.Search:
    """The search a GET asks for; an undeclared parameter is a 400 naming it."""
    unknown = sorted(set(request.query_params) - _SEARCH_PARAMS - _TOLERATED)
    if unknown:
        raise InvalidParameter(f"Unknown parameter '{unknown[0]}'; allowed: {', '.join(sorted(_SEARCH_PARAMS))}.")
    return _parse(request, query.given())


@router.get("/collections/{collectionId}/items", summary="Items of a STAC collection")
@html_alternative("stac_items.html")
@cache_response("stac-items", collections=path_collection)
async def items(request: Request, collectionId: str, query: Annotated[search.SearchQuery, Depends()]):
    """The collection's items, filtered by bbox and datetime, paged by ``limit`` and ``token``."""
    index, root = await _index(request)
    if collectionId not in index.collections:
        raise collection_not_found(collectionId)
    s = _query(request, query)
    # the collection in the path narrows whatever 'collections' says (clients repeat it there)
    s = replace(s, collections=tuple(c for c in (s.collections or (collectionId,)) if c == collectionId))
    return _page(request, index, root, s, f"{root}/collections/{collectionId}/items", post=False)


@router.get("/collections/{collectionId}/items/{itemId}", summary="One STAC item")
@html_alternative("stac_item.html")
@cache_response("stac-item", query=False, collections=path_collection)
async def item(request: Request, collectionId: str, itemId: str):
    """One STAC Item."""
    index, root = await _index(request)
    if collectionId not in index.collections:
        raise collection_not_found(collectionId)
    entry = next((e for e in index.entries if e.collection == collectionId and e.id == itemId), None)
    if entry is None:
        raise NotFound(f"Item '{itemId}' does not exist in collection '{collectionId}'.")
    return json_response(item_json(entry, root), media_type=GEOJSON)


@router.get("/search", summary="Item search (GET)")
@html_alternative("stac_items.html")
@cache_response("stac-search", collections=all_rasters)
async def search_get(request: Request, query: Annotated[search.SearchQuery, Depends()]):
    """Search items across collections with query parameters."""
    index, root = await _index(request)
    return _page(request, index, root, _query(request, query), f"{root}/search", post=False)


async def search_post(request: Request, body: Annotated[search.SearchBody | None, Body()] = None):
    """Search items across collections with a JSON body (none: every item)."""
    index, root = await _index(request)
    s = _parse(request, body.model_dump(exclude_unset=True, by_alias=True) if body is not None else {})
    return _page(request, index, root, s, f"{root}/search", post=True)


@router.get("/queryables", summary="Queryable properties of item search")
@html_alternative("queryables.html")
async def search_queryables(request: Request):
    """The properties ``filter`` and ``sortby`` may name, as a JSON Schema."""
    root = f"{base_url(request)}/stac"
    return json_response(queryables(f"{root}/queryables"), media_type="application/schema+json")


# a body sent without a Content-Type is read as JSON, like one sent as application/json
router.add_api_route("/search", search_post, methods=["POST"], summary="Item search (POST)", strict_content_type=False)
