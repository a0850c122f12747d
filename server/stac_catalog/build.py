"""STAC objects (pystac) for the raster collections of the catalog.

One STAC Collection per raster collection, one Item per registered asset (item id = asset id), or
for a mosaic one Item per sheet (``<acquisition>_<sheet>``, property ``onemap:acquisition``), the
collection summarizing its acquisitions and linking a search for each one's sheets.
Items carry the projection extension (native CRS, shape, transform, bbox), the raster extension
(data type, nodata, resolution, unit, statistics) and, for imagery, the eo extension (bands with
their common names). Links point at this server: the COG by asset id, the map tiles of the item
(web-map-links ``xyz``), the OGC tilesets and, for a DEM, the Cesium terrain and elevation service.
``base`` is the server's public root URL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics

from server.assets import asset_location, file_assets
from server.catalog import Catalog, RasterAsset, RasterCollection
from server.params import parse_instant
from server.policy.rasters import SLACK, ground_resolution_m
from server.stac_catalog.describe import CogInfo, describe

WEB_MAP_LINKS = "https://stac-extensions.github.io/web-map-links/v1.2.0/schema.json"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
PROVIDER = pystac.Provider(
    name="County Bureau of Natural Resources and Planning (sample)",
    roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR, pystac.ProviderRole.HOST],
)
_RGB = (("red", "red", 0.66), ("green", "green", 0.56), ("blue", "blue", 0.49))


@dataclass(frozen=True)
class Served:
    """The grid a caller is served from: ground resolution (m), shape (rows, columns), affine transform."""

    gsd: float
    shape: tuple[int, int]
    transform: tuple[float, ...]


def served_grid(info: CogInfo, ground_m: float, cap_m: float | None) -> Served | None:
    """The file's grid, or, under a resolution cap finer than the file, its finest overview no finer than
    the cap (as tiles, terrain and elevation read it); ``None`` when no overview is coarse enough."""
    factor = 1
    if cap_m is not None and ground_m < cap_m * SLACK:
        factor = next((f for f in info.overviews if ground_m * f >= cap_m * SLACK), 0)
        if not factor:
            return None
    rows, cols = info.shape
    out_rows, out_cols = -(-rows // factor), -(-cols // factor)
    sx, sy = cols / out_cols, rows / out_rows
    a, b, c, d, e, f = info.transform[:6]
    return Served(round(ground_m * sx, 2), (out_rows, out_cols), (a * sx, b * sy, c, d * sx, e * sy, f))


def raster_collections(catalog: Catalog) -> list[RasterCollection]:
    """The catalog's raster collections, in catalog order."""
    return catalog.of_kind(RasterCollection)


def _tile_link(base: str, c: RasterCollection, asset: RasterAsset | None) -> pystac.Link:
    query = "" if c.raster.kind == "imagery" else "?render=terrain-rgb"
    if asset is not None:
        query += ("&" if query else "?") + f"item={asset.id}"
    kind = "Imagery (JPEG)" if c.raster.kind == "imagery" else "Terrain-RGB (PNG)"
    href = f"{base}/collections/{c.id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}{query}"
    return pystac.Link("xyz", href, media_type="image/jpeg" if c.raster.kind == "imagery" else "image/png",
                       title=f"{kind} map tiles, WebMercatorQuad")


def _service_links(base: str, c: RasterCollection) -> list[pystac.Link]:
    url = f"{base}/collections/{c.id}"
    links = [
        pystac.Link("http://www.opengis.net/def/rel/ogc/1.0/tilesets-map", f"{url}/tiles",
                    media_type="application/json", title="OGC API Tiles tilesets (every tile matrix set)"),
        pystac.Link("alternate", url, media_type="application/json", title="OGC API collection"),
    ]
    if c.raster.kind == "dem":
        links.append(pystac.Link("alternate", f"{url}/terrain/layer.json", media_type="application/json",
                                 title="Cesium quantized-mesh terrain (layer.json)"))
    return links


def _raster_bands(c: RasterCollection, info: CogInfo, served: Served) -> list[RasterBand]:
    bands = []
    for i in range(info.count):
        lo, hi, mean = info.stats[i]
        bands.append(RasterBand.create(
            data_type=DataType(info.dtype), nodata=info.nodata, spatial_resolution=served.gsd,
            unit="m" if c.raster.kind == "dem" else None,
            statistics=Statistics.create(minimum=lo, maximum=hi, mean=mean),
        ))
    return bands


def _data_asset(base: str, c: RasterCollection, asset: RasterAsset, info: CogInfo) -> pystac.Asset:
    roles = ["data", "visual"] if c.raster.kind == "imagery" else ["data"]
    title = f"{c.title.en} {asset.datetime[:10]} (Cloud-Optimized GeoTIFF)"
    return pystac.Asset(f"{base}/collections/{c.id}/assets/{asset.id}", title=title, media_type=COG, roles=roles)


