"""GetTile: check a tile request against the layer, then draw it from the same tiles as OGC API Tiles.

Imagery and DEM tiles are the raster collections' own tiles (the tile handler of their kind, asked
as ``/collections/{id}/tiles/{set}/{z}/{row}/{col}?f=...`` would ask it, so they share its cache
entries); vector base map tiles are the base map's MVT painted by ``render.render_png``.
"""

from __future__ import annotations

import morecantile
from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.cache import cached
from server.catalog import VectorCollection
from server.errors import InvalidParameter, NotFound
from server.policy import restrictions
from server.tiling.handlers import handler_for
from server.tiling.zooms import tile_request, visible, wmq_level
from server.wmts.layers import EXTENSIONS, LEVELS, Layer
from server.wmts.ows import OwsError, invalid
from server.wmts.paint import base_map
from server.wmts.render import render_png


def media_type(layer: Layer, requested: str) -> str:
    """The media type of a ``FORMAT`` (``tiles`` is Tianditu's word for the layer's first format)."""
    if requested == "tiles":
        return layer.formats[0]
    media = EXTENSIONS.get(requested, requested)
    if media not in layer.formats:
        raise invalid("FORMAT", f"Format '{requested}' is not offered by layer {layer.name}; "
                                f"offered: {', '.join(layer.formats)}.")
    return media


def _integer(name: str, value: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise invalid(name, f"Parameter {name}: '{value}' is not a non-negative integer.")
    return int(value)


def checked_tile(layer: Layer, matrix: str, row: str, col: str) -> morecantile.Tile:
    """The tile at (matrix, row, col) if the layer has it; ``TileOutOfRange`` or an invalid value otherwise."""
    if matrix not in {str(z) for z in LEVELS}:
        raise invalid("TILEMATRIX", f"Tile matrix '{matrix}' is not in tile matrix set {layer.matrix_set} "
                                    f"(levels {LEVELS[0]}-{LEVELS[-1]}).")
    z, y, x = int(matrix), _integer("TILEROW", row), _integer("TILECOL", col)
    if z not in layer.levels():
        raise OwsError("TileOutOfRange", "TILEMATRIX", f"Layer {layer.name} has no tiles at level {z}.")
    min_row, max_row, min_col, max_col = layer.limits(z)
    if not min_row <= y <= max_row:
        raise OwsError("TileOutOfRange", "TILEROW", f"Tile row {y} is outside {min_row}-{max_row} at level {z}.")
    if not min_col <= x <= max_col:
        raise OwsError("TileOutOfRange", "TILECOL", f"Tile column {x} is outside {min_col}-{max_col} at level {z}.")
    return morecantile.Tile(x, y, z)


def _as_collection_tile(request: Request, collection_id: str, tms_id: str, tile: morecantile.Tile,
                        query: str) -> Request:
    """The request as the collection tile route would see it (same caller, policy and headers)."""
    path = f"/collections/{collection_id}/tiles/{tms_id}/{tile.z}/{tile.y}/{tile.x}"
    scope = dict(request.scope, path=request.scope.get("root_path", "") + path, raw_path=path.encode(),
                 query_string=query.encode(), route=None,
                 path_params={"collectionId": collection_id, "tileMatrixSetId": tms_id, "tileMatrix": str(tile.z),
                              "tileRow": str(tile.y), "tileCol": str(tile.x)})
    return Request(scope, request.receive)


async def raster_tile(request: Request, layer: Layer, tile: morecantile.Tile, media: str) -> Response:
    """An imagery tile (JPEG or PNG) or a DEM hillshade (PNG) of the layer's collection."""
    collection = layer.collections[0]
    tms = layer.tms
    query = "f=jpeg" if media == "image/jpeg" else "f=png"
    if layer.theme == "ter":
        query = "render=hillshade&f=png"
    inner = _as_collection_tile(request, collection.id, str(tms.id), tile, query)
    try:
        return await handler_for(request, collection).tile(inner, collection, tms, tile)
    except InvalidParameter as e:
        raise OwsError("TileOutOfRange", "TILEMATRIX", e.description) from None
    except NotFound as e:
        raise invalid("LAYER", e.description) from None


def _properties(collection: VectorCollection) -> tuple[str, ...]:
    wanted = collection.tiles.properties
    return tuple(f for f in collection.field_names if wanted is None or f in wanted or f == collection.source.id_field)


async def vector_tile(request: Request, layer: Layer, tile: morecantile.Tile) -> Response:
    """A vector base map tile as PNG (204 when nothing is drawn), through the response cache."""
    tms = layer.tms
    vectors = [c for c in layer.collections if isinstance(c, VectorCollection)]
    style = base_map(request.app.state.settings.styles_dir)

    async def produce() -> Response:
        drawn = [(c, tile_request(c, tms, tile, _properties(c))) for c in vectors if visible(c, tms, tile.z)]
        mvt = await request.app.state.source.tiles(drawn, restrictions=restrictions(request)) if drawn else b""
        # a 256 px tile at level N has the scale of MapLibre's 512 px zoom N-1
        png = await run_in_threadpool(render_png, mvt, style, wmq_level(tms, tile.z) - 1) if mvt else None
        return Response(png, media_type="image/png") if png else Response(status_code=204)

    parts = (layer.name, tile.z, tile.y, tile.x, "png")
    return await cached(request, "wmts-vector", parts, produce, collections=vectors, query=False)
