"""The caller's restriction is a required argument of every read, and vector tiles desensitize like items.

Run on both backends against the master sample: a source handed a plain catalog collection without a
restriction (or with None, or another collection's) refuses the read; with a restriction it never
selects a field the restriction does not show, whatever the collection object lists. Internet-edition
tiles (table and overview levels, one layer and the base map) carry no coordinate finer than the
items' precision, and no more vertices than the items' generalized geometry; the classified
edition's tiles are the unrestricted read, unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from functools import partial

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer

from server.app import create_app
from server.catalog import load_catalog
from server.policy.editions import load_editions
from server.policy.model import Restriction, RestrictionError
from server.policy.resolve import PolicyResolver
from server.settings import Settings
from server.sources import ItemQuery
from server.tiling.zooms import tile_request
from tests.support import ROOT
from tests.support.mislabelled import mislabelled_gpkg_dir, mislabelled_pg_url

CATALOG = load_catalog(ROOT / "collections")
EDITIONS = load_editions(ROOT / "config")
PARCELS, SURVEY = CATALOG.get("parcels"), CATALOG.get("land_survey")
WMQ = morecantile.tms.get("WebMercatorQuad")
POINT = (121.55, 29.85)
TO_LONLAT = Transformer.from_crs(3857, 4326, always_xy=True)


def restriction(edition: str, collection_id: str) -> Restriction:
    """The edition's resolved restriction of a collection (an anonymous or all-collections caller)."""
    return PolicyResolver(CATALOG, EDITIONS, edition).policy().collections[collection_id].restriction


INTERNET_SURVEY = restriction("internet", "land_survey")


def call(client: TestClient, fn, *args, **kwargs):
    """Run a source coroutine on the app's event loop."""
    return client.portal.call(partial(fn, *args, **kwargs))


def survey_tile(z: int):
    return WMQ.tile(*POINT, z)


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True}) if body else {}


@pytest.fixture(scope="module")
def internet(backend, request, tmp_path_factory, sample_dir):
    """An internet-edition app over the whole master data mislabelled as an internet release."""
    data_dir = mislabelled_gpkg_dir(tmp_path_factory.mktemp("restricted"), sample_dir, rasters=False)
    url = mislabelled_pg_url(request.getfixturevalue("pg_url"), "restricted") if backend == "postgis" else None
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    with TestClient(create_app(Settings(data_dir=data_dir, database_url=url, edition="internet"))) as c:
        yield c


# -- a read without the caller's restriction is refused ------------------------------------------------


def _req(collection, z: int = 14):
    return tile_request(collection, WMQ, survey_tile(z), collection.field_names)


READS = {
    "query": lambda source, c, **kw: source.query(c, ItemQuery(properties=c.field_names, limit=5), **kw),
    "get": lambda source, c, **kw: source.get(c, "1", c.field_names, **kw),
    "extent": lambda source, c, **kw: source.extent(c, **kw),
    "tile": lambda source, c, **kw: source.tile(c, _req(c), **kw),
}


@pytest.mark.parametrize("read", READS)
def test_a_read_without_the_callers_restriction_is_refused(client, read):
    source = client.app.state.source
    with pytest.raises(TypeError, match="restriction"):  # not expressible: the argument has no default
        call(client, READS[read], source, SURVEY)
    with pytest.raises(RestrictionError, match="needs the caller's Restriction, not NoneType"):
        call(client, READS[read], source, SURVEY, restriction=None)
    with pytest.raises(RestrictionError, match="with the restriction of 'parcels'"):
        call(client, READS[read], source, SURVEY, restriction=restriction("classified", "parcels"))


def test_a_multi_layer_tile_without_every_restriction_is_refused(client):
    source, layers = client.app.state.source, [(SURVEY, _req(SURVEY)), (PARCELS, _req(PARCELS))]
    with pytest.raises(TypeError, match="restrictions"):
        call(client, source.tiles, layers)
    for missing in (None, {}, {"land_survey": INTERNET_SURVEY}, {"land_survey": INTERNET_SURVEY, "parcels": None}):
        with pytest.raises(RestrictionError):
            call(client, source.tiles, layers, restrictions=missing)
    assert issubclass(RestrictionError, TypeError)


