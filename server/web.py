"""Request helpers shared by every capability: base URL, format negotiation, JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Query, Request
from fastapi.responses import Response

from server.errors import NotAcceptable

GEOJSON = "application/geo+json"
JSON = "application/json"
HTML = "text/html"
OPENAPI_VERSION = "3.0.3"  # of the API definition at /api
OPENAPI = f"application/vnd.oai.openapi+json;version={OPENAPI_VERSION.rsplit('.', 1)[0]}"


def language(request: Request) -> str:
    """``en`` when the client prefers English, ``zh`` (the default) otherwise."""
    return "en" if request.headers.get("accept-language", "").lower().startswith("en") else "zh"


def base_url(request: Request) -> str:
    """The public root URL without a trailing slash (settings.base_url wins over the request)."""
    configured = request.app.state.settings.base_url
    return (configured or str(request.base_url)).rstrip("/")


def output_format(request: Request, allowed: tuple[str, ...] = ("json", "html")) -> str:
    """The representation asked for: ``f`` wins, then Accept; the first allowed one by default."""
    f = request.query_params.get("f")
    if f is not None:
        if f not in allowed:
            raise NotAcceptable(f"Parameter 'f': '{f}' is not offered here; use one of {', '.join(allowed)}.")
        return f
    accept = request.headers.get("accept", "")
    if "html" in allowed and HTML in accept and "json" not in accept:
        return "html"
    return allowed[0]


def format_param(*allowed: str) -> Any:
    """The declaration of an ``f`` parameter offering ``allowed``, for ``Annotated[str | None, ...]``
    (``output_format`` reads the value)."""
    return Query(
        description=f"The representation: {', '.join(allowed)}; without it, from Accept ({allowed[0]} by default)",
        json_schema_extra={"enum": list(allowed)},
    )


def json_response(data: Any, media_type: str = JSON, status_code: int = 200, headers: dict | None = None) -> Response:
    """Serialize with orjson once and send the bytes."""
    return Response(orjson.dumps(data), status_code=status_code, media_type=media_type, headers=headers)


def link(href: str, rel: str, type_: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """An OGC/Web link object."""
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    out.update(extra)
    return out


def self_links(url: str, fmt: str, formats: dict[str, str], title: str) -> list[dict[str, Any]]:
    """``self`` for the format served and ``alternate`` for the others (formats: f value -> media type)."""
    sep = "&" if "?" in url else "?"
    return [
        link(f"{url}{sep}f={f}", "self" if f == fmt else "alternate", media, f"{title} ({f})")
        for f, media in formats.items()
    ]
