"""OGC API - Tiles: tile matrix sets, collection tilesets and the dataset tileset (the base map: one
MVT layer per vector collection).

Every collection tile route is here: it looks the collection up once, checks the grid and the tile
address, and hands the collection to the tile handler of its kind (``server.tiling.handlers``): the
MVT handler below for vector collections, ``server.raster`` for imagery and DEM.

Responses:
- a tile with content: 200, ``application/vnd.mapbox-vector-tile``;
- a tile with nothing to draw (outside the data, or outside the layers' zoom range): **204 No
  Content**, always, for every backend (MapLibre and OpenLayers draw it as empty);
- unknown collection or tile matrix set: 404; a matrix, row or column outside the grid, or a value
  that is not an integer: 400. All errors carry the OGC exception body.
- tileset metadata: OGC JSON by default; TileJSON 3.0.0 with ``f=tilejson`` or
  ``Accept: application/vnd.mapbox.tile+json`` (WebMercatorQuad only; other grids answer 406).
- a base map tile draws every vector collection the caller may see, or those named in
  ``collections`` (comma-separated ids; a name that is not one of them is a 400).

Every query parameter is declared on its route, so that ``/api`` documents it.
"""

from __future__ import annotations

from typing import Annotated, Any

import morecantile
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.cache import cached
from server.catalog import Collection, VectorCollection
from server.errors import InvalidParameter, NotAcceptable
from server.html import html_alternative
from server.params import DATETIME_DESCRIPTION
from server.policy import restriction_for, restrictions, visible_collection, visible_collections
from server.tiles import metadata
from server.tiling.handlers import handler_for
from server.tiling.matrix_sets import check_tile, get_tms, id_of, tms_ids
from server.tiling.zooms import tile_request, visible
from server.web import JSON, base_url, carry_key, format_param, json_response, language, link, output_format

router = APIRouter(tags=["Tiles"])

TilesetFormat = Annotated[str | None, format_param("json", "tilejson")]
TileFormat = Annotated[str | None, Query(
    description="Vector collections: mvt. Imagery: jpeg (default), png or webp. Elevation: png (default) or webp",
    json_schema_extra={"enum": ["mvt", "jpeg", "jpg", "png", "webp"]},
)]
Render = Annotated[str | None, Query(
    description="Elevation collections: terrain-rgb (default), terrarium or hillshade",
    json_schema_extra={"enum": ["terrain-rgb", "terrarium", "hillshade"]},
)]
Item = Annotated[str | None, Query(
    description="Raster collections: the acquisition (item id) to draw; not with datetime",
)]
When = Annotated[str | None, Query(
    description="Raster collections: the latest acquisition at or before this instant, or the latest inside this "
                f"interval. {DATETIME_DESCRIPTION}",
)]
Layers = Annotated[str | None, Query(
    description="Comma-separated ids of the collections to draw (default: every vector collection of the base map)",
)]

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/tilesetmetadata",
]


def landing_links(base: str) -> list[dict[str, Any]]:
    """Links the landing page shows for tiles."""
    return [
        link(f"{base}/tileMatrixSets", metadata.REL + "tiling-schemes", JSON, "Tile matrix sets"),
        link(f"{base}/tiles", metadata.REL + "tilesets-vector", JSON, "Base map vector tilesets"),
    ]


def collection_links(collection: Collection, base: str) -> list[dict[str, Any]]:
    """Links from a collection to its tilesets."""
    # the relation names the tilesets' dataType: vector, coverage (the DEM) or map (imagery)
    rel = "tilesets-vector" if isinstance(collection, VectorCollection) else f"tilesets-{collection.data_type}"
    return [link(f"{base}/collections/{collection.id}/tiles", metadata.REL + rel, JSON, "Tilesets")]


def _collection(request: Request, collection_id: str) -> Collection:
    """The collection as the caller may see it (zooms capped by the edition), or the 404 of a missing one."""
    return visible_collection(request, collection_id)


def _vector_collections(request: Request) -> list[VectorCollection]:
    return visible_collections(request, VectorCollection)


def _properties(request: Request, collection: VectorCollection) -> tuple[str, ...]:
    """The fields a tile carries: ``tiles.properties`` (all when unset) among those the caller may see.

    Base-map tiles carry what a map draws and shows on click; the full record (owners and all) stays
    behind the Features API, which keeps tiles small and cacheable for everyone.
    """
    wanted = collection.tiles.properties
    id_field = collection.source.id_field
    return tuple(f for f in collection.field_names if wanted is None or f in wanted or f == id_field)


