"""The 3D scene at ``/scene``: CesiumJS with this server's terrain, imagery, 3D buildings and vectors.

CesiumJS comes from npm (``npm ci`` at the repository root) and is served by this server from
``settings.cesium_dir`` (``ONEMAP_CESIUM_DIR``, default ``./node_modules/cesium/Build/Cesium``) under
``/scene/cesium/``, so the page makes no request to any other host (no Cesium ion, no CDN): it works
offline. Without it, ``/scene`` answers 503 with a page saying how to install.

What the page draws, all from this server and as the caller may see it:

* terrain: the first DEM's quantized-mesh folder (``/collections/{id}/terrain/``), lit with vertex normals;
* imagery: each imagery collection's raster tiles (WebMercatorQuad PNG) as an imagery layer, with a
  time switch over its acquisitions (``item=``);
* 3D buildings: each collection that declares ``extrude``, as a 3D Tiles tileset;
* vector layers draped on the terrain: GeoJSON items of the collections named by ``layers=`` (default
  ``parcels`` where the caller may see them, else none) inside the view, clamped to the ground.

A click shows the picked building's or feature's properties and links its unit-code profile
(``/codes/{unit_code}``) where the feature has a unit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.catalog import Collection, RasterCollection, VectorCollection
from server.errors import InvalidParameter, NotFound
from server.policy import session_active, visible_collections
from server.web import base_url

router = APIRouter(tags=["3D scene"])
HERE = Path(__file__).parent
_env = Environment(loader=FileSystemLoader(HERE), autoescape=select_autoescape(["html"]))
_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".png": "image/png",
          ".jpg": "image/jpeg", ".svg": "image/svg+xml", ".wasm": "application/wasm", ".glb": "model/gltf-binary",
          ".xml": "application/xml", ".ktx2": "image/ktx2", ".woff": "font/woff", ".woff2": "font/woff2"}
_LIB_CACHE = "public, max-age=86400"
Layers = Annotated[str | None, Query(description="Vector collections draped on the terrain, comma-separated "
                                                 "(default: parcels)")]
DEFAULT_LAYERS = "parcels"  # draped when the caller names none


def cesium_installed(root: Path) -> bool:
    """Whether CesiumJS's built files are present in ``root``."""
    return (root / "Cesium.js").is_file() and (root / "Widgets" / "widgets.css").is_file()


def _title(c: Collection) -> str:
    return c.title.zh or c.title.en


def scene_config(visible: list[Collection], base: str, layers: list[str], session: bool) -> dict[str, Any]:
    """What the page needs: terrain folder, imagery with acquisitions, tilesets and draped layers."""
    rasters = [c for c in visible if isinstance(c, RasterCollection)]
    vectors = {c.id: c for c in visible if isinstance(c, VectorCollection)}
    dem = next((c for c in rasters if c.raster.kind == "dem"), None)
    return {
        "base": base,
        "session": session,
        "terrain": f"{base}/collections/{dem.id}/terrain/" if dem else None,
        "imagery": [{"id": c.id, "title": _title(c), "bounds": list(c.extent.spatial.bbox[:4]),
                     "minzoom": c.raster.minzoom, "maxzoom": c.raster.maxzoom,
                     "items": [{"id": a.id, "datetime": a.datetime}
                               for a in sorted(c.raster.assets, key=lambda a: a.datetime, reverse=True)]}
                    for c in rasters if c.raster.kind == "imagery"],
        "tilesets": [{"id": c.id, "title": _title(c), "url": f"{base}/collections/{c.id}/3dtiles/tileset.json"}
                     for c in vectors.values() if c.extrude is not None],
        "draped": [{"id": vectors[i].id, "title": _title(vectors[i]), "idField": vectors[i].source.id_field}
                   for i in layers if i in vectors],
        "bounds": list(next((c.extent.spatial.bbox[:4] for c in vectors.values() if c.extrude), ()) or
                       (dem.extent.spatial.bbox[:4] if dem else [])),
    }


@router.get("/scene", summary="3D scene (CesiumJS)", response_class=HTMLResponse)
async def scene_page(request: Request, layers: Layers = None) -> HTMLResponse:
    """Terrain, imagery (time switch), 3D buildings and draped vector layers in CesiumJS."""
    visible = visible_collections(request)
    known = {c.id for c in visible}
    default = DEFAULT_LAYERS if DEFAULT_LAYERS in known else ""  # an edition without parcels drapes nothing
    names = [n.strip() for n in (default if layers is None else layers).split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidParameter(f"Parameter 'layers': no collection {', '.join(repr(n) for n in unknown)}.")
    if not cesium_installed(request.app.state.settings.cesium_dir):
        html = _env.get_template("scene.html").render(missing=True, config="{}")
        return HTMLResponse(html, status_code=503)
    config = scene_config(visible, base_url(request), names, session_active(request))
    text = orjson.dumps(config).decode().replace("</", "<\\/")  # never ends the script element
    html = _env.get_template("scene.html").render(missing=False, config=text, base=base_url(request))
    return HTMLResponse(html)


@router.get("/scene/scene.js", summary="The scene's script", include_in_schema=False)
async def scene_script() -> FileResponse:
    """The page's own script."""
    return FileResponse(HERE / "scene.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/scene/cesium/{path:path}", summary="CesiumJS files", include_in_schema=False)
async def cesium_file(path: str, request: Request) -> FileResponse:
    """A file of the CesiumJS build (script, workers, assets, widgets), from the npm installation."""
    root = Path(request.app.state.settings.cesium_dir).resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file():
        raise NotFound(f"No CesiumJS file '{path}'.")
    media = _TYPES.get(target.suffix.lower(), "application/octet-stream")
    return FileResponse(target, media_type=media, headers={"Cache-Control": _LIB_CACHE})


__all__ = ["router"]
