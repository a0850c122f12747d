"""HTML pages of every route a browser opens: tile matrix sets, tilesets, styles, STAC, processes, jobs
and the items pages (small map, page-size control), selected by ``f=html`` or a browser's Accept.

The content of each page is checked against the JSON document of the same route; every link and
script stays on this server and no page hands a key on.
"""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser

import pytest

from tests.support.api_keys import issue_key
from tests.support.rasters import raster_settings

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SITE = {"type": "Polygon", "coordinates": [[[121.50, 29.80], [121.53, 29.80], [121.53, 29.83], [121.50, 29.83],
                                            [121.50, 29.80]]]}


class Page(HTMLParser):
    """Every href/src of a page, its table cells, its selects and its embedded features."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.cells: list[str] = []
        self.options: list[str] = []
        self.features: dict | None = None
        self.text = text
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.refs += [v for k, v in attrs.items() if k in ("src", "href", "data-style") and v]
        if tag == "option":
            self.options.append(attrs["value"])
        self._in = attrs.get("id") if tag == "script" else tag

    def handle_data(self, data):
        if self._in == "page-features":
            self.features = json.loads(data)
        elif self._in in ("td", "a") and data.strip():
            self.cells.append(data.strip())

    def handle_endtag(self, tag):
        self._in = None


def page(client, path: str, **headers) -> Page:
    """The page of ``path`` (200, HTML, every reference on this server)."""
    r = client.get(path, headers=headers)
    assert r.status_code == 200, (path, r.text[:300])
    assert r.headers["content-type"].startswith("text/html") and "Accept" in r.headers["vary"]
    p = Page(r.text)
    assert all(ref.startswith(("http://testserver/", "data:")) for ref in p.refs), (path, p.refs)
    assert "api_key" not in r.text.lower()
    return p


def test_tile_matrix_sets_and_tilesets(raster_client):
    listing = raster_client.get("/tileMatrixSets").json()
    p = page(raster_client, "/tileMatrixSets", accept=BROWSER_ACCEPT)
    for t in listing["tileMatrixSets"]:
        assert f"http://testserver/tileMatrixSets/{t['id']}?f=html" in p.refs
    one = raster_client.get("/tileMatrixSets/CGCS2000Quad").json()
    p = page(raster_client, "/tileMatrixSets/CGCS2000Quad?f=html")
    assert [m["id"] for m in one["tileMatrices"]] == [c for c in p.cells if c in {m["id"] for m in one["tileMatrices"]}]
    for path in ("/collections/parcels/tiles", "/tiles", "/collections/imagery/tiles"):
        sets = raster_client.get(path).json()["tilesets"]
        p = page(raster_client, f"{path}?f=html")
        pages = [r for r in p.refs if r.startswith(f"http://testserver{path}/") and r.endswith("f=html")]
        assert len(pages) == len(sets)
    tileset = raster_client.get("/tiles/WebMercatorQuad").json()
    p = page(raster_client, "/tiles/WebMercatorQuad", accept=BROWSER_ACCEPT)
    assert {layer["id"] for layer in tileset["layers"]} <= set(p.cells)
    assert page(raster_client, "/collections/dem/tiles/WorldCRS84Quad?f=html").cells


def test_json_stays_the_default_and_other_formats_stay(raster_client):
    assert raster_client.get("/tileMatrixSets").headers["content-type"] == "application/json"
    tilejson = raster_client.get("/tiles/WebMercatorQuad?f=tilejson").json()
    assert tilejson["tilejson"].startswith("3.")
    assert raster_client.get("/styles/basemap").json()["version"] == 8
    assert raster_client.get("/stac/collections", headers={"accept": "application/json"}).json()["collections"]
    assert raster_client.get("/tileMatrixSets/Nope?f=html").status_code == 404


def test_styles_pages_preview_the_style(raster_client):
    styles = raster_client.get("/styles").json()["styles"]
    p = page(raster_client, "/styles?f=html")
    assert {f"http://testserver/styles/{s['id']}?f=html" for s in styles} <= set(p.refs)
    doc = raster_client.get("/styles/parcels").json()
    p = page(raster_client, "/styles/parcels", accept=BROWSER_ACCEPT)
    assert "http://testserver/styles/parcels?f=mapbox" in p.refs
    assert "http://testserver/map/static/pagemap.js" in p.refs
    assert {layer["id"] for layer in doc["layers"]} <= set(p.cells)


def test_queryables_conformance_and_style_metadata_pages(raster_client):
    for path in ("/collections/parcels/queryables", "/collections/parcels/sortables", "/stac/queryables"):
        names = set(raster_client.get(path).json()["properties"])
        assert names and names <= set(page(raster_client, f"{path}?f=html").cells), path
    p = page(raster_client, "/stac/conformance", accept=BROWSER_ACCEPT)
    assert "https://api.stacspec.org/v1.0.0/item-search" in p.text
    meta = raster_client.get("/styles/land_survey/metadata").json()
    p = page(raster_client, "/styles/land_survey/metadata?f=html")
    assert {layer["id"] for layer in meta["layers"]} <= set(p.cells)
    assert "http://testserver/collections/land_survey/items?f=html" in p.refs


def test_stac_pages(raster_client):
    p = page(raster_client, "/stac?f=html")
    assert "http://testserver/stac/collections/imagery?f=html" in p.refs
    p = page(raster_client, "/stac/collections?f=html")
    assert {"dem", "imagery"} <= set(p.cells)
    p = page(raster_client, "/stac/collections/imagery?f=html")
    assert "http://testserver/stac/collections/imagery/items?f=html" in p.refs
    items = raster_client.get("/stac/collections/imagery/items?limit=1").json()
    p = page(raster_client, "/stac/collections/imagery/items?limit=1&f=html")
    assert [f["id"] for f in p.features["features"]] == [f["id"] for f in items["features"]]
    assert {"10", "50", "100", "500"} <= set(p.options)
    nxt = next(r for r in p.refs if "token=" in r)
    assert "f=html" in nxt and "limit=1" in nxt
    first = items["features"][0]["id"]  # a sheet of an acquisition
    one = page(raster_client, f"/stac/collections/imagery/items/{first}", accept=BROWSER_ACCEPT)
    assert one.features["features"][0]["geometry"]["type"] == "Polygon"
    assert "data" in one.cells


def test_processes_and_jobs_pages(raster_client):
    p = page(raster_client, "/processes?f=html")
    assert "http://testserver/processes/site-compliance?f=html" in p.refs
    desc = raster_client.get("/processes/site-compliance").json()
    p = page(raster_client, "/processes/site-compliance", accept=BROWSER_ACCEPT)
    assert set(desc["inputs"]) <= set(p.cells)
    r = raster_client.post("/processes/site-compliance/execution", json={"inputs": {"geometry": SITE}},
                           headers={"Prefer": "respond-async"})
    job_id = r.json()["jobID"]
    deadline = time.monotonic() + 30
    while raster_client.get(f"/jobs/{job_id}").json()["status"] not in ("successful", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    p = page(raster_client, "/jobs?f=html")
    assert f"http://testserver/jobs/{job_id}?f=html" in p.refs
    p = page(raster_client, f"/jobs/{job_id}?f=html")
    assert "successful" in p.cells and "site-compliance" in p.cells


def test_a_key_in_the_address_goes_into_no_link(raster_dir):
    from fastapi.testclient import TestClient

    from server.app import create_app

    settings = raster_settings(raster_dir)
    key = issue_key(settings, "html pages")
    with TestClient(create_app(settings)) as anonymous:
        for path in ("/tileMatrixSets", "/tiles", "/styles", "/stac/collections/imagery/items", "/processes"):
            r = anonymous.get(path, params={"f": "html", "api_key": key, "limit": 1} if "items" in path
                              else {"f": "html", "api_key": key})
            assert r.status_code == 200, path
            assert key not in r.text and "api_key" not in r.text, path


def test_features_items_pages_have_a_map_and_a_page_size(client):
    doc = client.get("/collections/parcels/items?limit=5").json()
    p = page(client, "/collections/parcels/items?limit=5&f=html")
    assert [f["id"] for f in p.features["features"]] == [f["id"] for f in doc["features"]]
    assert "5" in p.options and "100" in p.options
    assert any("cursor=" in r and "limit=5" in r for r in p.refs)
    fid = doc["features"][0]["id"]
    one = page(client, f"/collections/parcels/items/{fid}?f=html")
    assert one.features["features"][0]["id"] == fid
    projected = page(client, "/collections/parcels/items?limit=2&f=html&crs=http://www.opengis.net/def/crs/EPSG/0/4490")
    assert projected.features is None, "no lon/lat map of coordinates in another CRS"


@pytest.fixture(scope="module")
def client(backend, request):
    """A keyed client over one backend (items pages are shared behaviour)."""
    from tests.conftest import keyed_client, settings_for

    with keyed_client(settings_for(backend, request)) as c:
        yield c
