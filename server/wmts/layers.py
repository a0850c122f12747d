"""The WMTS layers in Tianditu's pattern, as the caller may see them.

``img`` is the imagery collection, ``ter`` the DEM drawn as a hillshade, ``vec`` the vector base
map (the collections ``styles/basemap.json`` draws) rendered to PNG. Each comes in the tile matrix
sets ``c`` (CGCS2000Quad: EPSG:4490, levels 1-18) and ``w`` (WebMercatorQuad, levels 1-18), named
``{theme}_{set}``. A layer whose collections the caller may not see is absent, exactly like an
unknown one.
"""

from __future__ import annotations

from dataclasses import dataclass

import morecantile
from fastapi import Request

from server.catalog import Collection, RasterCollection, VectorCollection
from server.extents import union_bbox
from server.policy import visible_collections
from server.tiling.matrix_sets import get_tms
from server.tiling.zooms import visible, wmq_level
from server.wmts.paint import base_map

MATRIX_SETS = {"c": "CGCS2000Quad", "w": "WebMercatorQuad"}
LEVELS = range(1, 19)  # Tianditu's levels, in both sets
THEMES = ("img", "ter", "vec")
JPEG, PNG = "image/jpeg", "image/png"
EXTENSIONS = {"jpg": JPEG, "jpeg": JPEG, "png": PNG}
TITLES = {
    "img": ("影像底图", "Imagery"),
    "ter": ("地形晕渲", "Terrain (hillshade)"),
    "vec": ("矢量底图", "Vector base map"),
}
SET_TITLES = {"c": "经纬度投影 CGCS2000 (EPSG:4490)", "w": "球面墨卡托投影 Web Mercator (EPSG:3857)"}


@dataclass(frozen=True)
class Layer:
    """One WMTS layer for one caller: theme, tile matrix set and the collections it draws."""

    theme: str
    matrix_set: str
    collections: tuple[Collection, ...]

    @property
    def name(self) -> str:
        """The layer identifier, e.g. ``img_c``."""
        return f"{self.theme}_{self.matrix_set}"

    @property
    def formats(self) -> tuple[str, ...]:
        """Media types offered; the first is what Tianditu's ``FORMAT=tiles`` means."""
        return (JPEG, PNG) if self.theme == "img" else (PNG,)

    @property
    def tms(self) -> morecantile.TileMatrixSet:
        """The tile matrix set of the layer."""
        return get_tms(MATRIX_SETS[self.matrix_set])

    def levels(self) -> list[int]:
        """Tianditu levels at which the layer has tiles."""
        tms = self.tms
        if self.theme == "vec":
            vectors = [c for c in self.collections if isinstance(c, VectorCollection)]
            return [z for z in LEVELS if any(visible(c, tms, z) for c in vectors)]
        spec = self.collections[0].raster if isinstance(self.collections[0], RasterCollection) else None
        return [z for z in LEVELS if spec is not None and spec.minzoom <= wmq_level(tms, z) <= spec.maxzoom]

    def bbox(self) -> tuple[float, float, float, float]:
        """CRS84 box around the layer's data."""
        box = union_bbox(self.collections)
        return box if box is not None else (-180.0, -90.0, 180.0, 90.0)

    def limits(self, z: int) -> tuple[int, int, int, int]:
        """(min row, max row, min col, max col) of the tiles over the data at level ``z``."""
        west, south, east, north = self.bbox()
        first = self.tms.tile(west, north, z, truncate=True)
        last = self.tms.tile(east, south, z, truncate=True)
        return first.y, last.y, first.x, last.x


def _theme_collections(request: Request, theme: str) -> tuple[Collection, ...]:
    if theme == "vec":
        drawn = base_map(request.app.state.settings.styles_dir).collections()
        by_id = {c.id: c for c in visible_collections(request, VectorCollection)}
        return tuple(by_id[cid] for cid in drawn if cid in by_id)
    kind = "imagery" if theme == "img" else "dem"
    rasters = [c for c in visible_collections(request, RasterCollection) if c.raster.kind == kind]
    return tuple(rasters[:1])


def offered_layers(request: Request, matrix_sets: tuple[str, ...] = tuple(MATRIX_SETS)) -> list[Layer]:
    """Every layer the caller may see, in Tianditu's order (img, ter, vec), in the given sets."""
    layers = []
    for theme in THEMES:
        collections = _theme_collections(request, theme)
        if collections:
            layers += [Layer(theme, s, collections) for s in matrix_sets]
    return layers
