"""The HTML pages in headless Chromium (tests/browser/pages_check.mjs): items pages draw their features
on a small map without horizontal scrolling at 1280 px and change their page size, a style page previews
the style, and /api.html renders the operations from Swagger UI served by this server - with no request
leaving the loopback server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import ROOT
from tests.support.api_keys import issue_key
from tests.support.glyphs import sample_glyphs
from tests.support.live import live_server
from tests.support.rasters import raster_settings

CHROMIUM = Path("/usr/bin/chromium")
PAGES_CHECK = ROOT / "tests" / "browser" / "pages_check.mjs"


@pytest.fixture(scope="module")
def report(raster_dir) -> dict:
    """One Chromium session over the pages of a live server."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (or run 'make test')")
    settings = raster_settings(raster_dir, maplibre_dir=ROOT / "node_modules" / "maplibre-gl" / "dist",
                               swagger_ui_dir=ROOT / "node_modules" / "swagger-ui-dist",
                               glyphs_dir=sample_glyphs(raster_dir / "onemap.gpkg", raster_dir / "fonts"))
    key = issue_key(settings, "html browser test")
    with live_server(settings) as url:
        run = subprocess.run([shutil.which("node") or "node", str(PAGES_CHECK), url, key],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert "error" not in out, out["error"]
    out["server"] = url
    return out


def test_no_request_leaves_the_server_and_no_error(report):
    assert report["requests"]
    assert all(r.startswith(report["server"] + "/") or r.startswith(("data:", "blob:")) for r in report["requests"]), \
        [r for r in report["requests"] if not r.startswith(report["server"])]
    assert not report["refused"] and not report["consoleErrors"], (report["refused"], report["consoleErrors"])


def test_items_pages_map_width_and_page_size(report):
    items = report["pages"]["items"]
    assert items["rows"] == 100 and items["rendered"] > 0
    assert items["scrollWidth"] <= 1280
    resized = report["pages"]["resized"]
    assert parse_qs(urlsplit(resized["url"]).query)["limit"] == ["10"] and resized["rows"] == 10
    assert "api_key" not in resized["url"], "the session carries on, not the key"
    one = report["pages"]["item"]
    assert one["rendered"] > 0 and one["scrollWidth"] <= 1280
    assert report["pages"]["stacItems"]["rendered"] > 0


def test_style_page_previews_the_style(report):
    assert report["pages"]["style"]["rendered"] > 0


def test_api_page_renders_the_operations(report):
    api = report["pages"]["api"]
    assert api["operations"] > 20
    assert {"/collections/{collectionId}/items", "/processes", "/stac/search"} <= set(api["paths"])
