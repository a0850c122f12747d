"""Cross-origin access (CORS) for web maps served from other origins.

A pure ASGI middleware added outermost (outside the access policy and the cache's fast path), so
every response - routed, replayed by the fast path, refused by the policy, a 304 - carries the same
headers, and a preflight ``OPTIONS`` is answered here before any key is asked for or any audit row
is written (it reads no data). The allowed origins are ``ONEMAP_CORS_ORIGINS``: ``*`` (the internet
edition's default), a comma-separated list of origins (``https://map.example.org``), or empty (the
default of the other editions: no cross-origin reads).

With ``*`` every response carries ``Access-Control-Allow-Origin: *`` whatever the request's
``Origin``: the headers are the same for everybody, so a shared cache (a CDN, the server's own
caches) keeps one copy and no ``Vary: Origin`` is needed. With a list, an allowed ``Origin`` is
echoed and every response (one without ``Origin`` too) carries ``Vary: Origin``, so a cache never
hands one origin's answer to another. Credentials travel in the ``X-API-Key`` header (allowed in
preflights) or ``?api_key=``; cookies are not offered cross-origin (``Access-Control-Allow-Credentials``
is never sent), so a browser session stays usable on this server's own pages only.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.credentials import KEY_HEADER_NAME
from server.errors import ogc_response
from server.settings import Settings

ANY = "*"
ALLOWED_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = (KEY_HEADER_NAME, "Accept", "Accept-Language", "Content-Type", "If-None-Match",
                   "If-Modified-Since", "Prefer", "Range")
# what a cross-origin script may read of a response: validators, the CRS of a page, paging links, a job's
# Location, when to retry, the methods a path takes, the preference applied and a download's file name
EXPOSED_HEADERS = ("ETag", "Content-Crs", "Link", "Location", "Retry-After", "Allow", "Preference-Applied",
                   "Content-Disposition", "Content-Language")
PREFLIGHT_MAX_AGE_S = 7200  # Chromium's own cap


def allowed_origins(settings: Settings) -> tuple[str, ...]:
    """The configured origins, else the edition's default: ``*`` for the internet edition, none elsewhere."""
    if settings.cors_origins is not None:
        return settings.cors_origins
    return (ANY,) if settings.edition == "internet" else ()


class CorsMiddleware:
    """Adds the CORS headers to every response and answers preflights; see the module docstring."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        origins = tuple(origins)
        self.any = ANY in origins
        self.origins = frozenset(o.rstrip("/").lower() for o in origins if o != ANY)
        self.allowed_headers = {h.lower() for h in ALLOWED_HEADERS}

    def allows(self, origin: str | None) -> bool:
        """Whether a script of ``origin`` may read this server's responses."""
        return origin is not None and (self.any or origin.lower() in self.origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Headers(scope=scope)
        origin = request.get("origin")
        if scope["method"] == "OPTIONS" and origin is not None and "access-control-request-method" in request:
            await self._preflight(scope, receive, send, origin, request)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                self._decorate(headers, origin)
            await send(message)

        await self.app(scope, receive, with_headers)

    def _decorate(self, headers: MutableHeaders, origin: str | None) -> None:
        """The response headers of a simple (non-preflight) request."""
        if not self.any:
            headers.add_vary_header("Origin")
        if self.any or self.allows(origin):
            headers["access-control-allow-origin"] = ANY if self.any else str(origin)
            headers["access-control-expose-headers"] = ", ".join(EXPOSED_HEADERS)

    async def _preflight(self, scope: Scope, receive: Receive, send: Send, origin: str, request: Headers) -> None:
        """Answer ``OPTIONS`` with ``Access-Control-Request-Method`` here: no key, no audit, no body."""
        wanted = [h.strip().lower() for h in request.get("access-control-request-headers", "").split(",") if h.strip()]
        method = request["access-control-request-method"].upper()
        refused = None
        if not self.allows(origin):
            refused = f"Origin '{origin}' may not read this server's responses (ONEMAP_CORS_ORIGINS)."
        elif method not in ALLOWED_METHODS.split(", "):
            refused = f"Method '{method}' is not offered; use one of {ALLOWED_METHODS}."
        elif unknown := [h for h in wanted if h not in self.allowed_headers]:
            refused = f"Request header '{unknown[0]}' is not allowed; allowed are {', '.join(ALLOWED_HEADERS)}."
        vary = {} if self.any else {"vary": "Origin"}
        if refused is not None:
            await ogc_response(403, "Forbidden", refused, vary)(scope, receive, send)
            return
        headers = {
            "access-control-allow-origin": ANY if self.any else origin,
            "access-control-allow-methods": ALLOWED_METHODS,
            "access-control-allow-headers": ", ".join(ALLOWED_HEADERS),
            "access-control-max-age": str(PREFLIGHT_MAX_AGE_S),
            **vary,
        }
        await send({"type": "http.response.start", "status": 204,
                    "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]})
        await send({"type": "http.response.body", "body": b""})


def install(app: FastAPI, settings: Settings) -> None:
    """Add the CORS middleware outermost (call after every other middleware); nothing when no origin is allowed."""
    origins = allowed_origins(settings)
    if origins:
        app.add_middleware(CorsMiddleware, origins=origins)
