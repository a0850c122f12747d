"""Raster map tiles of imagery and DEM collections, in every offered tile matrix set.

``/collections/{id}/tiles/{tms}/{z}/{row}/{col}`` (routed by ``server.tiles.routes`` to ``RasterTiles``,
the tile handler of raster collections) answers:

* imagery: ``f=jpeg`` (default), ``png`` or ``webp`` (PNG and WebP are transparent outside the data);
* DEM: ``render=terrain-rgb`` (default, Mapbox Terrain-RGB, 0.1 m steps), ``terrarium`` (Mapzen)
  or ``hillshade``; terrain encodings are lossless only (``f=png`` default, or ``webp``), and
  read with nearest-neighbour so decoded heights are the DEM's own values;
* ``item=<asset id>`` picks an acquisition; ``datetime`` (instant: the latest acquisition at or
  before it; interval: the latest inside it) picks by time; neither: the latest. Over a mosaic
  (``raster.sheets``: many COG sheets per acquisition, see ``mosaic.py``) the switch is per area:
  each pixel comes from the latest sheet at or before the time (``OneMap-Item`` lists the
  acquisitions a tile shows, newest first).
* a tile that does not touch the data: **204 No Content** (as for vector tiles); a level outside
  the collection's zoom range (``raster.minzoom``-``maxzoom`` as WebMercatorQuad levels, matched
  across grids by ground resolution): 400.

Reading and encoding run in the raster pool on per-thread reused handles (``store.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import morecantile
from fastapi import Request
from fastapi.responses import Response
from pyproj import Transformer
from rasterio.transform import from_bounds
from rio_tiler.models import ImageData
from titiler.core.algorithm.dem import HillShade, TerrainRGB, Terrarium

from server.assets import asset_location, sheet_index
from server.cache import cached
from server.catalog import RasterCollection
from server.errors import InvalidParameter
from server.extents import as_bbox
from server.policy import restriction_for
from server.policy.model import Restriction, checked
from server.raster import mosaic
from server.raster.assets import SheetQuery, readable, select_asset, select_sheets
from server.raster.crs import fast_equivalent
from server.raster.store import Opened, RasterStore, get_store
from server.settings import Settings
from server.sheets import SheetIndex
from server.tiling.matrix_sets import tms_uri
from server.tiling.zooms import wmq_level
from server.web import base_url, carry_key, json_response

MEDIA = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_ALIASES = {"jpg": "jpeg"}
RENDERS = ("terrain-rgb", "terrarium", "hillshade")
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
TEMPLATE = "{tileMatrix}/{tileRow}/{tileCol}"
_TERRAIN = {"terrain-rgb": TerrainRGB(nodata_height=0.0), "terrarium": Terrarium(nodata_height=0.0)}
_HILLSHADE = HillShade(azimuth=315, angle_altitude=45.0, buffer=3)
# encoder options: PNG at zlib level 1 (a fraction of the CPU of the default level 6 for ~10-20 %
# more bytes), JPEG at GDAL's default quality 75, WebP lossless for terrain and quality 80 otherwise
_PNG: dict[str, Any] = {"zlevel": 1}


@dataclass(frozen=True)
class TileQuery:
    """A validated raster tile request."""

    fmt: str
    render: str | None
    item: str | None
    datetime: str | None


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidParameter(f"Parameter '{name}' is given {len(values)} times; give it once.")
    return values[0] if values else None


def parse_query(request: Request, collection: RasterCollection) -> TileQuery:
    """Read ``f``, ``render``, ``item`` and ``datetime``; 400 naming any bad value."""
    is_dem = collection.raster.kind == "dem"
    render = _one(request, "render")
    if render is not None and not is_dem:
        raise InvalidParameter(f"Parameter 'render' applies to elevation collections only, not to '{collection.id}'.")
    if is_dem:
        render = render or "terrain-rgb"
        if render not in RENDERS:
            raise InvalidParameter(f"Parameter 'render': '{render}' is not one of {', '.join(RENDERS)}.")
    fmt = _one(request, "f")
    fmt = _ALIASES.get(fmt, fmt) if fmt else ("png" if is_dem else "jpeg")
    if fmt not in MEDIA:
        raise InvalidParameter(f"Parameter 'f': '{fmt}' is not a tile format here; use jpeg, png or webp.")
    if fmt == "jpeg" and render in _TERRAIN:
        raise InvalidParameter(f"Parameter 'f': '{render}' tiles must be lossless; use png or webp.")
    return TileQuery(fmt, render, _one(request, "item"), _one(request, "datetime"))


def zoom_range(collection: RasterCollection, tms: morecantile.TileMatrixSet) -> tuple[int, int] | None:
    """First and last matrix of ``tms`` inside the collection's zoom range, or None."""
    spec = collection.raster
    levels = [z for z in range(tms.minzoom, tms.maxzoom + 1) if spec.minzoom <= wmq_level(tms, z) <= spec.maxzoom]
    return (levels[0], levels[-1]) if levels else None


