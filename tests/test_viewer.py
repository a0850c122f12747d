"""The /map viewer: the page and its files, then the real thing in headless Chromium.

The browser test starts the server with uvicorn on a free loopback port over the embedded sample
store, drives Debian's Chromium with playwright-core (tests/browser/map_check.mjs), and checks that
real vector tiles were drawn: features rendered per collection, a non-blank screenshot, properties
shown on click, the layer switcher working, and no request to any other host.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient

from server.app import CAPABILITIES, create_app
from server.raster.sample import write_sample_rasters
from server.settings import Settings
from tests.support import ROOT
from tests.support.api_keys import issue_key
from tests.support.glyphs import sample_glyphs

CHROMIUM = Path("/usr/bin/chromium")
MAPLIBRE_DIST = ROOT / "node_modules" / "maplibre-gl" / "dist"
MAP_CHECK = ROOT / "tests" / "browser" / "map_check.mjs"
PANEL_WIDTH_PX = 340  # the side panel; the map canvas is to its right
BACKGROUND = (0xF4, 0xF1, 0xEA)
IMAGERY_CAPABILITY = "server.raster.routes"  # imagery tiles are checked once this build serves them


def _settings(sample_dir: Path) -> Settings:
    return Settings(data_dir=sample_dir, base_url=None, edition="classified", maplibre_dir=MAPLIBRE_DIST)


@pytest.fixture(scope="module")
def client(sample_dir) -> TestClient:
    settings = _settings(sample_dir)
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "viewer tests")}) as c:
        yield c


class _Refs(HTMLParser):
    """Collects every src/href of a page and the map element's data-config."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.config: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.refs += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if attrs.get("id") == "map":
            self.config = json.loads(attrs["data-config"])


def test_map_page_loads_everything_from_this_server(client):
    r = client.get("/map")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = _Refs()
    page.feed(r.text)
    assert page.refs and all(ref.startswith(("http://testserver/", "data:")) for ref in page.refs)
    assert "http://testserver/map/static/viewer.js" in page.refs
    assert "http://testserver/map/lib/maplibre-gl.css" in page.refs
    config = page.config
    assert config["styleUrl"] == "http://testserver/styles/basemap?f=mapbox"
    assert {c["id"] for c in config["collections"]} >= {"land_survey", "parcels", "control_lines"}
    assert next(c for c in config["collections"] if c["id"] == "parcels")["idField"] == "unit_code"
    assert config["bounds"][0] < config["bounds"][2]


