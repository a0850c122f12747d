"""Cross-origin access: preflights without a key and unaudited, CORS headers on every response.

The headers are checked on routed responses, fast-path cache hits, 304s and refusals, with a list
of origins (echoed, ``Vary: Origin`` everywhere) and with ``*`` (constant headers, no ``Vary: Origin``).
A real browser on a second origin is in tests/test_cors_browser.py.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server.app import create_app
from server.policy.cors import allowed_origins
from server.settings import Settings
from server.stores import open_store
from tests.conftest import keyed_client, settings_for

SITE = "http://maps.example.org:8080"
TILE = "/collections/land_survey/tiles/WebMercatorQuad/12/3430/1691"


def _vary(response) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("vary", "").split(",") if v.strip()}


@pytest.fixture(scope="module")
def listed(backend, request):
    """A keyed client on an app allowing one origin (cache hits answered by the fast path, and said so)."""
    settings = settings_for(backend, request, cors_origins=SITE, cache_debug_header=True)
    with keyed_client(settings, "cors tests") as c:
        yield c


def test_edition_defaults_and_bad_settings():
    assert allowed_origins(Settings(edition="internet")) == ("*",)
    assert allowed_origins(Settings(edition="government")) == ()
    assert allowed_origins(Settings(edition="internet", cors_origins="")) == ()
    assert Settings(cors_origins=f" {SITE}/ , https://b.example").cors_origins == (SITE, "https://b.example")
    for bad in ("maps.example.org", "https://a.example/path", "ftp://a.example"):
        with pytest.raises(ValidationError, match="is not an origin"):
            Settings(cors_origins=bad)


def test_preflight_needs_no_key_and_allows_the_key_header(listed):
    headers = {"Origin": SITE, "Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": "x-api-key, accept"}
    r = listed.options("/collections/parcels/items", headers={**headers, "X-API-Key": ""})
    assert r.status_code == 204 and r.content == b""
    assert r.headers["access-control-allow-origin"] == SITE
    assert "X-API-Key" in r.headers["access-control-allow-headers"]
    assert "GET" in r.headers["access-control-allow-methods"] and "POST" in r.headers["access-control-allow-methods"]
    assert "origin" in _vary(r)


def test_preflight_refusals_name_the_problem(listed):
    other = listed.options("/collections", headers={"Origin": "https://evil.example",
                                                    "Access-Control-Request-Method": "GET"})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    assert "https://evil.example" in other.json()["description"]
    header = listed.options("/collections", headers={"Origin": SITE, "Access-Control-Request-Method": "GET",
                                                     "Access-Control-Request-Headers": "x-secret"})
    assert header.status_code == 403 and "x-secret" in header.json()["description"]
    method = listed.options("/collections", headers={"Origin": SITE, "Access-Control-Request-Method": "PUT"})
    assert method.status_code == 403 and "PUT" in method.json()["description"]


def test_responses_carry_the_headers_a_client_needs(listed):
    r = listed.get("/collections/parcels/items", params={"limit": 2}, headers={"Origin": SITE})
    assert r.status_code == 200 and len(r.json()["features"]) == 2
    assert r.headers["access-control-allow-origin"] == SITE and "origin" in _vary(r)
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "content-crs", "link", "location", "retry-after"} <= exposed
    # no Origin: no grant, but Vary still says the answer depends on it (a CDN must not reuse it)
    plain = listed.get("/collections/parcels/items", params={"limit": 2})
    assert "access-control-allow-origin" not in plain.headers and "origin" in _vary(plain)
    # another origin is told nothing it may read
    other = listed.get("/collections/parcels/items", params={"limit": 2}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cache_hits_304s_and_refusals_carry_them_too(listed):
    first = listed.get(TILE, headers={"Origin": SITE})
    again = listed.get(TILE, headers={"Origin": SITE})
    assert again.headers.get("x-cache") == "hit", "the second read is a fast-path hit"
    for r in (first, again):
        assert r.headers["access-control-allow-origin"] == SITE and "origin" in _vary(r)
        assert "accept-encoding" in _vary(r) or r.status_code == 204
    etag = listed.get("/collections/parcels", headers={"Origin": SITE}).headers["etag"]
    not_modified = listed.get("/collections/parcels", headers={"Origin": SITE, "If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.headers["access-control-allow-origin"] == SITE
    refused = listed.get("/collections", headers={"Origin": SITE, "X-API-Key": "om_nobody.nothing"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == SITE
    assert refused.json()["code"] == "Unauthorized"  # a page on another origin can read why


def test_star_sends_constant_headers_without_vary_origin(backend, request):
    settings = settings_for(backend, request, cors_origins="*")
    with keyed_client(settings, "cors star") as c:
        for headers in ({"Origin": SITE}, {}):
            r = c.get("/collections/parcels/items", params={"limit": 1}, headers=headers)
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
            assert "origin" not in _vary(r)
        pre = c.options(TILE, headers={"Origin": "https://anyone.example", "Access-Control-Request-Method": "GET",
                                       "Access-Control-Request-Headers": "X-API-Key"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"


def test_no_origin_allowed_by_default_and_preflights_unaudited(backend, request):
    settings = settings_for(backend, request)
    probe = "/collections/cors_preflight_probe/items"
    with TestClient(create_app(settings)) as c:
        r = c.get("/conformance", headers={"Origin": SITE})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    with TestClient(create_app(settings.model_copy(update={"cors_origins": (SITE,)}))) as c:
        pre = c.options(probe, headers={"Origin": SITE, "Access-Control-Request-Method": "GET"})
        assert pre.status_code == 204
    with open_store(settings).opened_admin() as store:  # the app has stopped: its audit queue is written
        paths = {r.path for r in store.query_audit(None, None, None, 1000)}
    assert probe not in paths and "/conformance" in paths