# -- a restriction is applied whole, even to a catalog collection --------------------------------------


def test_fields_outside_the_restriction_are_never_read(client):
    source = client.app.state.source
    government = restriction("government", "parcels")  # owner_id_number hidden, owner_name masked
    assert "owner_id_number" not in government.fields and government.masked == {"owner_name"}
    narrow = replace(government, fields=tuple(f for f in government.fields if f != "area_m2"))
    page = call(client, source.query, PARCELS, ItemQuery(properties=PARCELS.field_names, limit=50), restriction=narrow)
    features = json.loads(page.features)
    assert len(features) == 50
    assert all(list(f["properties"]) == list(narrow.fields) for f in features)
    assert all(f["properties"]["owner_name"].endswith("*") for f in features)
    one = json.loads(call(client, source.get, PARCELS, features[0]["id"], PARCELS.field_names, restriction=narrow))
    assert list(one["properties"]) == list(narrow.fields) and one["properties"]["owner_name"].endswith("*")
    lon, lat = features[0]["geometry"]["coordinates"][0][0][0]
    req = tile_request(PARCELS, WMQ, WMQ.tile(lon, lat, 16), PARCELS.field_names)
    tiled = decode(call(client, source.tile, PARCELS, req, restriction=narrow))["parcels"]["features"]
    assert tiled and all(set(f["properties"]) <= set(narrow.fields) for f in tiled)
    assert all(f["properties"]["owner_name"].endswith("*") for f in tiled if "owner_name" in f["properties"])
    extent = call(client, source.extent, PARCELS, restriction=narrow)
    assert extent.bbox is not None and extent.interval is not None


def test_excluded_rows_are_never_read_from_a_catalog_collection(client):
    source = client.app.state.source
    page = call(client, source.query, SURVEY, ItemQuery(properties=("class_code",), limit=5000),
                restriction=INTERNET_SURVEY)
    classes = [f["properties"]["class_code"] for f in json.loads(page.features)]
    assert classes and "09" not in classes
    everything = call(client, source.query, SURVEY, ItemQuery(properties=("class_code",), limit=5000),
                      restriction=Restriction.unrestricted(SURVEY))
    assert "09" in [f["properties"]["class_code"] for f in json.loads(everything.features)]


def test_tiles_stop_at_the_restrictions_zoom(client):
    source = client.app.state.source
    req = tile_request(SURVEY, WMQ, survey_tile(17), ("id",))
    assert call(client, source.tile, SURVEY, req, restriction=INTERNET_SURVEY) == b""
    assert call(client, source.tile, SURVEY, req, restriction=replace(INTERNET_SURVEY, max_zoom=None))


# -- tiles desensitize like items ----------------------------------------------------------------------


def tile_vertices(layer: dict, tile: morecantile.Tile, buffer: int = 64) -> dict:
    """Per feature id, its vertices as lon/lat (clip points on the buffered tile's edge left out), and
    half a tile unit in degrees (lon, lat): how far quantization may move a vertex."""
    extent = layer["extent"]
    minx, miny, maxx, maxy = WMQ.xy_bounds(tile)
    sx, sy = (maxx - minx) / extent, (maxy - miny) / extent
    out = {}
    for f in layer["features"]:
        points = np.array(_coordinates(f["geometry"]["coordinates"]), dtype=float).reshape(-1, 2)
        edge = np.isin(points, (-buffer, extent + buffer)).any(axis=1)
        points = points[~edge]
        lon, lat = TO_LONLAT.transform(minx + points[:, 0] * sx, maxy - points[:, 1] * sy)
        out[f["properties"].get("id", f["id"])] = np.column_stack([lon, lat])
    (w, e), (s, n) = TO_LONLAT.transform([minx, maxx], [miny, maxy])
    return {"features": out, "half_unit": ((e - w) / extent / 2, (n - s) / extent / 2)}


def _coordinates(value) -> list:
    if isinstance(value[0], (int, float)):
        return [value]
    return [p for part in value for p in _coordinates(part)]


