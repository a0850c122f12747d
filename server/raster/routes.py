"""Raster routes besides map tiles: Cesium terrain, elevation at a point, and the COG files.

* ``/collections/{id}/terrain/layer.json`` and ``/collections/{id}/terrain/{z}/{x}/{y}.terrain``:
  quantized-mesh terrain of a DEM collection, with the ``octvertexnormals`` extension when the client's
  ``Accept`` asks for it; both through the response cache (ETag/304, gzip or brotli, Cache-Control);
* ``/collections/{id}/elevation?lon=..&lat=..``: the DEM height at a point, as a GeoJSON Feature;
* ``/collections/{id}/assets/{assetId}``: a registered COG, addressed by asset id (a mosaic sheet:
  ``<acquisition>_<sheet>``), a local file or an object in object storage streamed through the server
  (``server.raster.downloads``); HTTP range requests work, so GDAL's ``/vsicurl/`` and other COG clients
  read it in parts.

Map tiles of raster collections are served by the shared tile routes (``server.tiles.routes``), which
hand them to the handler this capability registers for raster collections (``TILE_HANDLERS``, see
``server.tiling.handlers``): ``server.raster.tiles.RasterTiles``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from rio_tiler.errors import PointOutsideBounds
from starlette.concurrency import run_in_threadpool

from server.assets import asset_location, asset_path, file_assets, is_remote
from server.cache import cached
from server.catalog import Collection, RasterCollection
from server.errors import NotFound
from server.params import DATETIME_DESCRIPTION
from server.policy import Restriction, checked, restriction_for, visible_collection
from server.policy.rasters import SLACK, ground_resolution_m, within_resolution
from server.raster import terrain
from server.raster.assets import readable, select_asset
from server.raster.downloads import remote_file
from server.raster.store import RasterReadError, RasterStore, get_store
from server.raster.tiles import RasterTiles
from server.web import JSON, base_url, json_response, link

router = APIRouter(tags=["Imagery and terrain"])

GEOTIFF = "image/tiff; application=geotiff; profile=cloud-optimized"
TILE_HANDLERS = {"raster": RasterTiles()}
Item = Annotated[str | None, Query(description="The acquisition (item id) to read; the latest without it")]


def _raster(request: Request, collection_id: str, kind: str | None = None) -> RasterCollection:
    """The raster collection as the caller may see it (resolution capped by the edition), or the one 404."""
    c = visible_collection(request, collection_id, RasterCollection)
    if kind and c.raster.kind != kind:
        raise NotFound(f"Collection '{collection_id}' is not an elevation model; it has no terrain or elevation.")
    return c


def collection_links(collection: Collection, base: str) -> list[dict[str, Any]]:
    """Links from a raster collection to its terrain, elevation service and COG assets."""
    if not isinstance(collection, RasterCollection):
        return []
    url = f"{base}/collections/{collection.id}"
    files = list(collection.raster.assets) if collection.raster.sheets is None else []
    links = [link(f"{url}/assets/{a.id}", "enclosure", GEOTIFF, f"COG {a.id} ({a.datetime})")
             for a in files]  # a mosaic's sheets are listed in STAC
    if collection.raster.kind == "dem":
        links += [
            link(f"{url}/terrain/layer.json", "alternate", JSON, "Cesium quantized-mesh terrain (layer.json)"),
            link(f"{url}/elevation?lon={{lon}}&lat={{lat}}", "service", "application/geo+json",
                 "Elevation at a point", templated=True),
        ]
    return links


@router.get("/collections/{collectionId}/terrain/layer.json", summary="Cesium terrain layer.json")
async def layer_json(request: Request, collectionId: str):
    """The quantized-mesh layer description: grid, levels, tile availability and extensions."""
    c = _raster(request, collectionId, "dem")
    asset = select_asset(c, None, None)

    async def produce() -> Response:
        return json_response(terrain.layer_json(c, asset.id))

    return await cached(request, "terrain-layer", (c.id,), produce, collections=[c], query=False)


@router.get(
    "/collections/{collectionId}/terrain/{z}/{x}/{y}.terrain",
    summary="A quantized-mesh terrain tile",
    response_class=Response,
    responses={200: {"content": {terrain.MEDIA: {}}}},
)
async def terrain_tile(request: Request, collectionId: str, z: int, x: int, y: int, item: Item = None):
    """One Cesium terrain tile (TMS numbering, geographic 2x1-root grid); with vertex normals when
    ``Accept`` names ``application/vnd.quantized-mesh;extensions=octvertexnormals``."""
    c = _raster(request, collectionId, "dem")
    terrain.check_tile(c, z, x, y)
    asset = select_asset(c, item, None)
    path = asset_location(request.app.state.settings.data_dir, asset)
    store = get_store(request.app)
    normals = terrain.wants_normals(request.headers.get("accept", ""))
    media = f"{terrain.MEDIA};extensions={terrain.NORMALS}" if normals else terrain.MEDIA

    async def produce() -> Response:
        body = await store.run(terrain.read_tile, store, path, c, z, x, y, restriction=restriction_for(request, c),
                               normals=normals)
        return Response(body, media_type=media)

    parts = (c.id, asset.id, z, x, y, normals)
    return await cached(request, "terrain", parts, produce, collections=[c], query=False)


def read_elevation(store: RasterStore, path: str, collection: RasterCollection, lon: float, lat: float, *,
                   restriction: Restriction) -> float | None:
    """The height at a point of ``path`` (an asset of ``collection``), read from the finest overview no
    finer than the caller's resolution cap; None outside the data (runs in the raster pool)."""
    cap = checked(restriction, collection).max_resolution_m
    opened = store.open(path)
    if cap is not None and not within_resolution(path, cap):
        native = ground_resolution_m(path)
        level = next((i for i, f in enumerate(opened.overviews) if native * f >= cap * SLACK), None)
        if level is None:
            raise NotFound(f"Collection '{collection.id}' has no elevation at a resolution this edition allows.")
        opened = store.open(path, level)
    try:
        pt = opened.reader.point(lon, lat)
    except PointOutsideBounds:
        return None
    if not pt.mask.any():
        return None
    return float(pt.data[0])