def _wants_tilejson(request: Request) -> bool:
    return output_format(request, ("json", "tilejson")) == "tilejson"


def _check_format(f: str | None) -> None:
    if f is not None and f != "mvt":
        raise NotAcceptable(f"Parameter 'f': '{f}' is not offered for vector tiles; use mvt.")


def _empty() -> Response:
    """The answer for a tile with nothing to draw."""
    return Response(status_code=204)


def _mvt(body: bytes) -> Response:
    if not body:
        return _empty()
    return Response(body, media_type=metadata.MVT)


# -- tile matrix sets -------------------------------------------------------------------------


@router.get("/tileMatrixSets", summary="Tile matrix sets offered")
@html_alternative("tilematrixsets.html")
async def tile_matrix_sets(request: Request):
    """WebMercatorQuad, WorldCRS84Quad and CGCS2000Quad (the Tianditu ``c`` grid, levels 1-18)."""
    return json_response(carry_key(request, metadata.tms_list(base_url(request))))


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="One tile matrix set")
@html_alternative("tilematrixset.html")
async def tile_matrix_set(request: Request, tileMatrixSetId: str):
    """The tile matrix set definition (OGC TMS 2.0 JSON)."""
    get_tms(tileMatrixSetId)
    return json_response(metadata.tms_document(tileMatrixSetId))


# -- collection tilesets ----------------------------------------------------------------------


@router.get("/collections/{collectionId}/tiles", summary="Tilesets of a collection")
@html_alternative("tilesets.html")
async def collection_tilesets(request: Request, collectionId: str):
    """One tileset per offered tile matrix set."""
    c = _collection(request, collectionId)
    base = base_url(request)
    kind = handler_for(request, c).data_type(c)
    title = c.title.en if language(request) == "en" else c.title.zh
    doc = metadata.tilesets_list(f"{base}/collections/{c.id}/tiles", base, kind, title)
    return json_response(carry_key(request, doc))


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}", summary="Tileset metadata of a collection")
@html_alternative("tileset.html")
async def collection_tileset(request: Request, collectionId: str, tileMatrixSetId: str, f: TilesetFormat = None):
    """OGC tileset metadata, or TileJSON 3.0 (``f=tilejson``) for WebMercatorQuad."""
    c = _collection(request, collectionId)
    tms = get_tms(tileMatrixSetId)
    return handler_for(request, c).tileset(request, c, tms)


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A tile of a collection",
    response_class=Response,
    responses={200: {"content": {metadata.MVT: {}}}, 204: {"description": "Nothing to draw in this tile"}},
)
async def collection_tile(
    request: Request, collectionId: str, tileMatrixSetId: str, tileMatrix: int, tileRow: int, tileCol: int,
    f: TileFormat = None, render: Render = None, item: Item = None, datetime: When = None,
):
    """One tile: MVT with a single layer named after the collection (raster collections: an image)."""
    c = _collection(request, collectionId)
    tms = get_tms(tileMatrixSetId)
    tile = check_tile(tms, tileMatrix, tileRow, tileCol)
    return await handler_for(request, c).tile(request, c, tms, tile)


class VectorTiles:
    """The tile handler of vector collections: one MVT layer named after the collection."""

    def data_type(self, collection: VectorCollection) -> str:
        """Vector collections make vector tilesets."""
        return "vector"

    def tileset(self, request: Request, collection: VectorCollection, tms: morecantile.TileMatrixSet) -> Response:
        """OGC tileset metadata, or TileJSON 3.0 (``f=tilejson``) for WebMercatorQuad."""
        url = f"{base_url(request)}/collections/{collection.id}/tiles/{tms.id}"
        return _tileset_response(request, [collection], tms, url, collection, request.query_params.get("f"))

    async def tile(
        self, request: Request, collection: VectorCollection, tms: morecantile.TileMatrixSet, tile: morecantile.Tile
    ) -> Response:
        """The MVT of one tile (204 when nothing is drawn), through the response cache."""
        _check_format(request.query_params.get("f"))
        restriction = restriction_for(request, collection)

        async def produce() -> Response:
            if not visible(collection, tms, tile.z):
                return _empty()
            req = tile_request(collection, tms, tile, _properties(request, collection))
            return _mvt(await request.app.state.source.tile(collection, req, restriction=restriction))

        parts = (collection.id, tms.id, tile.z, tile.y, tile.x, "mvt")
        return await cached(request, "tile", parts, produce, collections=[collection], query=False)


