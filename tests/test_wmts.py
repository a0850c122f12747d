"""Tianditu-style WMTS 1.0.0: capabilities and tiles through OWSLib, errors as OWS exception reports,
the ``tk`` key, Tianditu's per-layer endpoints, and the vector base map as PNG under the edition's policy.

Tiles are decoded and their pixels checked (not blank, the style's colours); both backends serve the
vector base map.
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET

import morecantile
import numpy as np
import pytest
import shapely
import shapely.ops
from fastapi.testclient import TestClient
from owslib.wmts import WebMapTileService
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.transform import from_bounds

from server.app import create_app
from server.credentials import redacted_target
from server.sources.gpkg_geometry import decode_gpkg_geometry
from server.wmts.paint import base_map, parse_color
from tests.support.api_keys import issue_key
from tests.support.live import live_server
from tests.support.mislabelled import mislabelled_gpkg_dir, mislabelled_pg_url
from tests.support.rasters import decode_image, raster_settings

OWS = "{http://www.opengis.net/ows/1.1}"
WMQ = morecantile.tms.get("WebMercatorQuad")
POINT = (121.55, 29.85)  # inside the sample county


@pytest.fixture(scope="module")
def settings(backend, request, raster_dir):
    url = request.getfixturevalue("pg_url") if backend == "postgis" else None
    return raster_settings(raster_dir, database_url=url)


@pytest.fixture(scope="module")
def wmts(settings):
    """(client without credentials, its key) on one app over the module's backend."""
    key = issue_key(settings, "wmts")
    with TestClient(create_app(settings)) as client:
        yield client, key


def report(r) -> tuple[str, str, str]:
    """(exceptionCode, locator, text) of an OWS exception report."""
    assert r.headers["content-type"].startswith("application/xml"), r.text
    root = ET.fromstring(r.content)
    assert root.tag == f"{OWS}ExceptionReport"
    exc = root.find(f"{OWS}Exception")
    return exc.get("exceptionCode"), exc.get("locator"), exc.find(f"{OWS}ExceptionText").text


def palette_pixels(rgb: np.ndarray, colours: list[tuple[float, float, float]], tolerance: float = 10) -> float:
    """Share of pixels within ``tolerance`` of one of ``colours``."""
    pixels = rgb.reshape(3, -1).T.astype(float)
    distance = np.min([np.linalg.norm(pixels - np.array(c), axis=1) for c in colours], axis=0)
    return float(np.mean(distance < tolerance))


def land_survey_colours(settings) -> list[tuple[float, float, float]]:
    """The land survey fills as drawn over the background (their 0.85 opacity folded in)."""
    style = base_map(settings.styles_dir)
    fill = next(la for la in style.layers if la.id == "land_survey-fill")
    expr = fill.paint["fill-color"]
    opacity = fill.paint["fill-opacity"]
    background = np.array(style.background[:3], dtype=float)
    colours = [parse_color(v) for v in expr[2:-1] if isinstance(v, str) and v.startswith("#")]
    return [tuple(opacity * np.array(c[:3]) + (1 - opacity) * background) for c in colours]


def test_owslib_reads_capabilities_and_tiles_with_tk(settings, wmts):
    _, key = wmts
    with live_server(settings) as root:
        service = WebMapTileService(f"{root}/wmts?tk={key}")
        assert {"img_c", "img_w", "ter_c", "ter_w", "vec_c", "vec_w"} <= set(service.contents)
        c = service.tilematrixsets["c"]
        assert c.crs == "urn:ogc:def:crs:EPSG::4490" and sorted(c.tilematrix, key=int)[0] == "1"
        first = c.tilematrix["1"]
        assert (first.matrixwidth, first.matrixheight, first.topleftcorner) == (2, 1, (90.0, -180.0))
        w = service.tilematrixsets["w"].tilematrix["14"]
        assert (w.matrixwidth, w.topleftcorner[0]) == (2**14, pytest.approx(-20037508.3427892))
        layer = service.contents["vec_c"]
        assert layer.tilematrixsetlinks["c"].tilematrixset == "c" and "image/png" in layer.formats
        limits = layer.tilematrixsetlinks["c"].tilematrixlimits["14"]
        row, col = (limits.mintilerow + limits.maxtilerow) // 2, (limits.mintilecol + limits.maxtilecol) // 2
        png = service.gettile(layer="vec_c", tilematrixset="c", tilematrix="14", row=row, column=col,
                              format="image/png").read()
        rgb = decode_image(png)[:3]
        assert rgb.shape == (3, 256, 256) and rgb.std() > 5  # a map, not one colour
        assert palette_pixels(rgb, land_survey_colours(settings)) > 0.3  # filled by land-use class
        t = WMQ.tile(*POINT, 14)
        img = service.gettile(layer="img_w", tilematrixset="w", tilematrix="14", row=t.y, column=t.x,
                              format="image/jpeg")
        assert img.info()["Content-Type"] == "image/jpeg"