def build_item(base: str, c: RasterCollection, asset: RasterAsset, info: CogInfo, served: Served) -> pystac.Item:
    """The STAC Item of one registered asset, described at the grid it is ``served`` from."""
    item = pystac.Item(
        id=asset.id, geometry=info.footprint, bbox=list(info.bbox), datetime=parse_instant(asset.datetime),
        properties={"title": f"{c.title.zh} {asset.datetime[:10]}", "gsd": served.gsd},
        collection=c.id,
    )
    data = _data_asset(base, c, asset, info)
    item.add_asset("data", data)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = f"EPSG:{info.epsg}" if info.epsg else None
    if info.epsg is None:
        proj.wkt2 = info.crs_wkt
    proj.shape = list(served.shape)
    proj.transform = list(served.transform)
    proj.bbox = list(info.native_bbox)
    RasterExtension.ext(data, add_if_missing=True).bands = _raster_bands(c, info, served)
    if c.raster.kind == "imagery":
        EOExtension.ext(data, add_if_missing=True).bands = [
            Band.create(name=name, common_name=common, center_wavelength=wl) for name, common, wl in _RGB
        ]
        item.properties["platform"] = "aerial"
    item.stac_extensions.append(WEB_MAP_LINKS)
    acquisition = _acquisition(c, asset)
    if acquisition is not None:
        item.properties["onemap:acquisition"] = acquisition.id
    # a sheet links its acquisition's tiles (a sheet is no acquisition of its own)
    item.add_link(_tile_link(base, c, acquisition if c.raster.sheets is not None else asset))
    return item


def _acquisition(c: RasterCollection, asset: RasterAsset) -> RasterAsset | None:
    """The acquisition a mosaic sheet belongs to (None outside mosaics, or for an undeclared one)."""
    if c.raster.sheets is None:
        return None
    return next((a for a in c.raster.assets if asset.id.startswith(f"{a.id}_")), None)


def _acquisition_links(base: str, c: RasterCollection, items: list[pystac.Item]) -> list[pystac.Link]:
    """For a mosaic: a search for the sheets of each acquisition (a collection-level view of it)."""
    shown = {i.properties.get("onemap:acquisition") for i in items}
    return [pystac.Link("related", f"{base}/stac/search?collections={c.id}&datetime={a.datetime}",
                        media_type="application/geo+json", title=f"Sheets of acquisition {a.id} ({a.datetime})")
            for a in c.raster.assets if c.raster.sheets is not None and a.id in shown]


def _gsds(c: RasterCollection, items: list[pystac.Item]) -> list[float]:
    """The ground resolutions the items are served at (the declared one when there is no item)."""
    return sorted({i.properties["gsd"] for i in items}) or [c.raster.resolution_m]


def _acquisition_summary(items: list[pystac.Item]) -> dict[str, list[str]]:
    found = sorted({str(a) for i in items if (a := i.properties.get("onemap:acquisition"))})
    return {"onemap:acquisition": found} if found else {}


def build_collection(base: str, c: RasterCollection, items: list[pystac.Item]) -> pystac.Collection:
    """The STAC Collection of a raster collection, with its items added."""
    interval = c.extent.temporal.interval if c.extent.temporal else (None, None)
    extent = pystac.Extent(
        pystac.SpatialExtent([list(c.extent.spatial.bbox)]),
        pystac.TemporalExtent([[parse_instant(v) if v else None for v in interval]]),
    )
    coll = pystac.Collection(
        id=c.id, title=f"{c.title.zh} {c.title.en}", description=f"{c.description.zh}\n\n{c.description.en}",
        extent=extent, license="other", keywords=list(c.keywords), providers=[PROVIDER],
        summaries=pystac.Summaries({"gsd": _gsds(c, items), **_acquisition_summary(items)}),
        stac_extensions=[WEB_MAP_LINKS],
    )
    coll.add_link(_tile_link(base, c, None))
    for link in _service_links(base, c) + _acquisition_links(base, c, items):
        coll.add_link(link)
    for item in sorted(items, key=lambda i: (i.datetime or dt.datetime.min, i.id)):
        coll.add_item(item)
    return coll


def served_item(base: str, c: RasterCollection, asset: RasterAsset, data_dir: Path,
                cap_m: float | None) -> pystac.Item | None:
    """The item of an asset as served under the resolution cap ``cap_m`` (reads the COG's header);
    ``None`` when no grid of the file is coarse enough for the cap (it is not served, so not listed)."""
    path = asset_location(data_dir, asset)
    info = describe(path)
    served = served_grid(info, ground_resolution_m(path), cap_m)
    return build_item(base, c, asset, info, served) if served is not None else None


def build_catalog(catalog: Catalog, data_dir: Path, base: str) -> pystac.Catalog:
    """The root catalog with every raster collection and its items as the files hold them."""
    root = pystac.Catalog(
        id="onemap", title="OneMap 自然资源一张图 data catalog",
        description="Imagery and elevation holdings of the natural-resources one map, as COGs served by OneMap.",
    )
    for c in raster_collections(catalog):
        items = [i for a in file_assets(c, data_dir) if (i := served_item(base, c, a, data_dir, None)) is not None]
        root.add_child(build_collection(base, c, items))
    return root
