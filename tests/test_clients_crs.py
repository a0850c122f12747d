"""Real clients on Features Part 2 and Part 5: GDAL's OAPIF driver reads a layer reprojected by the
server (the GDAL bundled in pyogrio's wheel asks for it with its CRS open option), Debian's GDAL reads
FlatGeobuf pages in a Gauss-Kruger zone, and OWSLib reads the queryables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import shapely
from owslib.ogcapi.features import Features
from pyproj import Transformer

from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.support.live import live_server

GK = "http://www.opengis.net/def/crs/EPSG/0/4549"
# pyogrio's GDAL runs in a child process: its reads hold the GIL, which the in-process server needs
READ_OAPIF = """
import json, sys, pyogrio, shapely
pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": sys.argv[2]})
meta, fids, geoms, fields = pyogrio.raw.read(
    "OAPIF:" + sys.argv[1], layer="parcels", CRS="EPSG:4549", max_features=20, return_fids=False)
props = dict(zip(meta["fields"].tolist(), fields))
print(json.dumps({"crs": meta["crs"], "ids": list(props["unit_code"]),
                  "coords": [shapely.get_coordinates(shapely.from_wkb(g)).tolist() for g in geoms]}))
"""


@pytest.fixture(scope="module")
def live(backend, request, tmp_path_factory):
    settings = settings_for(backend, request)
    key = issue_key(settings, "crs clients")
    headers = tmp_path_factory.mktemp("gdal") / "headers.txt"
    headers.write_text(f"X-API-Key: {key}\n")
    with live_server(settings) as url:
        yield url, key, headers


def crs84_coords(url: str, key: str, ids: list[str]) -> dict[str, np.ndarray]:
    api = Features(url, headers={"X-API-Key": key})
    found = {}
    for unit_code in ids:
        feature = api.collection_item("parcels", unit_code)
        found[unit_code] = shapely.get_coordinates(shapely.geometry.shape(feature["geometry"]))
    return found


def test_pyogrio_gdal_reads_a_layer_reprojected_by_the_server(live):
    url, key, headers = live
    run = subprocess.run([sys.executable, "-c", READ_OAPIF, url, str(headers)],
                         capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(run.stdout)
    assert got["crs"] == "EPSG:4549" and len(got["ids"]) == 20
    to_gk = Transformer.from_crs(4490, 4549, always_xy=True)
    for unit_code, lonlat in crs84_coords(url, key, got["ids"][:5]).items():
        east, north = to_gk.transform(lonlat[:, 0], lonlat[:, 1])
        xy = np.array(got["coords"][got["ids"].index(unit_code)])
        assert np.abs(xy[:, 0] - east).max() < 0.01 and np.abs(xy[:, 1] - north).max() < 0.01
        assert np.allclose(xy, np.round(xy, 3), rtol=0, atol=1e-6)  # the server's millimetres


def test_debian_gdal_reads_flatgeobuf_in_a_gauss_kruger_zone(live, tmp_path):
    url, key, _ = live
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"X-API-Key: {key}"}
    out = tmp_path / "parcels.geojson"
    src = f"/vsicurl/{url}/collections/parcels/items?f=fgb&limit=40&crs={GK}"
    subprocess.run(["ogr2ogr", "-f", "GeoJSON", "-lco", "RFC7946=NO", str(out), src],
                   check=True, env=env, capture_output=True, timeout=120)
    info = subprocess.run(["ogrinfo", "-ro", "-so", "-al", src], check=True, env=env, capture_output=True,
                          text=True, timeout=60).stdout
    assert 'ID["EPSG",4549]' in info and "Feature Count: 40" in info
    features = json.loads(out.read_text())["features"]
    xy = np.vstack([shapely.get_coordinates(shapely.geometry.shape(f["geometry"])) for f in features])
    assert xy[:, 0].min() > 600_000 and xy[:, 1].min() > 3_290_000  # easting, northing (GIS order)
    assert [f["properties"]["unit_code"] for f in features] == sorted(f["properties"]["unit_code"] for f in features)


def test_owslib_reads_queryables(live):
    url, key, _ = live
    api = Features(url, headers={"X-API-Key": key, "Accept-Language": "en"})
    schema = api.collection_queryables("parcels")
    props = schema["properties"]
    assert props["area_m2"] == {"title": "Area (m²)", "type": "number"}
    assert props["registration_date"]["format"] == "date"
    assert "0101" in props["land_use"]["enum"] and props["geom"]["x-ogc-role"] == "primary-geometry"
