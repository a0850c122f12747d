"""The web map viewer at ``/map``: MapLibre GL JS drawing the base map style from this server.

MapLibre GL JS is installed with npm (``npm ci`` at the repository root) and served by this server
from ``settings.maplibre_dir`` (``ONEMAP_MAPLIBRE_DIR``, default ``./node_modules/maplibre-gl/dist``),
so that the page makes no request to any other host: the classified network is offline. Without it,
``/map`` answers 503 with a page saying how to install.
The page (``map.html``) and the viewer's script and stylesheet live with the other pages in ``server/html``.
The Swagger UI files of ``/api.html`` are served the same way, from ``settings.swagger_ui_dir``, and
the label glyphs of the styles (``/fonts/{fontstack}/{range}.pbf``) from ``settings.glyphs_dir``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from server.catalog import Collection, RasterCollection, VectorCollection
from server.codes.classes import CONTROL_LINE_TYPES, LAND_SURVEY_FIRST, PLANNING_USE_CLASSES
from server.errors import NotFound, Unavailable
from server.extents import union_bbox
from server.html import STATIC_DIR, SWAGGER_UI_PATH, render_page
from server.policy import session_active, visible_collections
from server.viewer.fonts import glyph_file
from server.web import base_url

router = APIRouter(tags=["Map viewer"])

# The only library files the page needs: the module, its worker and the stylesheet.
LIBRARY_FILES = {
    "maplibre-gl.mjs": "text/javascript",
    "maplibre-gl-worker.mjs": "text/javascript",
    "maplibre-gl.css": "text/css",
}
# The files of Swagger UI that /api.html loads (npm's swagger-ui-dist).
SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")
_LIB_CACHE = "public, max-age=86400"
GLYPHS_TYPE = "application/x-protobuf"


def maplibre_installed(dist: Path) -> bool:
    """Whether the MapLibre GL JS files the page loads are present in ``dist``."""
    return all((dist / name).is_file() for name in LIBRARY_FILES)


def _title(c: Collection) -> dict[str, str]:
    return {"zh": c.title.zh, "en": c.title.en}


def viewer_config(visible: list[Collection], base: str, session: bool = False) -> dict[str, Any]:
    """What the page needs to know: style URL, collection titles, imagery layers and their times, and
    whether a session cookie signs the browser in (then the page puts the key in no request)."""
    vector = [c for c in visible if isinstance(c, VectorCollection)]
    imagery = [c for c in visible if isinstance(c, RasterCollection) and c.raster.kind == "imagery"]
    bounds = union_bbox([*vector, *imagery])
    return {
        "base": base,
        "session": session,
        "styleUrl": f"{base}/styles/basemap?f=mapbox",
        "tileMatrixSetsUrl": f"{base}/tileMatrixSets?f=json",
        "bounds": list(bounds) if bounds else None,
        "collections": [{"id": c.id, "title": _title(c), "idField": c.source.id_field} for c in vector],
        "legend": {"landSurvey": LAND_SURVEY_FIRST, "planning": PLANNING_USE_CLASSES,
                   "controlLines": CONTROL_LINE_TYPES},
        "imagery": [
            {
                "id": c.id,
                "title": _title(c),
                "minzoom": c.raster.minzoom,
                "maxzoom": c.raster.maxzoom,
                "bounds": list(c.extent.spatial.bbox),
                "times": sorted({a.datetime for a in c.raster.assets}, reverse=True),
            }
            for c in imagery
        ],
    }


@router.get("/map", summary="Web map viewer", response_class=HTMLResponse)
async def map_page(request: Request) -> HTMLResponse:
    """The interactive map: layer switcher, feature properties on click, imagery time switch."""
    if not maplibre_installed(request.app.state.settings.maplibre_dir):
        return render_page(request, "map.html", status_code=503, missing=True)
    config = viewer_config(visible_collections(request), base_url(request), session_active(request))
    return render_page(request, "map.html", missing=False, config=orjson.dumps(config).decode(),
                       planning_uses=sorted(PLANNING_USE_CLASSES.items()))


@router.get(SWAGGER_UI_PATH + "/{name}", summary="Swagger UI files", include_in_schema=False)
async def swagger_ui_file(name: str, request: Request) -> FileResponse:
    """One of the Swagger UI files of the API documentation page, from the npm installation."""
    if name not in SWAGGER_UI_FILES:
        raise NotFound(f"No library file '{name}'.")
    path = request.app.state.settings.swagger_ui_dir / name
    if not path.is_file():
        raise Unavailable(
            "Swagger UI is not installed; run 'npm ci' in the server directory or set ONEMAP_SWAGGER_UI_DIR.", 60
        )
    return FileResponse(path, media_type=SWAGGER_UI_FILES[name], headers={"Cache-Control": _LIB_CACHE})


@router.get("/map/lib/{name}", summary="MapLibre GL JS files", include_in_schema=False)
async def library_file(name: str, request: Request) -> FileResponse:
    """One of the MapLibre GL JS files, from the npm installation."""
    if name not in LIBRARY_FILES:
        raise NotFound(f"No library file '{name}'.")
    dist = request.app.state.settings.maplibre_dir
    if not maplibre_installed(dist):
        raise Unavailable(
            "MapLibre GL JS is not installed; run 'npm ci' in the server directory or set ONEMAP_MAPLIBRE_DIR.", 60
        )
    return FileResponse(dist / name, media_type=LIBRARY_FILES[name], headers={"Cache-Control": _LIB_CACHE})


@router.get("/map/static/{name}", summary="Viewer scripts and styles", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    """The viewer's own script and stylesheet."""
    path = STATIC_DIR / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        raise NotFound(f"No viewer file '{name}'.")
    return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/fonts/{fontstack}/{fontrange}.pbf", summary="Label glyphs (SDF glyph PBF of 256 code points)",
            response_class=Response, include_in_schema=False)  # a library file of the styles, like /map/lib
async def glyphs(fontstack: str, fontrange: str, request: Request) -> Response:
    """The glyphs of the first font of a comma-separated stack that this server has built, for one
    range of 256 code points (``0-255``, ``256-511`` ...), as the styles' ``glyphs`` URL asks."""
    path = glyph_file(request.app.state.settings.glyphs_dir, fontstack, fontrange)
    if path is None:
        raise NotFound(f"No glyphs for font stack '{fontstack[:100]}' and range '{fontrange[:20]}': the range is "
                       "'<start>-<start + 255>' and the fonts are built by 'make glyphs'.")
    return FileResponse(path, media_type=GLYPHS_TYPE, headers={"Cache-Control": _LIB_CACHE})
