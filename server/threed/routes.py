"""3D Tiles 1.1 routes for collections that declare ``extrude`` (buildings):

* ``/collections/{id}/3dtiles``: a GeoVolumes-shaped description (3D extent, content link);
* ``/collections/{id}/3dtiles/tileset.json``: the tileset (explicit adaptive quadtree, ``server.threed.tree``);
* ``/collections/{id}/3dtiles/tiles/r{key}.glb``: a leaf's glTF 2.0 binary content with
  ``EXT_mesh_features`` and ``EXT_structural_metadata`` (``server.threed.glb``).

Everything is built from what the caller may see and served through the response cache (ETag/304,
gzip/brotli, Cache-Control), keyed by the buildings' and the DEM's data versions.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.cache import cached
from server.catalog import Collection, VectorCollection
from server.errors import NotFound
from server.policy import visible_collection
from server.threed import tileset
from server.web import JSON, base_url, json_response, link

router = APIRouter(tags=["3D Tiles"])


def _extruded(request: Request, collection_id: str) -> VectorCollection:
    c = visible_collection(request, collection_id, VectorCollection)
    if c.extrude is None:
        raise NotFound(f"Collection '{collection_id}' has no 3D tiles.")
    return c


def _deps(request: Request, c: VectorCollection) -> list[Collection]:
    dem = request.app.state.catalog.get(c.extrude.terrain) if c.extrude and c.extrude.terrain else None
    return [c] + ([dem] if dem is not None else [])


def collection_links(collection: Collection, base: str) -> list[dict[str, Any]]:
    """The 3D content link of an extruded collection (rel ``original``, as in OGC API 3D GeoVolumes)."""
    if not isinstance(collection, VectorCollection) or collection.extrude is None:
        return []
    url = f"{base}/collections/{collection.id}/3dtiles"
    return [link(f"{url}/tileset.json", "original", tileset.TILESET_MEDIA, "3D Tiles 1.1 tileset"),
            link(url, "describedby", JSON, "The 3D container (GeoVolumes)")]


@router.get("/collections/{collectionId}/3dtiles", summary="The 3D container of a collection")
async def container(request: Request, collectionId: str):
    """The collection as an OGC API 3D GeoVolumes container: 3D extent and its 3D Tiles content."""
    c = _extruded(request, collectionId)

    async def produce() -> Response:
        node = await tileset.city(request, c)
        w, s, e, n, low, high = node.region if node else (*c.extent.spatial.bbox[:4], 0.0, 0.0)
        url = f"{base_url(request)}/collections/{c.id}/3dtiles"
        return json_response({
            "id": c.id, "title": c.title.en, "collectionType": "3d-container",
            "extent": {"spatial": {"bbox": [[w, s, low, e, n, high]],
                                   "crs": "http://www.opengis.net/def/crs/OGC/0/CRS84h"}},
            "content": [link(f"{url}/tileset.json", "original", tileset.TILESET_MEDIA, "3D Tiles 1.1 tileset")],
            "links": [link(url, "self", JSON, "This document"),
                      link(f"{base_url(request)}/collections/{c.id}", "collection", JSON, "The collection")],
        })

    return await cached(request, "3d-container", (c.id,), produce, collections=_deps(request, c), base=True,
                        query=False)


@router.get("/collections/{collectionId}/3dtiles/tileset.json", summary="3D Tiles 1.1 tileset")
async def tileset_json(request: Request, collectionId: str):
    """The tileset: an explicit quadtree of regions, leaf content in GLB, errors decreasing downwards."""
    c = _extruded(request, collectionId)

    async def produce() -> Response:
        node = await tileset.city(request, c)
        version = await request.app.state.cache.versions.get(c)
        return json_response(tileset.tileset_json(c, node, version), media_type=JSON)

    return await cached(request, "3d-tileset", (c.id,), produce, collections=_deps(request, c), query=False)


@router.get(
    "/collections/{collectionId}/3dtiles/tiles/{tile}.glb",
    summary="3D Tiles content (glTF 2.0 binary)",
    response_class=Response,
    responses={200: {"content": {tileset.MEDIA: {}}}},
)
async def content(request: Request, collectionId: str, tile: str):
    """One leaf's buildings as GLB with per-feature ids and the metadata the caller may see; ``tile`` is
    ``r`` followed by the leaf's quadrant path."""
    c = _extruded(request, collectionId)

    async def produce() -> Response:
        return Response(await tileset.content(request, c, tile), media_type=tileset.MEDIA)

    return await cached(request, "3d-content", (c.id, tile), produce, collections=_deps(request, c), query=False)


__all__ = ["router", "collection_links"]
