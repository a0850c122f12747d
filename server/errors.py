"""Domain exceptions and the one map from exception to HTTP status and OGC exception body.

Every error a client sees goes through here: a code, a human description naming what was wrong,
and never a path, SQL text or traceback.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def install(app: FastAPI) -> None:
    """Register the handlers so that every error leaves as an OGC exception body."""

    @app.exception_handler(OGCError)
    async def _ogc(_: Request, exc: OGCError):
        return ogc_response(exc.status, exc.code, exc.description, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return ogc_response(400, InvalidParameter.code, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return ogc_response(404, NotFound.code, "No resource at this path.")
        if exc.status_code == 405:
            return ogc_response(405, "MethodNotAllowed", "This method is not allowed here.")
        return ogc_response(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return ogc_response(500, OGCError.code, "An internal error occurred.")