def test_library_and_viewer_files(client):
    r = client.get("/map/lib/maplibre-gl.mjs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "setWorkerUrl" in r.text
    assert client.get("/map/lib/maplibre-gl-worker.mjs").status_code == 200
    js = client.get("/map/static/viewer.js")
    assert js.status_code == 200 and "__mapReady" in js.text
    assert "https://" not in js.text and "http://" not in js.text  # no absolute URL to any host
    bad = ("/map/lib/package.json", "/map/lib/..%2F..%2Fpackage.json", "/map/static/nope.js",
           "/map/static/..%2Fviewer.py")
    for path in bad:
        r = client.get(path)
        assert r.status_code == 404 and r.json()["code"] == "NotFound", path


def test_missing_library_answers_503_with_the_fix(client, monkeypatch, tmp_path):
    monkeypatch.setattr(client.app.state.settings, "maplibre_dir", tmp_path / "absent")
    r = client.get("/map")
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    assert "npm ci" in r.text and "maplibre-gl.mjs" not in r.text
    r = client.get("/map/lib/maplibre-gl.mjs")
    assert r.status_code == 503 and "npm ci" in r.json()["description"]


# -- the real browser ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def viewer_data(sample_dir, tmp_path_factory) -> Path:
    """A data directory with the sample vector store and small sample imagery COGs."""
    data_dir = tmp_path_factory.mktemp("viewer-data")
    (data_dir / "onemap.gpkg").symlink_to(sample_dir / "onemap.gpkg")
    write_sample_rasters(data_dir, scale=16)
    sample_glyphs(data_dir / "onemap.gpkg", data_dir / "fonts")
    return data_dir


@pytest.fixture(scope="module")
def live_server(viewer_data):
    """uvicorn on a free loopback port over the viewer's data: (URL, an API key)."""
    port = _free_port()
    key = issue_key(_settings(viewer_data), "viewer browser test")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    env.update(ONEMAP_DATA_DIR=str(viewer_data), ONEMAP_EDITION="classified",
               ONEMAP_GLYPHS_DIR=str(viewer_data / "fonts"))
    cmd = [sys.executable, "-m", "uvicorn", "server.app:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a loaded CI machine starts slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/styles", headers={"X-API-Key": key}, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the server exited at start-up"
            time.sleep(0.2)
        else:
            pytest.fail("the server did not start in 60 s")
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser_run(live_server, tmp_path_factory) -> tuple[dict, Path, str]:
    """One Chromium session over the viewer: (report, screenshot directory, server URL)."""
    server, key = live_server
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (or run 'make test')")
    if not (ROOT / "node_modules" / "playwright-core").exists():
        pytest.fail("playwright-core is not installed: run 'npm ci' at the repository root")
    out_dir = tmp_path_factory.mktemp("screens")
    imagery = ["--imagery"] if IMAGERY_CAPABILITY in CAPABILITIES else []
    run = subprocess.run(
        [shutil.which("node") or "node", str(MAP_CHECK), f"{server}/map?api_key={key}", str(out_dir), *imagery],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert "error" not in report, report.get("error")
    assert report["ready"], "the map never became idle"
    return report, out_dir, server


def _map_pixels(png: Path) -> np.ndarray:
    with rasterio.open(png) as src:
        rgb = src.read((1, 2, 3))
    return rgb[:, 60:-40, PANEL_WIDTH_PX + 10:].reshape(3, -1).T  # below the header, right of the panel


def _assert_drawn(png: Path) -> None:
    pixels = _map_pixels(png)
    colours = np.unique(pixels // 8, axis=0)
    drawn = np.any(np.abs(pixels.astype(int) - BACKGROUND) > 12, axis=1).mean()
    assert len(colours) > 12 and drawn > 0.5, (png.name, len(colours), drawn)


def test_the_map_draws_real_tiles_in_chromium(browser_run):
    report, shots, server = browser_run
    requests = report["requests"][: report["vectorRequestCount"]]

    # Every request went to this server, and none failed.
    assert all(r["url"].startswith(server) for r in report["requests"])
    assert not report["failed"], report["failed"]
    bad = [r for r in requests if r["status"] >= 400]
    assert not bad, bad
    tiles = [r for r in requests if "/tiles/WebMercatorQuad/" in r["url"] and r["status"] == 200]
    assert any(r["type"].startswith("application/vnd.mapbox-vector-tile") for r in tiles)
    assert not report["consoleErrors"][: report["vectorConsoleErrorCount"]], report["consoleErrors"]

    # Features from the tiles are on the canvas: the overview, then a close-up with parcels and buildings.
    assert report["start"]["counts"].get("land_survey", 0) > 10, report["start"]
    assert report["start"]["counts"].get("control_lines", 0) > 0, report["start"]
    assert report["closeup"]["counts"].get("parcels", 0) > 0, report["closeup"]
    assert report["closeup"]["counts"].get("buildings", 0) > 0, report["closeup"]

    # The layer switcher turns a collection off; the click panel shows a feature's properties.
    assert ["land_survey", True] in report["layerSwitches"] and ["planning_zones", False] in report["layerSwitches"]
    assert "land_survey" not in report["afterSwitchOff"] and report["afterSwitchOff"].get("parcels", 0) > 0
    assert report["click"]["collections"], "no feature shown after a click"
    assert "land_code" in report["click"]["keys"] or "line_type" in report["click"]["keys"]
    assert "WebMercatorQuad" in report["tmsOptions"]

    # The screenshots are a drawn map, not a blank canvas.
    _assert_drawn(shots / "start.png")
    _assert_drawn(shots / "closeup.png")


def test_imagery_and_its_time_switch_in_chromium(browser_run):
    report, shots, server = browser_run
    imagery = report["imagery"]
    if imagery is None:
        pytest.skip(f"no imagery to check: no imagery collection, or {IMAGERY_CAPABILITY} not in CAPABILITIES")
    requests = report["requests"][report["vectorRequestCount"]:]
    tiles = [r for r in requests if f"/collections/{imagery['id']}/tiles/WebMercatorQuad/" in r["url"]]
    for time_ in imagery["times"]:
        stamped = [r for r in tiles if f"datetime={quote(time_, safe='')}" in r["url"]]
        assert stamped, f"no imagery tile requested for {time_}"
        assert all(r["status"] == 200 and r["type"].startswith("image/jpeg") for r in stamped), stamped
    assert not report["consoleErrors"][report["vectorConsoleErrorCount"]:], report["consoleErrors"]
    _assert_drawn(shots / "imagery.png")


def test_labels_from_this_servers_glyphs_and_the_legend_in_chromium(browser_run):
    """Town names and parcel codes are drawn from the glyphs this server serves; the legend explains the
    land-use classes and control lines; the imagery panel tells where imagery exists."""
    report, shots, server = browser_run
    glyphs = [r for r in report["requests"] if "/fonts/" in r["url"]]
    assert glyphs and all(r["status"] == 200 and r["type"] == "application/x-protobuf" for r in glyphs), glyphs
    assert all(r["url"].startswith(f"{server}/fonts/") for r in glyphs)
    towns = report["labels"]["closeup"].get("admin_boundaries-town-label", {"count": 0, "texts": []})
    assert towns["count"] > 0 and any(t.endswith(("镇", "街道", "乡")) for t in towns["texts"]), report["labels"]
    parcels = report["labels"]["parcels"].get("parcels-label", {"count": 0, "texts": []})
    assert parcels["count"] > 0 and all(len(t) == 28 for t in parcels["texts"]), report["labels"]
    codes = set(report["legend"]["codes"])
    assert {f"{i:02d}" for i in range(13)} <= codes, codes
    assert {"ecological_red_line", "permanent_basic_farmland", "urban_development_boundary"} <= codes
    assert "耕地" in report["legend"]["text"] and "生态保护红线" in report["legend"]["text"]
    if report["imagery"] is not None:
        assert report["imagery"]["id"] in report["legend"]["extents"]
        order = report["imagery"]["order"]
        raster = order.index(f"{report['imagery']['id']}-raster")
        assert order.index("land_survey-fill") < raster < order.index("control_lines-ecological-line"), order
        assert "imagery-extent" in order


def test_a_session_draws_the_map_again_without_the_key_in_chromium(browser_run):
    """/map?api_key=K once: the page sets the session cookie, no later request carries the key,
    and /map opened again without it still draws real tiles."""
    report, shots, server = browser_run
    keyed = [r["url"] for r in report["requests"] if "api_key" in r["url"]]
    assert keyed == [report["requests"][0]["url"]] and "/map?" in keyed[0], keyed
    assert "api_key" not in report["reload"]["addressAfterLoad"], "the key stayed in the address bar"
    again = report["requests"][report["reload"]["from"]:]
    assert again[0]["url"] == f"{server}/map" and again[0]["status"] == 200
    tiles = [r for r in again if "/tiles/WebMercatorQuad/" in r["url"]]
    assert tiles and all(r["status"] in (200, 204) for r in tiles), tiles
    assert any(r["status"] == 200 and r["type"].startswith("application/vnd.mapbox-vector-tile") for r in tiles)
    assert report["reload"]["counts"].get("land_survey", 0) > 10, report["reload"]
    _assert_drawn(shots / "reloaded.png")


def test_draw_a_site_and_open_a_parcel_profile_in_chromium(browser_run):
    report, _, server = browser_run
    compliance = report["compliance"]
    assert compliance["status"] == 200 and compliance["drawn"] == "Polygon", compliance
    assert compliance["verdict"] in ("approve", "flag", "conflict", "reject"), compliance
    assert "land_survey" in compliance["layers"] and "parcels" in compliance["layers"], compliance
    profile = report["profile"]
    assert profile and profile["href"] and profile["href"].startswith(f"{server}/codes/"), profile
    assert profile["status"] == 200 and profile["type"].startswith("text/html") and profile["hasMap"], profile
