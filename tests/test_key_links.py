"""A client that authenticates with ``?api_key=`` finds the key on the links it must follow.

Styles' tile URLs, TileJSON ``tiles``, tileset and tile matrix set links carry the parameter when
the request came with it (and only then: never with the header, never in a cached response), so
MapLibre given only a style URL and OpenLayers given only a tileset URL work with no request hook
(in Chromium: tests/test_cors_browser.py). Tile matrix sets hold no data and need no key at all.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.conftest import settings_for
from tests.support.api_keys import issue_key


@pytest.fixture(scope="module")
def setup(backend, request):
    """(a client sending no credential of its own, a key, another key with the same access)."""
    settings = settings_for(backend, request)
    key, other = issue_key(settings, "query-param client"), issue_key(settings, "second query-param client")
    with TestClient(create_app(settings)) as c:
        yield c, key, other


def _urls(value) -> list[str]:
    """Every URL (href, tiles, url) in a document."""
    if isinstance(value, dict):
        return [u for k, v in value.items()
                for u in ([v] if k in ("href", "url") and isinstance(v, str) else _urls(v))]
    if isinstance(value, list):
        return [u for v in value for u in ([v] if isinstance(v, str) and "://" in v else _urls(v))]
    return []


def _keyed(url: str) -> str | None:
    return (parse_qs(urlsplit(url).query).get("api_key") or [None])[0]


def _fill(template: str) -> str:
    """A tile of the sample county out of a tile URL template (z/y/x or tileMatrix/tileRow/tileCol)."""
    for names, value in ((("{z}", "{tileMatrix}"), "12"), (("{y}", "{tileRow}"), "1691"),
                         (("{x}", "{tileCol}"), "3430")):
        for name in names:
            template = template.replace(name, value)
    return template


def test_style_tile_urls_carry_the_key_and_answer(setup):
    c, key, _ = setup
    style = c.get("/styles/basemap", params={"api_key": key})
    assert style.status_code == 200
    tiles = [u for s in style.json()["sources"].values() for u in s.get("tiles", [])]
    assert tiles and all(_keyed(u) == key for u in tiles)
    tile = c.get(_fill(tiles[0]))  # the URL as given, nothing added
    assert tile.status_code in (200, 204), tile.text
    assert c.get(_fill(tiles[0]).split("?")[0]).status_code == 401  # the key did the work


def test_tilejson_tilesets_and_lists_carry_the_key(setup):
    c, key, _ = setup
    tilejson = c.get("/collections/land_survey/tiles/WebMercatorQuad", params={"f": "tilejson", "api_key": key})
    assert all(_keyed(u) == key for u in tilejson.json()["tiles"])
    assert c.get(_fill(tilejson.json()["tiles"][0])).status_code in (200, 204)
    for path in ("/collections/land_survey/tiles/CGCS2000Quad", "/tiles/WebMercatorQuad",
                 "/collections/imagery/tiles/WebMercatorQuad", "/collections/land_survey/tiles", "/tiles",
                 "/styles", "/styles/land_survey/metadata", "/tileMatrixSets"):
        doc = c.get(path, params={"api_key": key})
        assert doc.status_code == 200, (path, doc.text)
        urls = _urls(doc.json())
        assert urls and all(_keyed(u) == key for u in urls), (path, urls)
    tileset = c.get("/collections/land_survey/tiles/WebMercatorQuad", params={"api_key": key}).json()
    item = next(lk["href"] for lk in tileset["links"] if lk["rel"] == "item")
    assert c.get(_fill(item)).status_code in (200, 204)


def test_header_callers_get_plain_links_and_keys_never_mix(setup):
    c, key, other = setup
    plain = c.get("/styles/basemap", headers={"X-API-Key": key}, params={"api_key": key}).json()
    assert key not in json.dumps(plain)
    # the second key gets its own key back, never the first one's (these responses are not cached for them)
    for path in ("/styles/basemap", "/collections/parcels/tiles/WebMercatorQuad", "/collections/parcels",
                 "/collections", "/"):
        first, second = c.get(path, params={"api_key": key}).text, c.get(path, params={"api_key": other}).text
        assert key in first and other not in first and other in second and key not in second, path
        assert key not in c.get(path, headers={"X-API-Key": key}).text  # nor to a header caller after them
    # cached documents never carry a key
    for k in (key, other):
        assert k not in c.get("/collections/parcels/items", params={"api_key": k, "limit": 1}).text


def test_tile_matrix_sets_need_no_key(setup):
    c, _, _ = setup
    listed = c.get("/tileMatrixSets")
    assert listed.status_code == 200
    ids = {t["id"] for t in listed.json()["tileMatrixSets"]}
    assert {"WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"} <= ids
    for tms in ids:
        assert c.get(f"/tileMatrixSets/{tms}").json()["id"] == tms
    assert c.get("/tileMatrixSets/NoSuchGrid").status_code == 404
    assert c.get("/tileMatrixSetsX").status_code == 401  # only the sets themselves
    assert c.get("/collections/parcels/tiles").status_code == 401