TILE_HANDLERS = {"vector": VectorTiles()}


# -- dataset tilesets (the base map) ----------------------------------------------------------


@router.get("/tiles", summary="Base map tilesets")
@html_alternative("tilesets.html")
async def dataset_tilesets(request: Request):
    """The base map: every vector collection as a layer, one tileset per tile matrix set."""
    base = base_url(request)
    doc = metadata.tilesets_list(f"{base}/tiles", base, "vector", "OneMap base map 一张图底图")
    return json_response(carry_key(request, doc))


@router.get("/tiles/{tileMatrixSetId}", summary="Base map tileset metadata")
@html_alternative("tileset.html")
async def dataset_tileset(request: Request, tileMatrixSetId: str, f: TilesetFormat = None):
    """OGC tileset metadata with one layer per vector collection, or TileJSON 3.0 for WebMercatorQuad."""
    tms = get_tms(tileMatrixSetId)
    base = base_url(request)
    return _tileset_response(request, _vector_collections(request), tms, f"{base}/tiles/{tms.id}", None, f)


@router.get(
    "/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A base map tile",
    response_class=Response,
    responses={200: {"content": {metadata.MVT: {}}}, 204: {"description": "Nothing to draw in this tile"}},
)
async def dataset_tile(
    request: Request, tileMatrixSetId: str, tileMatrix: int, tileRow: int, tileCol: int,
    f: Annotated[str | None, format_param("mvt")] = None, collections: Layers = None,
):
    """One MVT with a layer per vector collection drawn at this level (one read); ``collections`` picks some."""
    tms = get_tms(tileMatrixSetId)
    tile = check_tile(tms, tileMatrix, tileRow, tileCol)
    _check_format(f)
    layers = _vector_collections(request)
    if collections is not None:
        layers = _selected(layers, collections)

    async def produce() -> Response:
        drawn = [(c, tile_request(c, tms, tile, _properties(request, c))) for c in layers if visible(c, tms, tile.z)]
        if not drawn:
            return _empty()
        return _mvt(await request.app.state.source.tiles(drawn, restrictions=restrictions(request)))

    parts = (tms.id, tileMatrix, tileRow, tileCol, "mvt", *([c.id for c in layers] if collections is not None else ()))
    return await cached(request, "basemap-tile", parts, produce, collections=layers, query=False)


def _selected(layers: list[VectorCollection], raw: str) -> list[VectorCollection]:
    """The base map layers named in ``collections``, in base map order; a name that is not one is a 400."""
    wanted = {name.strip() for name in raw.split(",") if name.strip()}
    if not wanted:
        raise InvalidParameter("Parameter 'collections' names no collection.")
    unknown = sorted(wanted - {c.id for c in layers})
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise InvalidParameter(f"Parameter 'collections': {names} is not a layer of the base map.")
    return [c for c in layers if c.id in wanted]


def _tileset_response(
    request: Request, collections: list[VectorCollection], tms: morecantile.TileMatrixSet, url: str,
    single: VectorCollection | None, f: str | None,
) -> Response:
    base = base_url(request)
    lang = language(request)
    if single is not None:
        title = single.title.en if lang == "en" else single.title.zh
        description = single.description.en if lang == "en" else single.description.zh
    else:
        title, description = "OneMap base map 一张图底图", "Every vector collection as a layer."
    if _wants_tilejson(request):
        if tms.id != "WebMercatorQuad":
            raise NotAcceptable(f"TileJSON is offered for WebMercatorQuad only, not for {tms.id}.")
        doc = metadata.tilejson(collections, url, title, description, lang)
        return json_response(carry_key(request, doc), media_type=metadata.TILEJSON)
    doc = metadata.tileset(collections, id_of(tms), url, base, title, lang)
    if single is not None:
        doc["links"].append(link(f"{base}/collections/{single.id}", metadata.REL + "geodata", JSON, "The collection"))
    return json_response(carry_key(request, doc))


__all__ = ["router", "CONFORMANCE", "TILE_HANDLERS", "landing_links", "collection_links", "tms_ids"]
