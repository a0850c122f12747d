"""OGC API Styles: ``/styles``, ``/styles/{styleId}`` (MapLibre style JSON) and its metadata.

Styles are read from ``settings.styles_dir`` on first use. A style is offered to a caller only
when at least one of its collections is visible to that caller (``server.policy``), and then without
the layers of the others; an unknown or fully hidden style answers 404 like a missing one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.catalog import Collection
from server.errors import NotFound
from server.html import html_alternative
from server.policy import visible_collections
from server.settings import Settings
from server.styles.render import render_style
from server.styles.store import StyleTemplate, load_styles
from server.web import JSON, base_url, carry_key, format_param, json_response, language, link, output_format

router = APIRouter(tags=["Styles"])

MAPBOX_STYLE = "application/vnd.mapbox.style+json"
DEFAULT_STYLE = "basemap"
STYLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/styles"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-styles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-styles-1/1.0/conf/mapbox-styles",
    "http://www.opengis.net/spec/ogcapi-styles-1/1.0/conf/json",
]
_DEFAULT_DIR: Path = Settings.model_fields["styles_dir"].default
JsonOnly = Annotated[str | None, format_param("json")]


def _styles(request: Request) -> dict[str, StyleTemplate]:
    return load_styles(request.app.state.settings.styles_dir)


def _style_entry_links(base: str, style_id: str, title: str) -> list[dict[str, Any]]:
    url = f"{base}/styles/{style_id}"
    return [
        link(f"{url}?f=mapbox", "stylesheet", MAPBOX_STYLE, f"{title} (MapLibre style)"),
        link(f"{url}/metadata", "describedby", JSON, f"{title}: metadata"),
    ]


def style_links(collection_id: str, base_url: str, styles_dir: Path | None = None) -> list[dict[str, Any]]:
    """Links from a collection document to every style that draws the collection.

    The collection's own style comes first; ``styles_dir`` defaults to the configured default.
    """
    styles = load_styles(styles_dir or _DEFAULT_DIR)
    base = base_url.rstrip("/")
    found = [s for s in styles.values() if collection_id in s.collections]
    found.sort(key=lambda s: s.id != collection_id)
    return [
        link(f"{base}/styles/{s.id}?f=mapbox", "stylesheet", MAPBOX_STYLE, s.text(s.title, "zh"))
        for s in found
    ]


def collection_links(collection: Collection, base: str) -> list[dict[str, Any]]:
    """Contribution to collection documents: the styles drawing this collection."""
    return style_links(collection.id, base)


def landing_links(base: str) -> list[dict[str, Any]]:
    """Contribution to the landing page: the styles list."""
    return [link(f"{base}/styles", STYLES_REL, JSON, "Map styles")]


def _rendered(request: Request, style_id: str) -> tuple[StyleTemplate, dict[str, Any]]:
    template = _styles(request).get(style_id)
    doc = None if template is None else render_style(template, base_url(request), visible_collections(request))
    if template is None or doc is None:
        raise NotFound(f"Style '{style_id}' does not exist.")
    return template, doc


@router.get("/styles", summary="The map styles")
@html_alternative("styles.html")
async def styles_list(request: Request, f: JsonOnly = None):
    """Every style offered to this caller, with links to its stylesheet and metadata."""
    output_format(request, ("json",))
    base, lang = base_url(request), language(request)
    visible = {c.id for c in visible_collections(request)}
    entries = [
        {"id": s.id, "title": s.text(s.title, lang), "links": _style_entry_links(base, s.id, s.text(s.title, lang))}
        for s in _styles(request).values()
        if s.collections & visible
    ]
    doc: dict[str, Any] = {
        "styles": entries,
        "links": [link(f"{base}/styles?f=json", "self", JSON, "Map styles")],
    }
    if any(e["id"] == DEFAULT_STYLE for e in entries):
        doc["default"] = DEFAULT_STYLE
    return json_response(carry_key(request, doc))


@router.get("/styles/{styleId}", summary="A style as a MapLibre style document")
@html_alternative("style.html")
async def style(request: Request, styleId: str, f: Annotated[str | None, format_param("mapbox", "json")] = None):
    """The MapLibre style, with tile URLs on this server (``f=mapbox``, the default)."""
    fmt = output_format(request, ("mapbox", "json"))
    _, doc = _rendered(request, styleId)
    return json_response(carry_key(request, doc), media_type=MAPBOX_STYLE if fmt == "mapbox" else JSON)


def _layer_entries(doc: dict[str, Any], base: str) -> list[dict[str, Any]]:
    out = []
    for layer in doc["layers"]:
        entry: dict[str, Any] = {"id": layer["id"], "type": layer["type"]}
        cid = layer.get("source-layer")
        if cid:
            entry["sampleData"] = link(f"{base}/collections/{cid}/items", "start", "application/geo+json")
        out.append(entry)
    return out


@router.get("/styles/{styleId}/metadata", summary="Metadata of a style")
@html_alternative("style_metadata.html")
async def style_metadata(request: Request, styleId: str, f: JsonOnly = None) -> Response:
    """Title, description, keywords, the stylesheet and the layers of a style."""
    output_format(request, ("json",))
    template, doc = _rendered(request, styleId)
    base, lang = base_url(request), language(request)
    title = template.text(template.title, lang)
    url = f"{base}/styles/{styleId}"
    meta = {
        "id": styleId,
        "title": title,
        "description": template.text(template.description, lang),
        "keywords": list(template.keywords),
        "scope": "style",
        "stylesheets": [
            {
                "title": "MapLibre style",
                "version": "8",
                "specification": "https://maplibre.org/maplibre-style-spec/",
                "native": True,
                "link": link(f"{url}?f=mapbox", "stylesheet", MAPBOX_STYLE, title),
            }
        ],
        "layers": _layer_entries(doc, base),
        "links": [link(f"{url}/metadata", "self", JSON, f"{title}: metadata")],
    }
    return json_response(carry_key(request, meta))