def _limits_centre(client, key: str, layer: str, z: int) -> tuple[int, int]:
    doc = ET.fromstring(client.get(f"/wmts?SERVICE=WMTS&REQUEST=GetCapabilities&tk={key}").content)
    ns = {"w": "http://www.opengis.net/wmts/1.0", "ows": OWS[1:-1]}
    found = next(la for la in doc.iterfind("w:Contents/w:Layer", ns)
                 if la.findtext("ows:Identifier", None, ns) == layer)
    limit = next(li for li in found.iterfind(".//w:TileMatrixLimits", ns)
                 if li.findtext("w:TileMatrix", None, ns) == str(z))
    rows = [int(limit.findtext(f"w:{t}", None, ns)) for t in ("MinTileRow", "MaxTileRow", "MinTileCol", "MaxTileCol")]
    return (rows[0] + rows[1]) // 2, (rows[2] + rows[3]) // 2


@pytest.mark.parametrize("layer, z, media", [("img_c", 13, "image/jpeg"), ("ter_w", 12, "image/png"),
                                              ("vec_w", 13, "image/png")])
def test_kvp_rest_and_tianditu_endpoints_serve_the_same_tile(wmts, layer, z, media):
    client, key = wmts
    row, col = _limits_centre(client, key, layer, z)
    tms = layer[-1]
    kvp = client.get(f"/wmts?service=WMTS&request=GetTile&version=1.0.0&layer={layer}&style=default"
                     f"&tilematrixset={tms}&tilematrix={z}&tilerow={row}&tilecol={col}&format={media}&tk={key}")
    assert kvp.status_code == 200 and kvp.headers["content-type"] == media, kvp.text
    ext = "jpg" if media == "image/jpeg" else "png"
    rest = client.get(f"/wmts/1.0.0/{layer}/default/{tms}/{z}/{row}/{col}.{ext}?tk={key}")
    theme = layer.split("_")[0]
    tianditu = client.get(f"/{layer}/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={theme}&STYLE=default"
                          f"&TILEMATRIXSET={tms}&FORMAT=tiles&TILEMATRIX={z}&TILEROW={row}&TILECOL={col}&tk={key}")
    assert rest.content == kvp.content == tianditu.content
    pixels = decode_image(kvp.content)
    assert pixels.shape[1:] == (256, 256) and pixels[:3].std() > 2


def test_capabilities_carry_the_key_for_that_caller_only(wmts):
    client, key = wmts
    keyed = client.get(f"/wmts?SERVICE=WMTS&REQUEST=GetCapabilities&tk={key}")
    assert keyed.status_code == 200 and f"tk={key}" in keyed.text
    assert "no-store" in keyed.headers["cache-control"]
    header = client.get("/wmts/1.0.0/WMTSCapabilities.xml", headers={"X-API-Key": key})
    assert header.status_code == 200 and key not in header.text and "tk=" not in header.text
    tianditu = ET.fromstring(client.get(f"/vec_c/wmts?request=GetCapabilities&service=wmts&tk={key}").content)
    names = [e.text for e in tianditu.iter(f"{OWS}Identifier")]
    assert "vec" in names and "c" in names and "img" not in names and "vec_c" not in names
    assert key not in redacted_target(f"/img_c/wmts?SERVICE=WMTS&tk={key}")
    refused = client.get("/wmts?SERVICE=WMTS&REQUEST=GetCapabilities")
    assert refused.status_code == 401  # the classified edition admits no anonymous caller


