"""Vector base map tiles drawn as PNG: the MVT the sources build, painted with the base map style.

The renderer is GDAL's rasterizer (``rasterio.features.rasterize``) with numpy compositing, both
already in the raster stack: polygons are burnt as they are, lines as shapely buffers of their
width, each style layer composited over the last with its colour and opacity. Drawing at
``SUPERSAMPLE`` times the tile size and averaging down gives anti-aliased edges and hairlines.
The features come from the same MVT the tile routes serve (one read, under the caller's
restriction), so a feature the caller may not see is absent from the picture.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import mapbox_vector_tile
import numpy as np
import shapely
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from rasterio.transform import Affine
from rio_tiler.utils import render as encode
from shapely.geometry import shape

from server.wmts.paint import BaseMap, PaintLayer, evaluate, parse_color, reads_feature

SUPERSAMPLE = 2
# the rasterizer's scratch raster has no CRS, which rasterio warns about on every call
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module="rasterio.features")
_PNG: dict[str, Any] = {"zlevel": 1}
Rgba = tuple[int, int, int, float]


class _Source:
    """The features of one MVT layer: GeoJSON geometries (what the rasterizer takes) and, made once
    when a line layer needs them, their outlines as shapely geometries."""

    def __init__(self, layer: Mapping[str, Any]) -> None:
        self.extent = layer.get("extent", 4096)
        self.features = [(f["geometry"], f.get("properties", {})) for f in layer.get("features", [])]
        self._outlines: list[Any] | None = None

    def outlines(self) -> list[Any]:
        """Each feature's lines (a polygon's boundary), in feature order."""
        if self._outlines is None:
            self._outlines = [_outline(shape(geom)) for geom, _ in self.features]
        return self._outlines


class _Paint:
    """A layer's paint at one zoom: values that do not read the feature are evaluated once."""

    def __init__(self, layer: PaintLayer, zoom: float) -> None:
        prefix = layer.type
        self.layer, self.zoom = layer, zoom
        self.exprs = {"color": layer.paint.get(f"{prefix}-color", "#000000"),
                      "opacity": layer.paint.get(f"{prefix}-opacity", 1.0),
                      "width": layer.paint.get("line-width", 1.0) if prefix == "line" else 0.0}
        self.fixed = {k: evaluate(e, {}, zoom) for k, e in self.exprs.items() if not reads_feature(e)}

    def _value(self, name: str, props: Mapping[str, Any]) -> Any:
        return self.fixed[name] if name in self.fixed else evaluate(self.exprs[name], props, self.zoom)

    def style(self, props: Mapping[str, Any]) -> tuple[Rgba, float] | None:
        """The colour (opacity folded in) and line width of a feature; None: not drawn."""
        layer = self.layer
        if layer.filter is not None and evaluate(layer.filter, props, self.zoom) is not True:
            return None
        color, opacity = parse_color(self._value("color", props)), self._value("opacity", props)
        width = self._value("width", props)
        if color is None or not isinstance(opacity, int | float) or not isinstance(width, int | float):
            return None
        alpha = color[3] * max(0.0, min(1.0, float(opacity)))
        if alpha <= 0:
            return None
        return (color[0], color[1], color[2], alpha), float(width)


def _outline(geom: Any) -> Any:
    return geom.boundary if geom.geom_type in ("Polygon", "MultiPolygon") else geom


def _shapes(layer: PaintLayer, source: _Source, zoom: float, units_per_px: float):
    """(geometry, colour index) pairs of one layer and its palette (index 0 is 'nothing')."""
    palette: dict[Rgba, int] = {}
    picked: list[tuple[int, int, float]] = []
    paint = _Paint(layer, zoom)
    for i, (geom, props) in enumerate(source.features):
        styled = paint.style(props)
        if styled is None or (layer.type != "line" and geom["type"] not in ("Polygon", "MultiPolygon")):
            continue
        color, width = styled
        picked.append((i, palette.setdefault(color, len(palette) + 1), width))
    if layer.type != "line":
        return [(source.features[i][0], index) for i, index, _ in picked], palette
    outlines = source.outlines()
    lines = shapely.buffer([outlines[i] for i, _, _ in picked],
                           [max(w, 1 / SUPERSAMPLE) * units_per_px / 2 for _, _, w in picked], cap_style="flat")
    return [(geom, index) for geom, (_, index, _) in zip(lines, picked, strict=True) if not geom.is_empty], palette


def _composite(canvas: np.ndarray, index: np.ndarray, palette: dict[Rgba, int]) -> None:
    colors = np.zeros((len(palette) + 1, 3), dtype=np.float32)
    alphas = np.zeros(len(palette) + 1, dtype=np.float32)
    for (r, g, b, a), i in palette.items():
        colors[i], alphas[i] = (r, g, b), a
    drawn = index != 0
    used = index[drawn]
    alpha = alphas[used][:, None]
    canvas[drawn] = canvas[drawn] * (1 - alpha) + colors[used] * alpha


def render_png(mvt: bytes, base: BaseMap, zoom: float, size: int = 256) -> bytes | None:
    """The PNG of a base map tile from its MVT, at a MapLibre ``zoom``; None when nothing is drawn."""
    layers = mapbox_vector_tile.decode(mvt)
    full = size * SUPERSAMPLE
    canvas = np.empty((full, full, 3), dtype=np.float32)
    canvas[:] = base.background[:3]
    sources: dict[str, _Source] = {}
    drawn = False
    for paint in base.layers:
        if paint.collection not in layers or not paint.minzoom <= zoom < paint.maxzoom:
            continue
        source = sources.get(paint.collection)
        if source is None:
            source = sources[paint.collection] = _Source(layers[paint.collection])
        extent = source.extent
        shapes, palette = _shapes(paint, source, zoom, extent / size)
        if not shapes:
            continue
        transform = Affine(extent / full, 0, 0, 0, -extent / full, extent)  # MVT y counts up from the bottom
        index = rasterize(shapes, out_shape=(full, full), transform=transform, fill=0, dtype="uint16")
        _composite(canvas, index, palette)
        drawn = True
    if not drawn:
        return None
    small = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    pixels = np.clip(np.rint(small), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    return encode(pixels, img_format="PNG", **_PNG)
