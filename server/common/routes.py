"""OGC API Common: landing page, conformance, the collections list and one collection.

Capabilities contribute without being imported by name: a module listed in ``app.CAPABILITIES``
may define ``CONFORMANCE`` (a list of URIs), ``landing_links(base)`` and
``collection_links(collection, base)`` (each returning link objects).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from server.cache import cached
from server.catalog import Collection, RasterCollection, Text, VectorCollection
from server.common import openapi
from server.crs import storage_crs, supported
from server.html import render_page
from server.policy import visible_collection, visible_collections
from server.web import (
    HTML,
    JSON,
    OPENAPI,
    OPENAPI_VERSION,
    base_url,
    carry_key,
    format_param,
    json_response,
    key_query,
    language,
    link,
    output_format,
    self_links,
)

router = APIRouter(tags=["Common"])
router.include_router(openapi.router)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landing-page",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
]
_FORMATS = {"json": JSON, "html": HTML}
Format = Annotated[str | None, format_param(*_FORMATS)]


def _contributions(request: Request, name: str) -> list:
    return [getattr(m, name) for m in request.app.state.capabilities if hasattr(m, name)]


def text(value: Text, lang: str) -> str:
    return value.en if lang == "en" else value.zh


def collection_document(request: Request, c: Collection, lang: str) -> dict[str, Any]:
    """The OGC collection description, the same for vector and raster collections."""
    base = base_url(request)
    url = f"{base}/collections/{c.id}"
    spatial = c.extent.spatial
    extent: dict[str, Any] = {"spatial": {"bbox": [list(spatial.bbox)], "crs": spatial.crs}}
    if c.extent.temporal:
        extent["temporal"] = {
            "interval": [list(c.extent.temporal.interval)],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    doc: dict[str, Any] = {
        "id": c.id,
        "title": text(c.title, lang),
        "description": text(c.description, lang),
        "keywords": c.keywords,
        "extent": extent,
        "links": [
            link(url, "self", JSON, "This collection"),
            link(f"{url}?f=html", "alternate", HTML, "This collection as HTML"),
        ],
    }
    if isinstance(c, VectorCollection):
        doc["itemType"] = "feature"
        doc["crs"] = [crs.uri for crs in supported(c)]
        doc["storageCrs"] = storage_crs(c).uri
    elif isinstance(c, RasterCollection):  # no items: tiles (a coverage for the DEM, a map for imagery)
        doc["dataType"] = c.data_type
    for contribute in _contributions(request, "collection_links"):
        doc["links"] += contribute(c, base)
    return doc


@router.get("/", summary="Landing page")
async def landing(request: Request, f: Format = None):
    """Links to the API definition, conformance, collections and every other resource."""
    fmt = output_format(request)
    base = base_url(request)
    links = self_links(f"{base}/", fmt, _FORMATS, "This document")
    links += [
        link(f"{base}{openapi.API_PATH}", "service-desc", OPENAPI, f"The API definition (OpenAPI {OPENAPI_VERSION})"),
        link(f"{base}{openapi.API_PATH}.html", "service-doc", HTML, "The API documentation"),
        link(f"{base}/conformance", "conformance", JSON, "Conformance classes"),
        link(f"{base}/collections", "data", JSON, "Collections"),
    ]
    for contribute in _contributions(request, "landing_links"):
        links += contribute(base)
    doc = {
        "title": "OneMap 自然资源一张图",
        "description": "Natural-resources one map: features, tiles, imagery, terrain and the data catalog.",
        "links": links,
    }
    if fmt == "html":
        return render_page(request, "landing.html", doc=doc)
    return json_response(carry_key(request, doc))


@router.get("/conformance", summary="Conformance classes")
async def conformance(request: Request, f: Format = None):
    """The conformance classes every capability implements."""
    classes = [uri for group in _contributions(request, "CONFORMANCE") for uri in group]
    doc = {"conformsTo": sorted(set(classes))}
    if output_format(request) == "html":
        return render_page(request, "conformance.html", doc=doc)
    return json_response(doc)


@router.get("/collections", summary="The collections")
async def collections(request: Request, f: Format = None):
    """Every collection this caller may see."""
    fmt = output_format(request)
    lang = language(request)
    base = base_url(request)

    async def produce():
        docs = [collection_document(request, c, lang) for c in visible_collections(request)]
        doc = {"links": self_links(f"{base}/collections", fmt, _FORMATS, "Collections"), "collections": docs}
        if fmt == "html":
            return render_page(request, "collections.html", doc=doc)
        return json_response(carry_key(request, doc), headers={"Content-Language": lang})

    if key_query(request):  # its links carry the caller's key: never cached, it would reach another caller
        return await produce()
    return await cached(request, "collections", (fmt,), produce, query=False, base=True, language=lang)


@router.get("/collections/{collectionId}", summary="One collection")
async def collection(request: Request, collectionId: str, f: Format = None):
    """The description of one collection."""
    c = visible_collection(request, collectionId)
    fmt = output_format(request)
    lang = language(request)

    async def produce():
        doc = collection_document(request, c, lang)
        if fmt == "html":
            return render_page(request, "collection.html", doc=doc, collection=c, lang=lang)
        return json_response(carry_key(request, doc), headers={"Content-Language": lang})

    if key_query(request):  # as above
        return await produce()
    return await cached(request, "collection", (c.id, fmt), produce, query=False, base=True, language=lang)
