"""A web map on another origin, in headless Chromium (tests/browser/cross_origin.mjs).

This server runs in the keyed classified edition with ``ONEMAP_CORS_ORIGINS`` naming a second
loopback origin, a plain static server on another port that serves the page and the libraries
(npm's maplibre-gl and ol). The page reads a style, items (with the exposed ETag, Content-Crs and
Link) and a tile with fetch and the ``X-API-Key`` header (preflighted), and four maps draw: MapLibre
with the header, MapLibre given only a style URL with ``?api_key=``, and OpenLayers' OGCVectorTile
and OGCMapTile given only a tileset URL with it, no request hook anywhere.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio

from server.raster.sample import write_sample_rasters
from server.settings import Settings
from tests.support import ROOT
from tests.support.api_keys import issue_key

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = ROOT / "tests" / "browser" / "cross_origin.mjs"
LIBRARIES = {"maplibre": ROOT / "node_modules" / "maplibre-gl" / "dist", "ol": ROOT / "node_modules" / "ol"}
PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<link rel="stylesheet" href="maplibre/maplibre-gl.css"><link rel="stylesheet" href="ol/ol.css">
<script src="ol/dist/ol.js"></script>
<script type="module">import * as m from "./maplibre/maplibre-gl.mjs";
window.maplibregl = m; window.__libs = true;</script>
<style>body{margin:0;display:grid;grid-template-columns:480px 480px;gap:8px}div.m{width:480px;height:380px}</style>
</head><body><div class="m" id="m1"></div><div class="m" id="m2"></div>
<div class="m" id="m3"></div><div class="m" id="m4"></div></body></html>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def page_origin(tmp_path_factory):
    """The second origin: a static server for the page and the libraries; yields (page URL, origin)."""
    for folder in LIBRARIES.values():
        if not folder.exists():
            pytest.fail(f"{folder} is missing: run 'npm ci' at the repository root")
    site = tmp_path_factory.mktemp("other-origin")
    (site / "index.html").write_text(PAGE, encoding="utf-8")
    for name, folder in LIBRARIES.items():
        (site / name).symlink_to(folder)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield f"{origin}/index.html", origin
    finally:
        httpd.shutdown()


@pytest.fixture(scope="module")
def served(sample_dir, tmp_path_factory, page_origin):
    """This server (uvicorn) allowing the page's origin: (URL, key)."""
    data_dir = tmp_path_factory.mktemp("cors-data")
    (data_dir / "onemap.gpkg").symlink_to(sample_dir / "onemap.gpkg")
    write_sample_rasters(data_dir, scale=16)
    key = issue_key(Settings(data_dir=data_dir, edition="classified"), "cross-origin page")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    env.update(ONEMAP_DATA_DIR=str(data_dir), ONEMAP_EDITION="classified", ONEMAP_CORS_ORIGINS=page_origin[1])
    port = _free_port()
    cmd = [sys.executable, "-m", "uvicorn", "server.app:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/conformance", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(served, page_origin, tmp_path_factory):
    """One Chromium run: (report, screenshot directory, server URL, page origin)."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (or run 'make test')")
    url, key = served
    shots = tmp_path_factory.mktemp("cors-shots")
    run = subprocess.run([shutil.which("node") or "node", str(SCRIPT), page_origin[0], url, key, str(shots)],
                         cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert "error" not in report, report["error"]
    return report, shots, url, page_origin[1]


def _drawn(png: Path) -> tuple[int, float]:
    """Distinct colours (coarse) and the share of pixels drawn over the white page."""
    with rasterio.open(png) as src:
        rgb = src.read((1, 2, 3)).reshape(3, -1).T
    return len(np.unique(rgb // 8, axis=0)), float(np.any(rgb < 245, axis=1).mean())


def test_fetch_from_another_origin_reads_style_items_tile_and_headers(browser):
    report, _, url, origin = browser
    assert report["origin"] == origin != url
    fetched = report["fetched"]
    assert fetched["style"]["status"] == 200 and fetched["style"]["layers"] > 3
    items = fetched["items"]
    assert items["status"] == 200 and items["features"] == 3
    assert items["etag"] and items["contentCrs"] == "<http://www.opengis.net/def/crs/EPSG/0/4549>"
    assert 'rel="next"' in (items["link"] or "") or items["link"] is None
    assert fetched["tile"]["status"] == 200 and fetched["tile"]["bytes"] > 100
    assert fetched["tile"]["type"].startswith("application/vnd.mapbox-vector-tile")
    # the X-API-Key header makes each of these a preflighted request: the browser let them through


def test_every_map_draws_with_no_failed_request(browser):
    report, shots, url, _ = browser
    assert not report["failed"], report["failed"]
    refused = [r for r in report["requests"] if r["url"].startswith(url) and r["status"] >= 400]
    assert not refused, refused
    assert not report["consoleErrors"], report["consoleErrors"]
    maps = report["maps"]
    for name in ("maplibreHeader", "maplibreStyleUrl"):
        assert maps[name]["features"] > 50 and not maps[name]["errors"], (name, maps[name])
    for name in ("olVector", "olImagery"):
        assert maps[name]["state"] == "ready" and maps[name]["ok"] > 0 and maps[name]["failed"] == 0, maps[name]
    for shot in ("m1", "m2", "m3", "m4"):
        colours, drawn = _drawn(shots / f"{shot}.png")
        assert colours > 8 and drawn > 0.5, (shot, colours, drawn)
