"""The 3D scene (/scene): the page and CesiumJS's files, then the real thing in headless Chromium.

The browser test serves the sample (vector store + small COGs) with uvicorn on a loopback port, opens
/scene in Debian's Chromium (software WebGL) with playwright-core (tests/browser/scene_check.mjs) and
checks that terrain, imagery, the 3D buildings and the draped parcels all load with no failed request
and no console error, that a click on a known building picks it, and that the time switch works.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from shapely.geometry import shape

from server.app import create_app
from server.elevation import heights_at
from server.raster.sample import write_sample_rasters
from server.settings import Settings
from tests.support import ROOT
from tests.support.api_keys import issue_key
from tests.support.live import live_server

CHROMIUM = Path("/usr/bin/chromium")
CESIUM = ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
SCENE_CHECK = ROOT / "tests" / "browser" / "scene_check.mjs"


@pytest.fixture(scope="module")
def scene_data(sample_dir, tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("scene-data")
    (data_dir / "onemap.gpkg").symlink_to(sample_dir / "onemap.gpkg")
    write_sample_rasters(data_dir, scale=16)
    return data_dir


def _settings(data_dir: Path, **overrides) -> Settings:
    return Settings(data_dir=data_dir, edition="classified", cesium_dir=CESIUM, **overrides)


@pytest.fixture(scope="module")
def client(scene_data) -> TestClient:
    settings = _settings(scene_data)
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "scene")}) as c:
        yield c


def test_the_page_names_this_servers_sources(client):
    r = client.get("/scene")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    marker = 'id="scene-config" type="application/json">'
    start = r.text.index(marker) + len(marker)
    config = json.loads(r.text[start:r.text.index("</script>", start)])
    assert config["terrain"].endswith("/collections/dem/terrain/")
    assert [t["id"] for t in config["tilesets"]] == ["buildings"]
    assert config["imagery"][0]["id"] == "imagery" and len(config["imagery"][0]["items"]) >= 2
    assert [d["id"] for d in config["draped"]] == ["parcels"]
    assert "cdn" not in r.text.lower() and "cesium.com" not in r.text
    assert client.get("/scene?layers=nope").status_code == 400


def test_cesium_files_are_served_and_nothing_else(client):
    r = client.get("/scene/cesium/Cesium.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert client.get("/scene/cesium/Widgets/widgets.css").status_code == 200
    for bad in ("/scene/cesium/../package.json", "/scene/cesium/%2e%2e/package.json", "/scene/cesium/nope.js"):
        assert client.get(bad).status_code == 404, bad


def test_without_cesium_the_page_says_how_to_install(scene_data, tmp_path):
    settings = Settings(data_dir=scene_data, edition="classified", cesium_dir=tmp_path)
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "scene")}) as c:
        r = c.get("/scene")
    assert r.status_code == 503 and "npm ci" in r.text


def _target(client: TestClient, data_dir: Path) -> tuple[str, float, float, float]:
    """A big building: its unit code, a point inside it and its roof height."""
    page = client.get("/collections/buildings/items?limit=400&bbox=121.45,29.82,121.6,29.9").json()
    best = max(page["features"], key=lambda f: shape(f["geometry"]).area)
    geom = shape(best["geometry"])
    inside = geom.representative_point()
    ring = np.array(geom.geoms[0].exterior.coords if hasattr(geom, "geoms") else geom.exterior.coords)
    with rasterio.open(data_dir / "rasters" / "dem_2023.tif") as src:
        base = float(heights_at(src, ring[:, 0], ring[:, 1]).min())
    return best["id"], inside.x, inside.y, base + best["properties"]["height_m"]


def test_the_scene_loads_every_source_and_picks_a_building_in_chromium(client, scene_data, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (or run 'make test')")
    code, lon, lat, roof = _target(client, scene_data)
    settings = _settings(scene_data)
    key = issue_key(settings, "scene browser")
    with live_server(settings) as url:
        run = subprocess.run(
            [shutil.which("node") or "node", str(SCENE_CHECK), f"{url}/scene?api_key={key}", str(lon), str(lat),
             str(roof), str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert "error" not in report, report
    bad = [r for r in report["responses"] if r["status"] >= 400]
    assert bad == [] and report["failed"] == [], (bad, report["failed"])
    assert report["consoleErrors"] == []
    urls = [r["url"] for r in report["responses"]]
    assert all(u.startswith(url) or u.startswith("data:") or u.startswith("blob:") for u in urls), "offline"
    assert any("/terrain/layer.json" in u for u in urls) and any(u.endswith(".terrain") or ".terrain?" in u
                                                                     for u in urls)
    assert any("/collections/imagery/tiles/WebMercatorQuad/" in u for u in urls)
    assert any("/3dtiles/tileset.json" in u for u in urls) and any(".glb" in u for u in urls)
    assert any("/collections/parcels/items" in u for u in urls) and report["entities"] > 0
    assert report["picked"]["properties"]["unit_code"] == code
    assert report["profileLink"].split("?")[0].endswith(f"/codes/{code}")
    assert client.get(f"/codes/{code}").status_code == 200
    item = report["options"][1].split("|")[1]
    assert any(f"item={item}" in u for u in report["afterSwitch"]), "the time switch loads the other acquisition"