@pytest.mark.parametrize("query, status, code, locator", [
    ("REQUEST=GetCapabilities", 400, "MissingParameterValue", "SERVICE"),
    ("SERVICE=WMTS", 400, "MissingParameterValue", "REQUEST"),
    ("SERVICE=WFS&REQUEST=GetCapabilities", 400, "InvalidParameterValue", "SERVICE"),
    ("SERVICE=WMTS&REQUEST=GetFeatureInfo", 501, "OperationNotSupported", "REQUEST"),
    ("SERVICE=WMTS&REQUEST=GetTile&LAYER=img_c&STYLE=default&TILEMATRIXSET=c&TILEMATRIX=14&TILEROW=1&FORMAT=tiles",
     400, "MissingParameterValue", "TILECOL"),
    ("SERVICE=WMTS&REQUEST=GetTile&LAYER=nope_c&STYLE=default&TILEMATRIXSET=c&TILEMATRIX=14&TILEROW=1&TILECOL=1"
     "&FORMAT=image/png", 400, "InvalidParameterValue", "LAYER"),
    ("SERVICE=WMTS&REQUEST=GetTile&LAYER=img_c&STYLE=default&TILEMATRIXSET=w&TILEMATRIX=14&TILEROW=1&TILECOL=1"
     "&FORMAT=image/png", 400, "InvalidParameterValue", "TILEMATRIXSET"),
    ("SERVICE=WMTS&REQUEST=GetTile&LAYER=vec_c&STYLE=default&TILEMATRIXSET=c&TILEMATRIX=14&TILEROW=1&TILECOL=1"
     "&FORMAT=image/jpeg", 400, "InvalidParameterValue", "FORMAT"),
    ("SERVICE=WMTS&REQUEST=GetTile&LAYER=vec_c&STYLE=night&TILEMATRIXSET=c&TILEMATRIX=14&TILEROW=1&TILECOL=1"
     "&FORMAT=image/png", 400, "InvalidParameterValue", "STYLE"),
    ("SERVICE=WMTS&REQUEST=GetTile&LAYER=vec_c&STYLE=default&TILEMATRIXSET=c&TILEMATRIX=19&TILEROW=1&TILECOL=1"
     "&FORMAT=image/png", 400, "InvalidParameterValue", "TILEMATRIX"),
    ("SERVICE=WMTS&REQUEST=GetTile&LAYER=vec_c&STYLE=default&TILEMATRIXSET=c&TILEMATRIX=14&TILEROW=x&TILECOL=1"
     "&FORMAT=image/png", 400, "InvalidParameterValue", "TILEROW"),
    ("SERVICE=WMTS&REQUEST=GetTile&LAYER=vec_c&STYLE=default&TILEMATRIXSET=c&TILEMATRIX=14&TILEROW=1&TILECOL=1"
     "&FORMAT=image/png", 400, "TileOutOfRange", "TILEROW"),
    ("SERVICE=WMTS&REQUEST=GetTile&VERSION=2.0.0&LAYER=vec_c&STYLE=default&TILEMATRIXSET=c&TILEMATRIX=14"
     "&TILEROW=1&TILECOL=1&FORMAT=image/png", 400, "InvalidParameterValue", "VERSION"),
])
def test_errors_are_ows_exception_reports(wmts, query, status, code, locator):
    client, key = wmts
    r = client.get(f"/wmts?{query}&tk={key}")
    assert r.status_code == status
    found = report(r)
    assert found[:2] == (code, locator) and found[2]


def test_rest_errors_and_levels_outside_the_data(wmts):
    client, key = wmts
    r = client.get(f"/wmts/1.0.0/vec_w/default/w/14/0/0.webp?tk={key}")
    assert r.status_code == 400 and report(r)[:2] == ("InvalidParameterValue", "FORMAT")
    r = client.get(f"/wmts/1.0.0/img_w/default/w/1/0/0.jpg?tk={key}")  # imagery starts at a finer level
    assert r.status_code == 400 and report(r)[:2] == ("TileOutOfRange", "TILEMATRIX")