def off_grid(vertices: np.ndarray, half_unit: tuple[float, float], precision: int) -> np.ndarray:
    """Which vertices are not within quantization of a point of the ``precision`` decimal-degree grid."""
    step = 10.0 ** -precision
    distance = np.abs(vertices - np.round(vertices / step) * step)
    return (distance > np.array(half_unit) * 1.01 + 1e-12).any(axis=1)


def assert_no_finer_than(body: bytes, tile: morecantile.Tile, layers: dict[str, int], least: int = 10) -> None:
    """Every vertex of the named layers (name -> precision) is within quantization of its grid (and
    land_survey has at least ``least`` vertices inside the buffered tile)."""
    decoded = decode(body)
    assert set(layers) <= set(decoded), sorted(decoded)
    for name, precision in layers.items():
        found = tile_vertices(decoded[name], tile)
        points = np.concatenate(list(found["features"].values()))
        assert name != "land_survey" or len(points) >= least
        assert not off_grid(points, found["half_unit"], precision).any(), name


def assert_no_denser_than_items(client, body: bytes, tile: morecantile.Tile, restriction: Restriction) -> None:
    """Every tile vertex of a feature is (within quantization) a vertex of that feature's item."""
    found = tile_vertices(decode(body)["land_survey"], tile)
    source, half = client.app.state.source, np.array(found["half_unit"]) * 1.01 + 1e-12
    for fid, vertices in found["features"].items():
        item = json.loads(call(client, source.get, SURVEY, str(fid), (), restriction=restriction))
        ring_points = np.array(_coordinates(item["geometry"]["coordinates"]), dtype=float)
        near = (np.abs(vertices[:, None, :] - ring_points[None, :, :]) <= half).all(axis=2).any(axis=1)
        assert near.all(), (fid, vertices[~near][:3])


@pytest.mark.parametrize("z", [14, 16])
def test_internet_tiles_carry_no_coordinate_finer_than_the_items(internet, client, z):
    t = survey_tile(z)
    r = internet.get(f"/collections/land_survey/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}")
    assert r.status_code == 200
    assert_no_finer_than(r.content, t, {"land_survey": INTERNET_SURVEY.precision})
    if z > 14:  # above the overview levels tiles read the table: the items' own (generalized) vertices
        assert_no_denser_than_items(client, r.content, t, INTERNET_SURVEY)
    classified = client.get(f"/collections/land_survey/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}")
    found = tile_vertices(decode(classified.content)["land_survey"], t)
    points = np.concatenate(list(found["features"].values()))
    assert off_grid(points, found["half_unit"], INTERNET_SURVEY.precision).mean() > 0.5  # finer: unchanged


def test_internet_base_map_tiles_are_desensitized_in_every_layer(internet):
    t = survey_tile(16)
    r = internet.get(f"/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}")
    assert r.status_code == 200
    precisions = {cid: restriction("internet", cid).precision for cid in decode(r.content)}
    assert {"land_survey", "planning_zones"} <= set(precisions) and all(p == 5 for p in precisions.values())
    assert_no_finer_than(r.content, t, precisions)


def test_any_zoom_applies_the_precision_and_the_classified_tile_is_the_unrestricted_read(client):
    source = client.app.state.source
    uncapped = replace(INTERNET_SURVEY, max_zoom=None)  # the edition stops at 16; the rounding does not
    x, y = POINT
    near = ItemQuery(properties=(), limit=1, bbox=(x - 0.002, y - 0.002, x + 0.002, y + 0.002))
    item = json.loads(call(client, source.query, SURVEY, near, restriction=uncapped).features)[0]
    t = WMQ.tile(*_coordinates(item["geometry"]["coordinates"])[1], 18)  # a tile around one of its vertices
    req = tile_request(SURVEY, WMQ, t, SURVEY.field_names)
    body = call(client, source.tile, SURVEY, req, restriction=uncapped)
    assert_no_finer_than(body, t, {"land_survey": uncapped.precision}, least=1)
    assert_no_denser_than_items(client, body, t, uncapped)
    plain = call(client, source.tile, SURVEY, req, restriction=Restriction.unrestricted(SURVEY))
    assert plain != body  # the same source, another restriction: another statement, other bytes
    classified = client.get(f"/collections/land_survey/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}")
    assert classified.status_code == 200 and classified.content == plain
