"""Request helpers shared by every capability: base URL, format negotiation, JSON responses."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Query, Request
from fastapi.responses import Response

from server.credentials import KEY_HEADER_NAME, KEY_PARAMS
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


# the media types each ``f`` value stands for when the Accept header chooses
MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "json": (JSON, GEOJSON, "application/schema+json"),
    "html": (HTML, "application/xhtml+xml"),
    "csv": ("text/csv",),
    "fgb": ("application/flatgeobuf",),
    "mapbox": ("application/vnd.mapbox.style+json",),
    "tilejson": ("application/vnd.mapbox.tile+json",),
    "openapi": (OPENAPI,),
}


@lru_cache(maxsize=256)
def accept_ranges(accept: str) -> tuple[tuple[str, str, float], ...]:
    """An Accept header as (type, subtype, q) media ranges; parameters other than ``q`` are ignored."""
    ranges = []
    for item in accept.lower().split(","):
        media, *params = item.strip().split(";")
        kind, _, sub = media.strip().partition("/")
        if not kind or not sub:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((kind, sub, q))
    return tuple(ranges)


def quality(ranges: tuple[tuple[str, str, float], ...], media: str) -> float:
    """The q the most specific matching range gives ``media`` (0 when none matches; RFC 9110 12.5.1)."""
    kind, _, sub = media.split(";")[0].lower().partition("/")
    best, specificity = 0.0, -1
    for r_kind, r_sub, q in ranges:
        rank = 2 if (r_kind, r_sub) == (kind, sub) else 1 if r_kind == kind and r_sub == "*" else \
            0 if (r_kind, r_sub) == ("*", "*") else -1
        if rank > specificity:
            best, specificity = q, rank
    return best


def negotiate(accept: str, offered: tuple[str, ...]) -> str | None:
    """The ``f`` value among ``offered`` the Accept header ranks highest (the first on a tie), or None
    when the header is absent or takes none of them."""
    ranges = accept_ranges(accept)
    if not ranges:
        return None
    scores = [(max((quality(ranges, m) for m in MEDIA_TYPES.get(f, ())), default=0.0), -i, f)
              for i, f in enumerate(offered)]
    score, _, chosen = max(scores)
    return chosen if score > 0 else None


def output_format(request: Request, allowed: tuple[str, ...] = ("json", "html")) -> str:
    """The representation asked for: ``f`` wins, then Accept (q-values honoured); the first allowed one by
    default, also when Accept takes none of them."""
    f = request.query_params.get("f")
    if f is not None:
        if f not in allowed:
            raise NotAcceptable(f"Parameter 'f': '{f}' is not offered here; use one of {', '.join(allowed)}.")
        return f
    return negotiate(request.headers.get("accept", ""), allowed) or allowed[0]


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


# where documents hold URLs a client fetches next: link objects, TileJSON and style sources, style resources
_URL_KEYS = frozenset({"href", "url", "tiles", "sprite", "glyphs", "data"})


def key_query(request: Request) -> str:
    """``api_key=...`` when the request was authenticated by that query parameter (and not by the header),
    else ``""``: what a client that can send nothing else needs on the URLs it follows next."""
    if KEY_HEADER_NAME in request.headers:
        return ""
    for name in KEY_PARAMS:
        value = request.query_params.get(name)
        if value:
            return urlencode({name: value})
    return ""


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _carried(value: Any, base: str, query: str, url_key: bool) -> Any:
    if isinstance(value, str):
        return _with_query(value, query) if url_key and value.startswith(base) else value
    if isinstance(value, list):
        return [_carried(v, base, query, url_key) for v in value]
    if isinstance(value, dict):
        return {k: _carried(v, base, query, k in _URL_KEYS) for k, v in value.items()}
    return value


def carry_key(request: Request, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the caller's ``api_key`` parameter added to every URL on this server that it holds
    (links, tile templates, TileJSON and style sources), when the caller authenticated by that parameter.

    For clients given one URL with the key (MapLibre with a style, OpenLayers with a tileset, QGIS):
    the tiles and documents they follow from it then answer too. Only for responses that are never
    cached (the key would reach another caller): styles, tilesets, TileJSON and tile matrix set lists.
    """
    query = key_query(request)
    if not query:
        return doc
    return _carried(doc, base_url(request), query, False)
