"""Vector base map tiles drawn as PNG: the MVT the sources build, painted with the base map style.

The renderer is GDAL's rasterizer (``rasterio.features.rasterize``) with numpy compositing, both
already in the raster stack: polygons are burnt as they are, lines as shapely buffers of their
width, each style layer composited over the last with its colour and opacity. Drawing at
``SUPERSAMPLE`` times the tile size and averaging down gives anti-aliased edges and hairlines.
The features come from the same MVT the tile routes serve (one read, under the caller's
restriction), so a feature the caller may not see is absent from the picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mapbox_vector_tile
import numpy as np
import shapely
from rasterio.features import rasterize
from rasterio.transform import Affine
from rio_tiler.utils import render as encode
from shapely.geometry import shape

from server.wmts.paint import BaseMap, PaintLayer, evaluate, parse_color

SUPERSAMPLE = 3
_PNG: dict[str, Any] = {"zlevel": 1}
Rgba = tuple[int, int, int, float]


def _features(layer: Mapping[str, Any]) -> list[tuple[Any, Mapping[str, Any]]]:
    out = []
    for feature in layer.get("features", []):
        geom = shape(feature["geometry"])
        if not geom.is_empty:
            out.append((geom, feature.get("properties", {})))
    return out


def _style_of(layer: PaintLayer, props: Mapping[str, Any], zoom: float) -> tuple[Rgba, float] | None:
    """The colour (opacity folded in) and line width of a feature in a layer; None: not drawn."""
    if layer.filter is not None and evaluate(layer.filter, props, zoom) is not True:
        return None
    prefix = layer.type
    color = parse_color(evaluate(layer.paint.get(f"{prefix}-color", "#000000"), props, zoom))
    opacity = evaluate(layer.paint.get(f"{prefix}-opacity", 1.0), props, zoom)
    width = evaluate(layer.paint.get("line-width", 1.0), props, zoom) if prefix == "line" else 0.0
    if color is None or not isinstance(opacity, int | float) or not isinstance(width, int | float):
        return None
    alpha = color[3] * max(0.0, min(1.0, float(opacity)))
    if alpha <= 0:
        return None
    return (color[0], color[1], color[2], alpha), float(width)


def _outline(geom: Any) -> Any:
    return geom.boundary if geom.geom_type in ("Polygon", "MultiPolygon") else geom


def _shapes(layer: PaintLayer, features, zoom: float, units_per_px: float):
    """(geometry, colour index) pairs of one layer and its palette (index 0 is 'nothing')."""
    palette: dict[Rgba, int] = {}
    shapes = []
    for geom, props in features:
        styled = _style_of(layer, props, zoom)
        if styled is None:
            continue
        color, width = styled
        if layer.type == "line":
            geom = shapely.buffer(_outline(geom), max(width, 1 / SUPERSAMPLE) * units_per_px / 2, cap_style="flat")
        elif geom.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        shapes.append((geom, palette.setdefault(color, len(palette) + 1)))
    return shapes, palette


def _composite(canvas: np.ndarray, index: np.ndarray, palette: dict[Rgba, int]) -> None:
    colors = np.zeros((len(palette) + 1, 3), dtype=np.float32)
    alphas = np.zeros(len(palette) + 1, dtype=np.float32)
    for (r, g, b, a), i in palette.items():
        colors[i], alphas[i] = (r, g, b), a
    alpha = alphas[index][..., None]
    canvas *= 1 - alpha
    canvas += colors[index] * alpha


def render_png(mvt: bytes, base: BaseMap, zoom: float, size: int = 256) -> bytes | None:
    """The PNG of a base map tile from its MVT, at a MapLibre ``zoom``; None when nothing is drawn."""
    layers = mapbox_vector_tile.decode(mvt)
    full = size * SUPERSAMPLE
    canvas = np.empty((full, full, 3), dtype=np.float32)
    canvas[:] = base.background[:3]
    drawn = False
    for paint in base.layers:
        source = layers.get(paint.collection)
        if source is None or not paint.minzoom <= zoom < paint.maxzoom:
            continue
        extent = source.get("extent", 4096)
        shapes, palette = _shapes(paint, _features(source), zoom, extent / size)
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
