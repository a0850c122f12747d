"""The WMTS 1.0.0 ``Capabilities`` document (OGC 07-057r7) of the layers a caller may see.

Operations are offered in KVP (``GetCapabilities``, ``GetTile``) and RESTful form
(``ResourceURL`` templates). Tile matrix sets ``c`` and ``w`` list Tianditu's levels 1-18 with the
grid's own origin, cell counts and scale denominators (0.28 mm pixels); each layer states the tiles
over its data (``TileMatrixSetLimits``). ``key`` (name, value) is a query parameter the caller
authenticated with: it is written into every URL, so this document is for that caller only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import morecantile

from server.tiling.matrix_sets import get_tms
from server.wmts.layers import LEVELS, MATRIX_SETS, SET_TITLES, TITLES, Layer

WMTS_NS = "http://www.opengis.net/wmts/1.0"
OWS = "http://www.opengis.net/ows/1.1"
XLINK = "http://www.w3.org/1999/xlink"
CRS_URN = {"c": "urn:ogc:def:crs:EPSG::4490", "w": "urn:ogc:def:crs:EPSG::3857"}
SUFFIX = {"image/jpeg": "jpg", "image/png": "png"}
ET.register_namespace("", WMTS_NS)
ET.register_namespace("ows", OWS)
ET.register_namespace("xlink", XLINK)


def _w(tag: str) -> str:
    return f"{{{WMTS_NS}}}{tag}"


def _o(tag: str) -> str:
    return f"{{{OWS}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = str(text)
    return element


def _service(root: ET.Element) -> None:
    ident = _sub(root, _o("ServiceIdentification"))
    _sub(ident, _o("Title"), "OneMap 自然资源一张图 WMTS")
    _sub(ident, _o("Abstract"), "Imagery, terrain and the vector base map in Tianditu's layers and grids (c, w).")
    _sub(ident, _o("ServiceType"), "OGC WMTS")
    _sub(ident, _o("ServiceTypeVersion"), "1.0.0")


def _operations(root: ET.Element, kvp_url: str) -> None:
    meta = _sub(root, _o("OperationsMetadata"))
    for name in ("GetCapabilities", "GetTile"):
        op = _sub(meta, _o("Operation"), name=name)
        get = _sub(_sub(_sub(op, _o("DCP")), _o("HTTP")), _o("Get"), **{f"{{{XLINK}}}href": kvp_url})
        allowed = _sub(_sub(get, _o("Constraint"), name="GetEncoding"), _o("AllowedValues"))
        _sub(allowed, _o("Value"), "KVP")


def _layer(contents: ET.Element, layer: Layer, identifier: str, rest_root: str, key_query: str) -> None:
    element = _sub(contents, _w("Layer"))
    zh, en = TITLES[layer.theme]
    _sub(element, _o("Title"), f"{zh} {en} ({layer.matrix_set})")
    west, south, east, north = layer.bbox()
    box = _sub(element, _o("WGS84BoundingBox"))
    _sub(box, _o("LowerCorner"), f"{west} {south}")
    _sub(box, _o("UpperCorner"), f"{east} {north}")
    _sub(element, _o("Identifier"), identifier)
    style = _sub(element, _w("Style"), isDefault="true")
    _sub(style, _o("Identifier"), "default")
    for media in layer.formats:
        _sub(element, _w("Format"), media)
    link = _sub(element, _w("TileMatrixSetLink"))
    _sub(link, _w("TileMatrixSet"), layer.matrix_set)
    limits = _sub(link, _w("TileMatrixSetLimits"))
    for z in layer.levels():
        min_row, max_row, min_col, max_col = layer.limits(z)
        one = _sub(limits, _w("TileMatrixLimits"))
        for tag, value in (("TileMatrix", z), ("MinTileRow", min_row), ("MaxTileRow", max_row),
                           ("MinTileCol", min_col), ("MaxTileCol", max_col)):
            _sub(one, _w(tag), value)
    for media in layer.formats:
        template = (f"{rest_root}/{layer.name}/{{Style}}/{layer.matrix_set}/{{TileMatrix}}/{{TileRow}}/{{TileCol}}"
                    f".{SUFFIX[media]}{key_query}")
        _sub(element, _w("ResourceURL"), format=media, resourceType="tile", template=template)


def _matrix_set(contents: ET.Element, name: str, tms: morecantile.TileMatrixSet) -> None:
    element = _sub(contents, _w("TileMatrixSet"))
    _sub(element, _o("Title"), SET_TITLES[name])
    _sub(element, _o("Identifier"), name)
    _sub(element, _o("SupportedCRS"), CRS_URN[name])
    for z in LEVELS:
        matrix = tms.matrix(z)
        one = _sub(element, _w("TileMatrix"))
        _sub(one, _o("Identifier"), z)
        _sub(one, _w("ScaleDenominator"), repr(matrix.scaleDenominator))
        _sub(one, _w("TopLeftCorner"), " ".join(repr(float(v)) for v in matrix.pointOfOrigin))
        for tag, value in (("TileWidth", matrix.tileWidth), ("TileHeight", matrix.tileHeight),
                           ("MatrixWidth", matrix.matrixWidth), ("MatrixHeight", matrix.matrixHeight)):
            _sub(one, _w(tag), value)


def capabilities_xml(
    layers: list[Layer], kvp_url: str, rest_root: str, key: tuple[str, str] | None, short_names: bool = False,
) -> bytes:
    """The capabilities document; ``short_names`` names layers ``img`` rather than ``img_c`` (Tianditu's
    per-layer endpoints such as ``/img_c/wmts``)."""
    key_query = f"?{urlencode([key])}" if key else ""
    root = ET.Element(_w("Capabilities"), {"version": "1.0.0"})
    _service(root)
    _operations(root, f"{kvp_url}?{urlencode([key])}" if key else f"{kvp_url}?")
    contents = _sub(root, _w("Contents"))
    for layer in layers:
        _layer(contents, layer, layer.theme if short_names else layer.name, rest_root, key_query)
    for name in dict.fromkeys(layer.matrix_set for layer in layers):
        _matrix_set(contents, name, get_tms(MATRIX_SETS[name]))
    _sub(root, _w("ServiceMetadataURL"), **{f"{{{XLINK}}}href": f"{rest_root}/WMTSCapabilities.xml{key_query}"})
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
