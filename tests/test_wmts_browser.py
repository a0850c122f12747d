"""OpenLayers' WMTS capabilities parser draws OneMap's Tianditu-style layers in headless Chromium.

``tests/browser/wmts_ol.mjs`` loads npm's ``ol`` into the system Chromium, reads the capabilities of a
keyed (classified-edition) server with ``ol/format/WMTSCapabilities`` and ``optionsFromCapabilities``,
the key travelling as ``tk``, and draws ``vec_c`` on the CGCS2000 grid ``c`` with EPSG:4490 registered
as a Tianditu client does. The screenshot must show the land survey's colours.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.support.api_keys import issue_key
from tests.support.live import live_server
from tests.support.rasters import decode_image, raster_settings
from tests.test_wmts import land_survey_colours, palette_pixels

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "browser" / "wmts_ol.mjs"


def test_openlayers_draws_the_c_grid_from_capabilities(raster_dir, tmp_path):
    settings = raster_settings(raster_dir)
    key = issue_key(settings, "openlayers")
    shot = tmp_path / "wmts.png"
    with live_server(settings) as root:
        run = subprocess.run(["node", str(SCRIPT), root, key, "vec_c", str(shot)], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    report = out["report"]
    assert report and report.get("done"), out
    assert report["projection"] == "EPSG:4490" and report["requestEncoding"] == "KVP"
    assert {"img_c", "vec_c", "ter_c"} <= set(report["layers"])
    tiles = [r for r in out["requests"] if "GetTile" in r["url"]]
    assert report["loaded"] >= 4 and len(tiles) >= 4 and not out["consoleErrors"]
    for r in tiles:
        query = parse_qs(urlparse(r["url"]).query)
        assert r["status"] in (200, 204) and query["tk"] == [key] and query["tilematrixset"] == ["c"]
        assert query["TileMatrix"] == ["13"]  # 0.703125 / 2**12 degrees per pixel is level 13 of the c grid
    pixels = decode_image(shot.read_bytes())[:3]
    assert palette_pixels(pixels, land_survey_colours(settings)) > 0.3
