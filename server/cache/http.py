"""HTTP caching: content-coding negotiation, ETag comparison, Cache-Control, and raw headers.

Every cached response leaves through ``raw_headers`` (routed requests and the fast path alike),
so the validators and caching headers are the same whichever way a response was served.

ETags are weak (``W/"..."``): the gzip, brotli and identity bodies of an entry are the same
representation in different content codings, and ``If-None-Match`` uses the weak comparison.
"""

from __future__ import annotations

from functools import lru_cache

from server.cache.entry import Entry

VARY = "Accept-Encoding, Accept, X-API-Key"
VARY_LANGUAGE = VARY + ", Accept-Language"


@lru_cache(maxsize=512)
def _codings(accept_encoding: str) -> tuple[bool, bool]:
    """(br acceptable, gzip acceptable) from an Accept-Encoding value, honouring q=0 and ``*`` (gzip only)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[name.strip()] = q
    star = weights.get("*", 0.0)  # "any coding" gets gzip, which every client decodes; brotli only by name
    return weights.get("br", 0.0) > 0, weights.get("gzip", weights.get("x-gzip", star)) > 0


def choose_encoding(accept_encoding: str, entry: Entry) -> str | None:
    """``br`` or ``gzip`` when the client takes it and the entry has that copy; ``None`` for identity."""
    if not accept_encoding or entry.gzip is None and entry.br is None:
        return None
    br_ok, gzip_ok = _codings(accept_encoding)
    if br_ok and entry.br is not None:
        return "br"
    if gzip_ok and entry.gzip is not None:
        return "gzip"
    return None


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison of ``If-None-Match`` against our ETag (``*`` matches any current entry)."""
    value = if_none_match.strip()
    if value == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in value.split(","))


def cache_control(public: bool, max_age: int) -> str:
    """``public`` for anonymous internet-edition responses, ``private`` otherwise; both with max-age."""
    return f"{'public' if public else 'private'}, max-age={max_age}"


def raw_headers(entry: Entry, encoding: str | None, control: str, status: int, x_cache: str | None) -> list:
    """The response headers as ASGI byte pairs, memoized on the entry per variant.

    ``x_cache`` (the cache level that answered) is sent only when given: the cache debug setting.
    """
    memo_key = (encoding, control, status, x_cache)
    found = entry._raw.get(memo_key)
    if found is not None:
        return found
    out = [(b"etag", entry.etag.encode()), (b"cache-control", control.encode())]
    if x_cache is not None:
        out.append((b"x-cache", x_cache.encode()))
    out += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in entry.headers]
    if status == 200:
        body = entry.body(encoding)
        out.append((b"content-length", str(len(body)).encode()))
        if entry.media_type:
            out.append((b"content-type", entry.media_type.encode("latin-1")))
        if encoding:
            out.append((b"content-encoding", encoding.encode()))
    if len(entry._raw) < 32:
        entry._raw[memo_key] = out
    return out


def status_and_body(entry: Entry, if_none_match: str | None, encoding: str | None) -> tuple[int, bytes]:
    """304 with no body when the client's copy is current, else the entry's status and chosen body."""
    if if_none_match and etag_matches(if_none_match, entry.etag):
        return 304, b""
    if entry.status != 200:
        return entry.status, b""
    return 200, entry.body(encoding)
