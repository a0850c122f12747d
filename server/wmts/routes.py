"""WMTS 1.0.0 routes in Tianditu's conventions (see the package docstring).

* ``/wmts?SERVICE=WMTS&REQUEST=GetCapabilities`` and ``REQUEST=GetTile&LAYER=img_c&STYLE=default&
  TILEMATRIXSET=c&TILEMATRIX=..&TILEROW=..&TILECOL=..&FORMAT=image/jpeg`` (names in any case);
* ``/wmts/1.0.0/WMTSCapabilities.xml`` and ``/wmts/1.0.0/{layer}/{style}/{set}/{z}/{row}/{col}.{ext}``;
* Tianditu's endpoints ``/img_c/wmts``, ``/vec_w/wmts``...: the same KVP for that one layer, named
  there as Tianditu names it (``LAYER=img``, ``TILEMATRIXSET=c``, ``FORMAT=tiles``).

Errors are OWS ``ExceptionReport`` documents (``MissingParameterValue``, ``InvalidParameterValue``,
``TileOutOfRange``: 400; ``OperationNotSupported``: 501). An API key given as ``tk`` (or ``api_key``)
is written into the capabilities' URLs for that caller, and such a document is never stored by a cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.cache import is_public
from server.credentials import KEY_PARAMS
from server.web import base_url
from server.wmts.capabilities import capabilities_xml
from server.wmts.layers import MATRIX_SETS, THEMES, Layer, offered_layers
from server.wmts.ows import XML, Kvp, OwsError, exception_report, invalid
from server.wmts.tiles import checked_tile, media_type, raster_tile, vector_tile

router = APIRouter(tags=["WMTS (Tianditu-style)"])
REST_ROOT = "/wmts/1.0.0"
_KVP_NAMES = ("SERVICE", "REQUEST", "VERSION", "LAYER", "STYLE", "TILEMATRIXSET", "TILEMATRIX", "TILEROW",
              "TILECOL", "FORMAT")  # the key as tk is the API's security scheme
_KVP_DOC = {"parameters": [
    {"name": n, "in": "query", "required": False, "schema": {"type": "string"},
     "description": "WMTS 1.0.0 KVP parameter (names are case-insensitive)"}
    for n in _KVP_NAMES
]}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {XML: {}, "image/png": {}, "image/jpeg": {}}},
    204: {"description": "Nothing to draw in this tile"},
    400: {"description": "OWS ExceptionReport", "content": {XML: {}}},
    501: {"description": "OWS ExceptionReport (OperationNotSupported)", "content": {XML: {}}},
}


async def _guard(work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except OwsError as e:
        return exception_report(e)


def _key(request: Request) -> tuple[str, str] | None:
    """The key query parameter the caller authenticated with, to carry into the document's URLs."""
    for name in KEY_PARAMS:
        value = request.query_params.get(name)
        if value:
            return name, value
    return None


def _capabilities(request: Request, layers: list[Layer], kvp_path: str, short_names: bool = False) -> Response:
    base = base_url(request)
    key = _key(request)
    body = capabilities_xml(layers, base + kvp_path, base + REST_ROOT, key, short_names)
    if key is not None:
        control = "private, no-store"  # the document holds the caller's key
    elif is_public(request):
        control = f"public, max-age={request.app.state.settings.cache_max_age_s}"
    else:
        control = "private, max-age=0"
    return Response(body, media_type=XML, headers={"Cache-Control": control})


def _layer(request: Request, name: str, matrix_set: str, fixed: str | None) -> Layer:
    """The caller's layer called ``name`` in ``matrix_set`` (``fixed``: the one layer of a Tianditu endpoint)."""
    layers = offered_layers(request)
    if fixed is not None:
        layers = [la for la in layers if la.name == fixed]
    found = next((la for la in layers if la.name == name or (fixed and la.theme == name)), None)
    if found is None:
        offered = ", ".join(la.theme if fixed else la.name for la in layers) or "none"
        raise invalid("LAYER", f"Layer '{name}' is not offered; offered: {offered}.")
    if matrix_set != found.matrix_set:
        raise invalid("TILEMATRIXSET", f"Tile matrix set '{matrix_set}' is not offered by layer {name}; "
                                       f"use {found.matrix_set}.")
    return found


