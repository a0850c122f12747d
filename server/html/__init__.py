"""HTML pages: one Jinja2 environment, autoescaped, rendering the same documents the JSON carries.

Part of the floor: every capability renders its pages here (``templates/``); ``static/`` holds the
files the pages load from this server. A route whose JSON document is its whole answer gets its page
with the ``html_alternative`` decorator: the route runs as for JSON and the page renders that document.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.credentials import without_credentials
from server.web import base_url, output_format

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_UI_PATH = "/map/lib/swagger-ui"  # where /api.html loads Swagger UI from (npm's swagger-ui-dist)
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def keyless(href: str) -> str:
    """A link with every credential parameter left out (a page never hands a key on)."""
    parts = urlsplit(href)
    if not parts.query:
        return href
    query = urlencode(without_credentials(parse_qsl(parts.query, keep_blank_values=True)))
    return urlunsplit(parts._replace(query=query))


def as_page(href: str) -> str:
    """A link of this server's JSON documents turned into the link of their page (``f=html``)."""
    parts = urlsplit(keyless(href))
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "f"] + [("f", "html")]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


_env.filters["keyless"] = keyless
_env.filters["as_page"] = as_page


def render_page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page template with the request's base URL as ``base`` and its query parameters as ``query``."""
    context.setdefault("query", request.query_params)
    html = _env.get_template(template).render(base=base_url(request), **context)
    return HTMLResponse(html, status_code=status_code, headers={"Vary": "Accept"})


def wants_html(request: Request) -> bool:
    """Whether the caller asks for the page: ``f=html``, or (without ``f``) an Accept preferring HTML."""
    f = request.query_params.get("f")
    if f is not None:
        return f == "html"
    return output_format(request, ("json", "html")) == "html"


_PAGE_ONLY_HEADERS = (b"accept", b"accept-encoding", b"if-none-match", b"if-modified-since")


def _without_format(request: Request) -> Request:
    """The same request asking for the route's default representation: no ``f``, no Accept, and
    uncompressed and unconditional (the page is made from the whole document)."""
    pairs = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != "f"]
    headers = [(k, v) for k, v in request.scope["headers"] if k not in _PAGE_ONLY_HEADERS]
    scope = dict(request.scope, query_string=urlencode(pairs).encode(), headers=headers)
    return Request(scope, request.receive)


Route = Callable[..., Awaitable[Response]]


def html_alternative(template: str) -> Callable[[Route], Route]:
    """Decorator of a route answering one JSON document: ``f=html`` (or a browser's Accept) gets
    ``template`` rendered with that document as ``doc`` and the path parameters as ``path``.

    The route must take ``request: Request``; it runs unchanged (policy, cache, errors), without ``f``.
    """

    def decorate(route: Route) -> Route:
        @functools.wraps(route)
        async def endpoint(**arguments: Any) -> Response:
            request: Request = arguments["request"]
            if not wants_html(request):
                return await route(**arguments)
            inner = {**arguments, "request": _without_format(request)}
            if "f" in inner:
                inner["f"] = None
            response = await route(**inner)
            if response.status_code != 200:
                return response
            doc = orjson.loads(bytes(response.body))
            return render_page(request, template, doc=doc, path=request.path_params)

        return endpoint

    return decorate
