"""The API definition: ``/api`` (OpenAPI 3.0) and its documentation page ``/api.html``.

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12). OGC API clients and validators (and the ``oas30``
conformance classes declared here) expect 3.0, so the document is rewritten once per app into 3.0.3:
a nullable ``anyOf [X, null]`` becomes ``X`` with ``nullable``, ``const`` an ``enum``, numeric
exclusive bounds booleans, schema ``examples`` one ``example``. Request validation errors are
answered 400 with the OGC exception body (``server.errors``), so operations document that, not
FastAPI's 422. The API key schemes come from ``server.credentials`` (optional: the internet edition
admits anonymous callers).

``/api`` answers ``application/vnd.oai.openapi+json;version=3.0`` when the Accept header asks for
the OpenAPI media type, else ``application/json``; the document is the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response

from server.credentials import KEY_HEADER_NAME, KEY_PARAMS
from server.html import SWAGGER_UI_PATH
from server.web import GEOJSON, JSON, MEDIA_TYPES, OPENAPI, OPENAPI_VERSION, json_response, negotiate

router = APIRouter()

API_PATH = "/api"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
_NULL = {"type": "null"}
_ONLY_31 = ("jsonSchemaDialect", "webhooks")
_EXCEPTION = {
    "type": "object",
    "required": ["code", "description"],
    "properties": {
        "code": {"type": "string", "example": "InvalidParameterValue"},
        "description": {"type": "string", "description": "What was wrong, naming the parameter"},
        "status": {"type": "integer", "example": 400},
    },
}
_BAD_REQUEST = {
    "description": "A parameter has a bad value; the description names it",
    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Exception"}}},
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf`` with a ``null`` option -> the other option(s) with ``nullable: true``."""
    options = [o for o in schema.pop("anyOf") if o != _NULL]
    if len(options) == 1 and "$ref" not in options[0]:
        schema = {**options[0], **schema}
    elif len(options) == 1:
        schema["allOf"] = options
    else:
        schema["anyOf"] = options
    schema["nullable"] = True
    return schema


def as_openapi30(node: Any) -> Any:
    """A FastAPI (OpenAPI 3.1 / JSON Schema 2020-12) document or part of one, rewritten as OpenAPI 3.0."""
    if isinstance(node, list):
        return [as_openapi30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_openapi30(v) for k, v in node.items()}
    if isinstance(out.get("anyOf"), list) and _NULL in out["anyOf"]:
        out = _nullable(out)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):  # in a schema (elsewhere ``examples`` is a map)
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[inclusive], out[bound] = value, True
    return out


