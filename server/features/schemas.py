"""OGC API Features Part 5 (and Part 3's) queryables and sortables of a collection: JSON Schema of
what the caller may filter and sort on (``server.queryables``), titles in the request's language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.cache import cached
from server.catalog import Collection, VectorCollection
from server.credentials import KEY_PARAMS
from server.errors import InvalidParameter
from server.html import html_alternative
from server.policy import restriction_for, visible_collection
from server.queryables import SCHEMA_MEDIA, schema_document
from server.web import JSON, base_url, format_param, json_response, language, link, output_format

router = APIRouter(tags=["Features"])
_FORMATS = ("json",)
Format = Annotated[str | None, format_param(*_FORMATS)]
_ALLOWED = {"f", *KEY_PARAMS}


def schema_links(c: Collection, base: str) -> list[dict]:
    """Queryables and sortables links for a vector collection's document."""
    url = f"{base}/collections/{c.id}"
    return [
        link(f"{url}/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables", SCHEMA_MEDIA,
             "The properties the features can be filtered on"),
        # the relation of the Part 3 drafts, which GDAL's OAPIF driver follows to learn what it may push
        link(f"{url}/queryables", "queryables", SCHEMA_MEDIA, "The properties the features can be filtered on"),
        link(f"{url}/sortables", "http://www.opengis.net/def/rel/ogc/1.0/sortables", SCHEMA_MEDIA,
             "The properties the features can be sorted by"),
    ]


def _media_type(request: Request) -> str:
    """``application/schema+json``, or plain JSON for a client whose Accept names only that (GDAL's OAPIF
    driver refuses any other type when it reads the queryables)."""
    accept = request.headers.get("accept", "")
    return JSON if JSON in accept and SCHEMA_MEDIA not in accept else SCHEMA_MEDIA


def draft_listing(doc: dict, geometry_field: str) -> list[dict[str, str]]:
    """The same queryables as the Part 3 drafts listed them (``{"id": name}`` objects), an annotation JSON
    Schema ignores: GDAL's OAPIF driver reads this list to know which fields it may send in a ``filter``."""
    return [{"id": name} for name in doc["properties"] if name != geometry_field]


async def _schema(request: Request, collection_id: str, kind: str) -> Response:
    c = visible_collection(request, collection_id, VectorCollection)
    unknown = sorted(set(request.query_params) - _ALLOWED)
    if unknown:
        raise InvalidParameter(f"Unknown query parameter {', '.join(repr(u) for u in unknown)}; allowed: f.")
    output_format(request, _FORMATS)
    media = _media_type(request)

    async def produce() -> Response:
        url = f"{base_url(request)}/collections/{c.id}/{kind}"
        doc = schema_document(c, restriction_for(request, c), language(request), url, geometry=kind == "queryables")
        if kind == "queryables":
            doc["queryables"] = draft_listing(doc, c.source.geometry_field)
        return json_response(doc, media_type=media)

    return await cached(request, kind, (c.id, media), produce, base=True, language=language(request))


@router.get("/collections/{collectionId}/queryables", summary="Properties the features can be filtered on")
@html_alternative("queryables.html")
async def queryables(request: Request, collectionId: str, f: Format = None):
    """JSON Schema of the properties (and the geometry) the caller may filter on: hidden and masked
    fields are absent."""
    return await _schema(request, collectionId, "queryables")


@router.get("/collections/{collectionId}/sortables", summary="Properties the features can be sorted by")
@html_alternative("queryables.html")
async def sortables(request: Request, collectionId: str, f: Format = None):
    """JSON Schema of the properties the caller may sort by (``sortby``)."""
    return await _schema(request, collectionId, "sortables")
