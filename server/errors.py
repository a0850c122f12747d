"""Domain exceptions and the one map from exception to HTTP status and OGC exception body.

Every error a client sees goes through here: a code, a human description naming what was wrong,
and never a path, SQL text or traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from server.credentials import KEY_HEADER_NAME, KEY_PARAMS

log = logging.getLogger("onemap.errors")


class OGCError(Exception):
    """Base of all errors answered to clients."""

    status = 500
    code = "ServerError"
    headers: dict[str, str] = {}

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidParameter(OGCError):
    """A query or path parameter has a bad value (400)."""

    status = 400
    code = "InvalidParameterValue"


class NotFound(OGCError):
    """The resource does not exist, or the caller may not know that it does (404)."""

    status = 404
    code = "NotFound"


class Unauthorized(OGCError):
    """No usable credential (401)."""

    status = 401
    code = "Unauthorized"
    headers = {"WWW-Authenticate": f'ApiKey realm="onemap", header="{KEY_HEADER_NAME}", query="{KEY_PARAMS[0]}"'}


class Forbidden(OGCError):
    """A valid key used from the wrong place or at the wrong time (403)."""

    status = 403
    code = "Forbidden"


class TooManyRequests(OGCError):
    """Over the key's rate or daily quota (429 + Retry-After)."""

    status = 429
    code = "TooManyRequests"

    def __init__(self, description: str, retry_after: int) -> None:
        super().__init__(description)
        self.headers = {"Retry-After": str(retry_after)}


class NotAcceptable(OGCError):
    """No representation matches the requested format (406)."""

    status = 406
    code = "NotAcceptable"


class Unavailable(OGCError):
    """A backend is slow or down; the client may retry (503)."""

    status = 503
    code = "ServiceUnavailable"

    def __init__(self, description: str = "The service is busy; retry shortly.", retry_after: int = 5):
        super().__init__(description)
        self.headers = {"Retry-After": str(retry_after)}


class PayloadTooLarge(StarletteHTTPException):
    """A request body above the configured limit (413), raised while the body is read.

    An HTTP exception rather than an ``OGCError`` so that it passes the framework's body parsing
    unchanged (other exceptions raised there become a generic 400).
    """

    status = 413
    code = "PayloadTooLarge"

    def __init__(self, limit: int) -> None:
        self.description = f"The request body is larger than the limit of {limit} bytes."
        super().__init__(self.status, self.description)


def collection_not_found(collection_id: str) -> NotFound:
    """The one answer for a missing (or hidden) collection."""
    return NotFound(f"Collection '{collection_id}' does not exist.")


def ogc_response(status: int, code: str, description: str, headers: dict[str, str] | None = None):
    """An OGC API exception body (code + description) as JSON."""
    body = orjson.dumps({"code": code, "description": description, "status": status})
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _validation_message(exc: RequestValidationError) -> str:
    """Each problem names its parameter, the same for a query parameter and a field of a JSON body."""
    parts = []
    for err in exc.errors():
        where = tuple(err.get("loc", ()))
        names = [p for p in where[1:] if isinstance(p, str)]
        if err.get("type") == "json_invalid":
            parts.append("The request body is not valid JSON.")
        elif not names:
            subject = "The request body" if where[:1] == ("body",) else "The request"
            parts.append(f"{subject}: {err.get('msg', 'invalid value')}.")
        elif err.get("type") == "extra_forbidden":
            parts.append(f"Unknown parameter '{names[0]}'.")
        else:
            parts.append(f"Parameter '{names[0]}': {err.get('msg', 'invalid value')}.")
    return " ".join(parts) or "Invalid request."


def _flat_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, those of included routers too (FastAPI keeps them behind ``original_router``)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat_routes(inner.routes)
        else:
            yield route


def allowed_methods(request: Request) -> str:
    """The ``Allow`` value for the request's path: the methods of every route at that path (HEAD with GET)."""
    methods: set[str] = set()
    path = request.scope["path"]
    for route in _flat_routes(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    """Register the handlers so that every error leaves as an OGC exception body."""

    @app.exception_handler(OGCError)
    async def _ogc(_: Request, exc: OGCError):
        return ogc_response(exc.status, exc.code, exc.description, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return ogc_response(400, InvalidParameter.code, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return ogc_response(404, NotFound.code, "No resource at this path.")
        if exc.status_code == 405:
            allow = allowed_methods(request)
            return ogc_response(405, "MethodNotAllowed", f"This method is not allowed here; allowed: {allow}.",
                                {"Allow": allow})
        if exc.status_code == 413:
            return ogc_response(413, PayloadTooLarge.code, str(exc.detail))
        return ogc_response(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return ogc_response(500, OGCError.code, "An internal error occurred.")