async def _kvp(request: Request, fixed: str | None) -> Response:
    kvp = Kvp(request)
    service = kvp.required("SERVICE")
    if service.upper() != "WMTS":
        raise invalid("SERVICE", f"Service '{service}' is not offered here; use WMTS.")
    operation = kvp.required("REQUEST")
    if operation.lower() == "getcapabilities":
        layers = offered_layers(request)
        if fixed is not None:
            layers = [la for la in layers if la.name == fixed]
        return _capabilities(request, layers, f"/{fixed}/wmts" if fixed else "/wmts", short_names=fixed is not None)
    if operation.lower() != "gettile":
        raise OwsError("OperationNotSupported", "REQUEST",
                       f"Operation '{operation}' is not offered; use GetCapabilities or GetTile.")
    version = kvp.get("VERSION")
    if version is not None and version != "1.0.0":
        raise invalid("VERSION", f"Version '{version}' is not offered; use 1.0.0.")
    layer = _layer(request, kvp.required("LAYER"), kvp.required("TILEMATRIXSET"), fixed)
    return await _get_tile(request, layer, kvp.required("STYLE"), kvp.required("FORMAT"),
                           kvp.required("TILEMATRIX"), kvp.required("TILEROW"), kvp.required("TILECOL"))


async def _get_tile(request: Request, layer: Layer, style: str, fmt: str, matrix: str, row: str,
                    col: str) -> Response:
    if style != "default":
        raise invalid("STYLE", f"Style '{style}' is not offered by layer {layer.name}; use default.")
    media = media_type(layer, fmt)
    tile = checked_tile(layer, matrix, row, col)
    if layer.theme == "vec":
        return await vector_tile(request, layer, tile)
    return await raster_tile(request, layer, tile, media)


@router.get("/wmts", summary="WMTS 1.0.0 (KVP): GetCapabilities and GetTile", response_class=Response,
            responses=_RESPONSES, openapi_extra=_KVP_DOC)
async def wmts_kvp(request: Request):
    """WMTS 1.0.0 in KVP encoding over the layers ``img_c``, ``img_w``, ``ter_c``, ``ter_w``, ``vec_c``, ``vec_w``."""
    return await _guard(lambda: _kvp(request, None))


def _tianditu_endpoint(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await _guard(lambda: _kvp(request, name))

    endpoint.__doc__ = f"Tianditu's endpoint of layer {name}: WMTS KVP with LAYER={name.split('_')[0]}."
    return endpoint


for _name in (f"{t}_{s}" for t in THEMES for s in MATRIX_SETS):
    router.add_api_route(f"/{_name}/wmts", _tianditu_endpoint(_name), methods=["GET"], response_class=Response,
                         summary=f"WMTS 1.0.0 (KVP), Tianditu's {_name} endpoint", responses=_RESPONSES,
                         openapi_extra=_KVP_DOC, operation_id=f"wmts_{_name}")


@router.get(f"{REST_ROOT}/WMTSCapabilities.xml", summary="WMTS 1.0.0 capabilities (RESTful)",
            response_class=Response, responses={200: {"content": {XML: {}}}})
async def wmts_rest_capabilities(request: Request):
    """The capabilities document of every layer the caller may see."""
    return _capabilities(request, offered_layers(request), "/wmts")


@router.get(f"{REST_ROOT}/{{layer}}/{{style}}/{{tileMatrixSet}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}.{{ext}}",
            summary="A WMTS tile (RESTful)", response_class=Response, responses=_RESPONSES)
async def wmts_rest_tile(request: Request, layer: str, style: str, tileMatrixSet: str, tileMatrix: str,
                         tileRow: str, tileCol: str, ext: str):
    """One tile: ``ext`` is ``jpg``/``jpeg`` or ``png`` among the layer's formats."""

    async def work() -> Response:
        found = _layer(request, layer, tileMatrixSet, None)
        return await _get_tile(request, found, style, ext, tileMatrix, tileRow, tileCol)

    return await _guard(work)


__all__ = ["router"]
