"""Standard clients read the Features API with no special casing: OWSLib and GDAL's OAPIF driver."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from owslib.ogcapi.features import Features

from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.support.live import live_server


@pytest.fixture(scope="module")
def live(backend, request):
    settings = settings_for(backend, request)
    key = issue_key(settings, "standard clients")
    with live_server(settings) as url:
        yield url, key


def test_owslib_reads_collections_and_items(live):
    url, key = live
    api = Features(url, headers={"X-API-Key": key})
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"parcels", "land_survey", "control_lines"} <= ids
    page = api.collection_items("parcels", bbox=[121.52, 29.82, 121.56, 29.85], limit=20)
    assert page["type"] == "FeatureCollection" and 0 < len(page["features"]) <= 20
    assert all(len(f["id"]) == 28 for f in page["features"])
    assert api.collection("land_survey")["itemType"] == "feature"


def test_gdal_oapif_driver_reads_every_page(live, tmp_path):
    url, key = live
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"X-API-Key: {key}", "OAPIF_PAGE_SIZE": "50"}
    out = tmp_path / "control_lines.geojson"
    subprocess.run(
        ["ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{url}", "control_lines"],
        check=True, env=env, capture_output=True, timeout=120,
    )
    fetched = json.loads(out.read_text())["features"]
    listing = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OAPIF:{url}"], check=True, env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "parcels" in listing and "land_survey" in listing
    assert len(fetched) > 50  # more than one page, followed through the next links
    types = {f["properties"]["line_type"] for f in fetched}
    assert types == {"ecological_red_line", "permanent_basic_farmland", "urban_development_boundary"}