@router.get("/collections/{collectionId}/elevation", summary="Elevation at a point")
async def elevation(
    request: Request,
    collectionId: str,
    lon: Annotated[float, Query(ge=-180, le=180, description="Longitude (CRS84)")],
    lat: Annotated[float, Query(ge=-90, le=90, description="Latitude (CRS84)")],
    item: Item = None,
    datetime: Annotated[str | None, Query(
        description=f"The latest acquisition at or before this instant, or inside this interval. "
                    f"{DATETIME_DESCRIPTION}",
    )] = None,
):
    """The DEM height (m) at ``lon``, ``lat`` as a GeoJSON Feature; 404 outside the DEM."""
    c = _raster(request, collectionId, "dem")
    asset = select_asset(c, item, datetime)
    path = asset_location(request.app.state.settings.data_dir, asset)
    store = get_store(request.app)
    height = await store.run(read_elevation, store, path, c, lon, lat, restriction=restriction_for(request, c))
    if height is None:
        raise NotFound(f"Collection '{c.id}' has no elevation at lon {lon}, lat {lat}.")
    return json_response(
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"elevation": round(height, 2), "unit": "m", "item": asset.id, "datetime": asset.datetime},
            "links": [link(f"{base_url(request)}/collections/{c.id}", "collection", JSON, "The collection")],
        },
        media_type="application/geo+json",
    )


@router.get(
    "/collections/{collectionId}/assets/{assetId}",
    summary="A Cloud-Optimized GeoTIFF",
    response_class=Response,
    responses={200: {"content": {"image/tiff": {}}}, 206: {"description": "Part of the file"}},
)
async def asset_file(request: Request, collectionId: str, assetId: str):
    """The COG of one registered asset (of a mosaic: one sheet, ``<acquisition>_<sheet>``); supports
    HTTP range requests. An asset in object storage is streamed from the store (``downloads``)."""
    c = _raster(request, collectionId)
    data_dir = request.app.state.settings.data_dir
    if c.raster.sheets is not None:  # a mosaic: its files are its sheets
        asset = next((a for a in file_assets(c, data_dir) if a.id == assetId), None)
        if asset is None:
            raise NotFound(f"Item '{assetId}' does not exist in collection '{c.id}'.")
    else:
        asset = select_asset(c, assetId, None)
    cap = readable(c, restriction=restriction_for(request, c)).raster.resolution_m
    too_fine = NotFound(f"Asset '{asset.id}' of collection '{c.id}' is not offered at a resolution this edition "
                        "allows.")
    if is_remote(asset):
        location = asset_location(data_dir, asset)
        store = get_store(request.app)  # made at the latest now: GDAL's HTTP timeouts apply (assets.GDAL_LIMITS)
        if cap is not None and not await store.run(within_resolution, location, cap):
            raise too_fine
        return await remote_file(location, request.headers.get("range"), request.headers.get("if-range"),
                                 f"{asset.id}.tif", GEOTIFF)
    path = asset_path(data_dir, asset)
    if not path.is_file():
        raise RasterReadError()
    if not await run_in_threadpool(within_resolution, path, cap):
        raise too_fine
    return FileResponse(path, media_type=GEOTIFF, filename=f"{asset.id}.tif")


__all__ = ["router", "TILE_HANDLERS", "collection_links"]