@pytest.fixture(scope="module")
def master_as_release(backend, request, tmp_path_factory, sample_dir):
    """(data dir, database URL) of the master data labelled as a release: the policy alone hides rows."""
    data_dir = mislabelled_gpkg_dir(tmp_path_factory.mktemp("wmtsgov"), sample_dir)
    url = mislabelled_pg_url(request.getfixturevalue("pg_url"), "wmts_gov") if backend == "postgis" else None
    return data_dir, url


@pytest.fixture(scope="module")
def government(master_as_release):
    """A client and key of the government edition (secret rows hidden by policy)."""
    data_dir, url = master_as_release
    settings = raster_settings(data_dir, database_url=url, edition="government")
    key = issue_key(settings, "department")
    with TestClient(create_app(settings)) as client:
        yield client, key


def test_internet_edition_serves_anonymous_callers_publicly(master_as_release):
    data_dir, url = master_as_release
    with TestClient(create_app(raster_settings(data_dir, database_url=url, edition="internet"))) as anonymous:
        caps = anonymous.get("/wmts/1.0.0/WMTSCapabilities.xml")
        assert caps.status_code == 200 and caps.headers["cache-control"].startswith("public")
        layers = {e.text for e in ET.fromstring(caps.content).iter(f"{OWS}Identifier")}
        assert {"img_c", "img_w", "ter_c", "ter_w", "vec_c", "vec_w"} <= layers and "tk=" not in caps.text
        t = WMQ.tile(*POINT, 14)
        tile = anonymous.get(f"/wmts/1.0.0/vec_w/default/w/14/{t.y}/{t.x}.png")
        assert tile.status_code == 200 and tile.headers["cache-control"].startswith("public")
        assert decode_image(tile.content)[:3].std() > 5


def _secret_ground(sample_dir) -> tuple[shapely.Geometry, shapely.Geometry]:
    """(one special-use parcel, everything the government edition hides) in EPSG:3857."""
    to_3857 = Transformer.from_crs(4490, 3857, always_xy=True).transform
    with sqlite3.connect(sample_dir / "onemap.gpkg") as conn:
        blobs = [r[0] for r in conn.execute("SELECT geom FROM parcels WHERE land_use = '09'")]
        blobs_rest = [r[0] for r in conn.execute(
            "SELECT geom FROM land_survey WHERE class_code = '09' UNION ALL "
            "SELECT geom FROM buildings WHERE building_use = '特殊用途'")]
    geoms = [shapely.ops.transform(to_3857, shapely.from_wkb(decode_gpkg_geometry(b))) for b in blobs + blobs_rest]
    parcel = max(geoms[:len(blobs)], key=lambda g: g.area)
    return parcel, shapely.union_all(geoms)


def test_a_hidden_feature_is_absent_from_vector_tiles(wmts, government, sample_dir):
    client, key = wmts
    gov_client, gov_key = government
    parcel, hidden = _secret_ground(sample_dir)
    lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(*parcel.representative_point().coords[0])
    t = WMQ.tile(lon, lat, 16)
    path = f"/wmts/1.0.0/vec_w/default/w/16/{t.y}/{t.x}.png"
    seen, kept = client.get(f"{path}?tk={key}"), gov_client.get(f"{path}?tk={gov_key}")
    assert seen.status_code == kept.status_code == 200
    differs = np.abs(decode_image(seen.content)[:3].astype(int) - decode_image(kept.content)[:3]).max(axis=0) > 6
    transform = from_bounds(*WMQ.xy_bounds(t), 256, 256)
    pixel = (WMQ.xy_bounds(t).right - WMQ.xy_bounds(t).left) / 256
    inside = rasterize([parcel.buffer(-2 * pixel)], out_shape=(256, 256), transform=transform).astype(bool)
    near = rasterize([hidden.buffer(3 * pixel)], out_shape=(256, 256), transform=transform).astype(bool)
    assert differs[inside].mean() > 0.5  # the special-use parcel is drawn for the classified edition only
    assert not (differs & ~near).any()  # and nothing else changes