def _ogc_errors(doc: dict[str, Any]) -> None:
    """Operations answer bad parameters 400 with the OGC exception body, never FastAPI's 422."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", _BAD_REQUEST)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Exception"] = _EXCEPTION


def _key_schemes(doc: dict[str, Any]) -> None:
    """The API key, in its header or a query parameter; optional as a whole (editions differ)."""
    schemes = {"ApiKeyHeader": {"type": "apiKey", "in": "header", "name": KEY_HEADER_NAME}}
    schemes |= {f"ApiKeyQuery_{name}": {"type": "apiKey", "in": "query", "name": name} for name in KEY_PARAMS}
    doc["components"]["securitySchemes"] = schemes
    doc["security"] = [{name: []} for name in schemes] + [{}]


# what ``f`` (and, for tiles, the tile format) values answer, by the path they are served on
_TILE_MEDIA = {"mvt": "application/vnd.mapbox-vector-tile", "jpeg": "image/jpeg", "jpg": "image/jpeg",
               "png": "image/png", "webp": "image/webp"}
_GEOJSON_OBJECT = {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}
_SCHEMAS = {
    "FeatureCollection": {
        "type": "object", "required": ["type", "features"],
        "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                       "features": {"type": "array", "items": {"$ref": "#/components/schemas/Feature"}},
                       "links": {"type": "array", "items": {"type": "object"}},
                       "numberReturned": {"type": "integer", "minimum": 0},
                       "numberMatched": {"type": "integer", "minimum": 0}},
    },
    "Feature": {
        "type": "object", "required": ["type", "geometry", "properties"],
        "properties": {"type": {"type": "string", "enum": ["Feature"]},
                       "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                       "geometry": {**_GEOJSON_OBJECT, "nullable": True},
                       "properties": {"type": "object", "nullable": True}},
    },
}
# refusals every keyed route may answer, besides its own 400/404 (the OGC exception body)
_REFUSALS = {"401": "No key, or an unknown or revoked key", "403": "The key may not be used from here or now",
             "406": "The representation asked for (f or Accept) is not offered", "429": "Over the key's rate or quota",
             "503": "The store is unavailable or a query took too long (Retry-After)"}


def _media(path: str, f: str) -> str | None:
    """The media type a value of ``f`` answers on ``path``."""
    if "{tileCol}" in path or f in _TILE_MEDIA:
        return _TILE_MEDIA.get(f)
    if f == "json" and "/items" in path and not path.startswith("/stac"):
        return GEOJSON
    if f == "json" and path.endswith(("/queryables", "/sortables")):
        return "application/schema+json"
    return MEDIA_TYPES.get(f, (None,))[0]


def _document_json(path: str, content: dict[str, Any]) -> None:
    """The JSON media types a path answers besides ``application/json``: GeoJSON (features, STAC items)
    and JSON Schema (queryables, sortables)."""
    if "/items" in path and not path.startswith("/stac"):
        name = "Feature" if path.endswith("}") and path.count("{") == 2 else "FeatureCollection"
        content[GEOJSON] = {"schema": {"$ref": f"#/components/schemas/{name}"}}
    elif path.startswith("/stac") and ("/items" in path or path.endswith("/search")):
        content[GEOJSON] = {"schema": {"type": "object"}}  # STAC items and item collections
    if path.endswith(("/queryables", "/sortables")):
        content["application/schema+json"] = {"schema": {"type": "object"}}


def _document_operation(path: str, operation: dict[str, Any], limits: tuple[int, int]) -> None:
    """Media types per ``f`` value, limit bounds, the refusals and the 404 of a path with parameters."""
    params = operation.get("parameters", [])
    responses = operation.setdefault("responses", {})
    ok = responses.get("200")
    for param in params:
        schema = param.get("schema", {})
        if param["name"] == "limit" and param["in"] == "query":
            schema.update(minimum=1, maximum=limits[1], default=limits[0])
        if param["name"] == "f" and ok is not None:
            content = ok.setdefault("content", {})
            for f in schema.get("enum", []):
                media = _media(path, f)
                if media and media not in content:
                    content[media] = {"schema": {"type": "string"} if "html" in media or "csv" in media else {}}
    if ok is not None:
        _document_json(path, ok.setdefault("content", {}))
    error = {"content": {JSON: {"schema": {"$ref": "#/components/schemas/Exception"}}}}
    if "{" in path:
        responses.setdefault("404", {"description": "No such resource (or one the caller may not see)", **error})
    for status, description in _REFUSALS.items():
        responses.setdefault(status, {"description": description, **error})


def _document_responses(doc: dict[str, Any], limits: tuple[int, int]) -> None:
    """What each operation really answers: media types, GeoJSON schemas, refusals, ``limit`` bounds."""
    doc["components"]["schemas"].update(_SCHEMAS)
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            _document_operation(path, operation, limits)


def api_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the app's routes (built once per app)."""
    cached = getattr(app.state, "api_document", None)
    if cached is None:
        doc = get_openapi(
            title=app.title, version=app.version, openapi_version=OPENAPI_VERSION,
            description=app.description, routes=app.routes,
        )
        for key in _ONLY_31:
            doc.pop(key, None)
        doc["info"].pop("summary", None)
        doc["info"].get("license", {}).pop("identifier", None)
        _ogc_errors(doc)
        _key_schemes(doc)
        settings = app.state.settings
        _document_responses(doc, (settings.default_limit, settings.max_limit))
        cached = app.state.api_document = as_openapi30(doc)
    return cached


@router.get(API_PATH, include_in_schema=False)
async def api(request: Request) -> Response:
    """The API definition; ``Accept: application/vnd.oai.openapi+json`` gets that media type."""
    doc = api_document(request.app)
    root = request.scope.get("root_path", "").rstrip("/")
    if root:  # mounted under a prefix: the paths are relative to it
        doc = {**doc, "servers": [{"url": root}]}
    wanted = OPENAPI if negotiate(request.headers.get("accept", ""), ("json", "openapi")) == "openapi" else JSON
    return json_response(doc, media_type=wanted, headers={"Vary": "Accept"})


@router.get(f"{API_PATH}.html", include_in_schema=False)
async def api_page(request: Request) -> HTMLResponse:
    """The API documentation (Swagger UI over ``/api``)."""
    root = request.scope.get("root_path", "").rstrip("/")
    lib = f"{root}{SWAGGER_UI_PATH}"  # served from npm's swagger-ui-dist by server.viewer (no CDN)
    return get_swagger_ui_html(
        openapi_url=root + API_PATH, title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
        swagger_js_url=f"{lib}/swagger-ui-bundle.js", swagger_css_url=f"{lib}/swagger-ui.css",
        swagger_favicon_url=f"{lib}/favicon-32x32.png", swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
async def oauth2_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page."""
    return get_swagger_ui_oauth2_redirect_html()
