"""The embedded store and PostGIS answer the same requests with the same features."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from tests.conftest import keyed_client, settings_for

REQUESTS = [
    "/collections/parcels/items?limit=50",
    "/collections/parcels/items?bbox=121.52,29.82,121.56,29.85&limit=40&datetime=2018-01-01/..",
    "/collections/land_survey/items?limit=30&properties=land_code,area_m2",
    "/collections/control_lines/items?limit=20",
    "/collections/buildings/items?bbox=121.4,29.75,121.7,29.95&limit=30",
    "/collections/admin_boundaries/items",
    "/collections/parcels/items?limit=40&sortby=-area_m2",
    "/collections/parcels/items?limit=40&sortby=land_use,-registration_date&bbox=121.52,29.82,121.56,29.85",
    "/collections/land_survey/items?limit=25&sortby=-land_code,area_m2&properties=land_code",
]


@pytest.fixture(scope="module")
def clients(request):
    a_settings, b_settings = (settings_for(b, request) for b in ("geopackage", "postgis"))
    with keyed_client(a_settings) as a, keyed_client(b_settings) as b:
        yield a, b


@pytest.mark.parametrize("url", REQUESTS)
def test_same_features(clients, url):
    a, b = (c.get(url).json() for c in clients)
    assert [f["id"] for f in a["features"]] == [f["id"] for f in b["features"]]
    assert a["numberReturned"] == b["numberReturned"]
    for fa, fb in zip(a["features"], b["features"], strict=True):
        assert fa["properties"].keys() == fb["properties"].keys()
        for k, va in fa["properties"].items():
            vb = fb["properties"][k]
            assert va == pytest.approx(vb) if isinstance(va, float) else va == vb, k
        ga, gb = shape(fa["geometry"]), shape(fb["geometry"])
        assert ga.geom_type == gb.geom_type
        ca, cb = shapely.get_coordinates(ga), shapely.get_coordinates(gb)
        assert ca.shape == cb.shape and np.abs(ca - cb).max() <= 2e-7


@pytest.mark.parametrize("url", [
    "/collections/parcels/items?limit=40&crs=http://www.opengis.net/def/crs/EPSG/0/4549",
    "/collections/buildings/items?limit=20&crs=http://www.opengis.net/def/crs/EPSG/0/3857",
    "/collections/land_survey/items?limit=20&crs=http://www.opengis.net/def/crs/EPSG/0/4490"
    "&bbox=3300000,640000,3306000,650000&bbox-crs=http://www.opengis.net/def/crs/EPSG/0/4549",
])
def test_same_features_in_another_crs(clients, url):
    """Both backends transform the same way: to the millimetre in a projected CRS, lat/lon where defined."""
    a, b = (c.get(url) for c in clients)
    assert a.headers["content-crs"] == b.headers["content-crs"]
    fa, fb = a.json()["features"], b.json()["features"]
    assert [f["id"] for f in fa] == [f["id"] for f in fb] != []
    for ga, gb in zip(fa, fb, strict=True):
        ca, cb = (shapely.get_coordinates(shape(g["geometry"])) for g in (ga, gb))
        assert ca.shape == cb.shape and np.abs(ca - cb).max() <= 1.001e-3