def check_zoom(collection: RasterCollection, tms: morecantile.TileMatrixSet, z: int) -> None:
    """400 when matrix ``z`` is outside the collection's zoom range in this grid."""
    span = zoom_range(collection, tms)
    if span is None or not span[0] <= z <= span[1]:
        offered = f"{span[0]}-{span[1]}" if span else "none"
        raise InvalidParameter(f"Tile matrix '{z}' is outside the levels of '{collection.id}' in {tms.id} ({offered}).")


def _touches(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@lru_cache(maxsize=64)
def _transformer(src_wkt: str, dst_wkt: str) -> Transformer:
    return Transformer.from_crs(src_wkt, dst_wkt, always_xy=True)


def overview_for(opened: Opened, bounds: tuple[float, ...], crs, size: int) -> int | None:
    """For a warped read, the coarsest overview still finer than the output pixels (None: full size).

    GDAL's warper reads the full-size image unless told otherwise; a plain window read (same CRS)
    picks the overview itself.
    """
    ds = opened.reader.dataset
    if ds is None or not opened.overviews:
        return None
    left, bottom, right, top = bounds
    xs, ys = _transformer(crs.to_wkt(), ds.crs.to_wkt()).transform(
        [left, right, left, right, (left + right) / 2], [bottom, bottom, top, top, (bottom + top) / 2]
    )
    needed = min(max(xs) - min(xs), max(ys) - min(ys)) / size
    level = None
    for i, factor in enumerate(opened.overviews):
        if abs(ds.transform.a) * factor <= needed:
            level = i
    return level


def _grid(bounds: tuple[float, ...], width: int, height: int, buffer: int) -> dict[str, Any]:
    """Warp straight onto the output grid (plus ``buffer`` pixels around), not onto an intermediate
    grid at the source's resolution that is then resampled: one warp instead of two."""
    dx, dy = (bounds[2] - bounds[0]) / width, (bounds[3] - bounds[1]) / height
    left, bottom = bounds[0] - buffer * dx, bounds[1] - buffer * dy
    right, top = bounds[2] + buffer * dx, bounds[3] + buffer * dy
    w, h = width + 2 * buffer, height + 2 * buffer
    return {"transform": from_bounds(left, bottom, right, top, w, h), "width": w, "height": h}


def _read(store: RasterStore, path, tms: morecantile.TileMatrixSet, tile: morecantile.Tile, render: str | None,
          floor: int | None = None, sheet: bool = False):
    """The tile's pixels (or None outside the data), read with the thread's reused handle; ``floor``:
    read from that overview level (a resolution cap), not from the full-size image.

    A mosaic ``sheet`` is always warped straight onto the tile's grid from its overview for the level:
    the tile of one merged file is read the same way, so a tile over several sheets has the same
    pixels (a plain window read past a file's edge goes through an overview-less VRT instead, which
    picks other pixels near the edge than inside the file)."""
    opened = store.open(path, floor)
    if not _touches(tuple(tms.bounds(tile)), opened.bounds):
        return None
    matrix = tms.matrix(tile.z)
    crs = fast_equivalent(tms.rasterio_crs)
    bounds = as_bbox(tms.xy_bounds(tile))
    options: dict[str, Any] = {}
    if render == "hillshade":
        options = {"buffer": _HILLSHADE.buffer, "reproject_method": "bilinear", "resampling_method": "bilinear"}
    if opened.reader.crs != crs or sheet:
        options["vrt_options"] = _grid(bounds, matrix.tileWidth, matrix.tileHeight, options.get("buffer", 0))
        level = overview_for(opened, bounds, crs, matrix.tileWidth) if floor is None else None
        if level is not None:
            opened = store.open(path, level)
    return opened.reader.part(
        bounds, dst_crs=crs, bounds_crs=crs,
        width=matrix.tileWidth, height=matrix.tileHeight, max_size=None, **options,
    )


def encode(img: ImageData, fmt: str, render: str | None) -> bytes:
    """Apply the DEM render (if any) and encode the image."""
    if render in _TERRAIN:
        img = _TERRAIN[render](img)
        extra: dict[str, Any] = {"lossless": True} if fmt == "webp" else _PNG
        return img.render(add_mask=False, img_format=fmt.upper(), **extra)
    if render == "hillshade":
        img = _HILLSHADE(img)
    extra = _PNG if fmt == "png" else {"quality": 80} if fmt == "webp" else {}
    return img.render(add_mask=fmt != "jpeg", img_format=fmt.upper(), **extra)


def _read_and_encode(store, path, tms, tile, query: TileQuery) -> bytes | None:
    img = _read(store, path, tms, tile, query.render)
    if img is None or not img.mask.any():
        return None
    return encode(img, query.fmt, query.render)


def _mosaic_read_and_encode(store: RasterStore, data_dir: Path, index: SheetIndex, which: SheetQuery,
                            tms: morecantile.TileMatrixSet, tile: morecantile.Tile, query: TileQuery,
                            cap_m: float | None) -> tuple[bytes | None, list[str]]:
    sheets = index.covering(tuple(tms.bounds(tile)), start=which.start, end=which.end, acquisition=which.acquisition)
    img, shown = mosaic.read_tile(
        store, data_dir, sheets, tms, tile,
        lambda path, level: _read(store, path, tms, tile, query.render, level, sheet=True), cap_m,
    )
    if img is None or not img.mask.any():
        return None, shown
    return encode(img, query.fmt, query.render), shown


async def _mosaic_response(request: Request, collection: RasterCollection, index: SheetIndex,
                           tms: morecantile.TileMatrixSet, tile: morecantile.Tile, query: TileQuery,
                           settings: Settings, cap_m: float | None) -> Response:
    which = select_sheets(collection, index, query.item, query.datetime)
    store = get_store(request.app)
    body, shown = await store.run(_mosaic_read_and_encode, store, settings.data_dir, index, which, tms, tile,
                                  query, cap_m)
    if body is None:
        return Response(status_code=204)
    return Response(body, media_type=MEDIA[query.fmt], headers={"OneMap-Item": ",".join(shown)})


async def tile_response(
    request: Request, collection: RasterCollection, tms: morecantile.TileMatrixSet, tile: morecantile.Tile,
    settings: Settings, *, restriction: Restriction,
) -> Response:
    """One raster tile of ``collection`` (the tile is already checked against the grid), no finer
    than the caller's ``restriction`` allows."""
    collection = readable(collection, restriction=restriction)  # zooms capped by the resolution cap
    query = parse_query(request, collection)
    check_zoom(collection, tms, tile.z)
    index = sheet_index(collection, settings.data_dir)
    if index is not None:
        cap = checked(restriction, collection).max_resolution_m
        return await _mosaic_response(request, collection, index, tms, tile, query, settings, cap)
    asset = select_asset(collection, query.item, query.datetime)
    path = asset_location(settings.data_dir, asset)
    store = get_store(request.app)
    body = await store.run(_read_and_encode, store, path, tms, tile, query)
    if body is None:
        return Response(status_code=204)
    # caching headers come from the response cache (per edition and caller)
    return Response(body, media_type=MEDIA[query.fmt], headers={"OneMap-Item": asset.id})


def _limits(collection: RasterCollection, tms: morecantile.TileMatrixSet) -> list[dict[str, Any]]:
    span = zoom_range(collection, tms)
    if span is None:
        return []
    west, south, east, north = collection.extent.spatial.bbox
    out = []
    for z in range(span[0], span[1] + 1):
        first, last = tms.tile(west, north, z, truncate=True), tms.tile(east, south, z, truncate=True)
        out.append({"tileMatrix": tms.matrix(z).id, "minTileRow": first.y, "maxTileRow": last.y,
                    "minTileCol": first.x, "maxTileCol": last.x})
    return out


def _tile_links(collection: RasterCollection, url: str) -> list[dict[str, Any]]:
    if collection.raster.kind == "imagery":
        kinds = [("jpeg", "", "JPEG"), ("png", "?f=png", "PNG, transparent outside the data"),
                 ("webp", "?f=webp", "WebP")]
    else:
        kinds = [("png", "?render=terrain-rgb", "Terrain-RGB (Mapbox), PNG"),
                 ("png", "?render=terrarium", "Terrarium (Mapzen), PNG"),
                 ("png", "?render=hillshade", "Hillshade, PNG")]
    return [{"href": f"{url}/{TEMPLATE}{q}", "rel": "item", "type": MEDIA[f], "title": t, "templated": True}
            for f, q, t in kinds]


def tileset_metadata(collection: RasterCollection, tms: morecantile.TileMatrixSet, base_url: str) -> dict:
    """OGC tileset metadata for a raster collection in one tile matrix set."""
    url = f"{base_url}/collections/{collection.id}/tiles/{tms.id}"
    west, south, east, north = collection.extent.spatial.bbox
    doc: dict[str, Any] = {
        "title": f"{collection.title.zh} {collection.title.en} ({tms.id})",
        "dataType": "coverage" if collection.raster.kind == "dem" else "map",
        "crs": str(tms.crs.root) if hasattr(tms.crs, "root") else str(tms.crs),
        "links": [
            {"href": url, "rel": "self", "type": "application/json", "title": "This tileset metadata"},
            {"href": f"{base_url}/tileMatrixSets/{tms.id}", "rel": REL + "tiling-scheme",
             "type": "application/json", "title": f"The {tms.id} tile matrix set"},
            {"href": f"{base_url}/collections/{collection.id}", "rel": REL + "geodata",
             "type": "application/json", "title": "The collection"},
            *_tile_links(collection, url),
        ],
        "tileMatrixSetLimits": _limits(collection, tms),
        "boundingBox": {"lowerLeft": [west, south], "upperRight": [east, north], "crs": CRS84},
    }
    doc["tileMatrixSetURI"] = tms_uri(tms, base_url)
    return doc


class RasterTiles:
    """The tile handler of raster collections: imagery (map tiles) and DEM (coverage tiles)."""

    def data_type(self, collection: RasterCollection) -> str:
        """A DEM makes coverage tilesets, imagery map tilesets."""
        return "coverage" if collection.raster.kind == "dem" else "map"

    def tileset(self, request: Request, collection: RasterCollection, tms: morecantile.TileMatrixSet) -> Response:
        """OGC tileset metadata of the collection in one grid."""
        return json_response(carry_key(request, tileset_metadata(collection, tms, base_url(request))))

    async def tile(
        self, request: Request, collection: RasterCollection, tms: morecantile.TileMatrixSet, tile: morecantile.Tile
    ) -> Response:
        """One image tile through the response cache, keyed by the options that change its bytes."""
        settings = request.app.state.settings
        restriction = restriction_for(request, collection)
        options = tuple(tuple(request.query_params.getlist(k)) for k in ("f", "render", "item", "datetime"))
        return await cached(
            request, "raster-tile", (collection.id, tms.id, tile.z, tile.y, tile.x, options),
            lambda: tile_response(request, collection, tms, tile, settings, restriction=restriction),
            collections=[collection], query=False,
        )
