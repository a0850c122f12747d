"""OGC API Tiles behaviour (tile matrix sets, tilesets, MVT tiles, bad input), run on every backend."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import pytest
from shapely.geometry import box, shape

from server.catalog import VectorCollection, load_catalog
from server.settings import Settings

WMQ = morecantile.tms.get("WebMercatorQuad")
MVT = "application/vnd.mapbox-vector-tile"
CATALOG = load_catalog(Settings().collections_dir)
VECTOR = [c.id for c in CATALOG.of_kind(VectorCollection)]
CENTER = (121.55, 29.85)
REL = "http://www.opengis.net/def/rel/ogc/1.0/"


# -- helpers shared with test_tiles_backends ------------------------------------------------------


def decode(body: bytes) -> dict:
    """MVT bytes as {layer: {"extent", "features"}}, tile coordinates y down."""
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def wmq_tile(lon: float, lat: float, z: int) -> str:
    """``z/row/col`` of the WebMercatorQuad tile holding a point."""
    t = WMQ.tile(lon, lat, z)
    return f"{t.z}/{t.y}/{t.x}"


def assert_ogc_error(resp, status: int, *words: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] and body["description"]
    for word in words:
        assert word in body["description"], body["description"]


# -- tile matrix sets -------------------------------------------------------------------------------


def test_tile_matrix_sets(client):
    doc = client.get("/tileMatrixSets").json()
    ids = {t["id"] for t in doc["tileMatrixSets"]}
    assert ids == {"WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"}
    for entry in doc["tileMatrixSets"]:
        assert entry["links"][0]["href"].endswith(f"/tileMatrixSets/{entry['id']}")
    cgcs = client.get("/tileMatrixSets/CGCS2000Quad").json()
    assert cgcs["crs"].endswith("/EPSG/0/4490")
    levels = cgcs["tileMatrices"]
    assert [m["id"] for m in levels] == [str(i) for i in range(1, 19)]
    assert (levels[0]["matrixWidth"], levels[0]["matrixHeight"], levels[0]["cellSize"]) == (2, 1, 0.703125)
    assert levels[0]["pointOfOrigin"] == [90.0, -180.0]
    wmq = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert len(wmq["tileMatrices"]) == 25


def test_unknown_tile_matrix_set(client):
    for path in ("/tileMatrixSets/Nope", "/collections/parcels/tiles/Nope", "/collections/parcels/tiles/Nope/1/0/0",
                 "/tiles/Nope", "/tiles/Nope/3/1/1"):
        assert_ogc_error(client.get(path), 404, "Nope")


def test_unknown_collection(client):
    assert_ogc_error(client.get("/collections/nope/tiles"), 404, "nope")
    assert_ogc_error(client.get("/collections/nope/tiles/WebMercatorQuad/3/1/1"), 404, "nope")


@pytest.mark.parametrize(
    "path,words",
    [
        ("/collections/parcels/tiles/WebMercatorQuad/25/0/0", ("25",)),
        ("/collections/parcels/tiles/WebMercatorQuad/-1/0/0", ("-1",)),
        ("/collections/parcels/tiles/WebMercatorQuad/3/8/0", ("row", "8")),
        ("/collections/parcels/tiles/WebMercatorQuad/3/0/8", ("column", "8")),
        ("/collections/parcels/tiles/WebMercatorQuad/3/-1/0", ("row",)),
        ("/collections/parcels/tiles/CGCS2000Quad/0/0/0", ("0",)),
        ("/collections/parcels/tiles/CGCS2000Quad/1/1/0", ("row",)),
        ("/collections/parcels/tiles/WebMercatorQuad/x/0/0", ("tileMatrix",)),
        ("/collections/parcels/tiles/WebMercatorQuad/3/1.5/0", ("tileRow",)),
        ("/tiles/WebMercatorQuad/3/0/nine", ("tileCol",)),
        ("/tiles/WorldCRS84Quad/2/4/0", ("row",)),
    ],
)
def test_bad_tile_addresses(client, path, words):
    assert_ogc_error(client.get(path), 400, *words)


def test_unknown_tile_format(client):
    png = client.get(f"/collections/parcels/tiles/WebMercatorQuad/{wmq_tile(*CENTER, 14)}?f=png")
    assert_ogc_error(png, 406, "png")


# -- tilesets ---------------------------------------------------------------------------------------


def test_collection_links_and_conformance(client):
    doc = client.get("/collections/parcels").json()
    assert any(ln["rel"] == REL + "tilesets-vector" and ln["href"].endswith("/collections/parcels/tiles")
               for ln in doc["links"])
    landing = {ln["rel"] for ln in client.get("/").json()["links"]}
    assert {REL + "tiling-schemes", REL + "tilesets-vector"} <= landing
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in classes


def test_collection_tilesets(client):
    doc = client.get("/collections/parcels/tiles").json()
    assert len(doc["tilesets"]) == 3
    for ts in doc["tilesets"]:
        assert ts["dataType"] == "vector"
        rels = {ln["rel"] for ln in ts["links"]}
        assert {"self", REL + "tiling-scheme"} <= rels


def test_collection_tileset_metadata(client):
    doc = client.get("/collections/parcels/tiles/WebMercatorQuad").json()
    assert doc["dataType"] == "vector" and doc["crs"].endswith("/EPSG/0/3857")
    item = next(ln for ln in doc["links"] if ln["rel"] == "item")
    assert item["type"] == MVT
    assert item["href"].endswith("/collections/parcels/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}")
    limits = doc["tileMatrixSetLimits"]
    assert limits[0]["tileMatrix"] == "10" and limits[-1]["tileMatrix"] == "22"  # parcels: minzoom 10, maxzoom 22
    z14 = next(lim for lim in limits if lim["tileMatrix"] == "14")
    row, col = map(int, wmq_tile(*CENTER, 14).split("/")[1:])
    assert z14["minTileRow"] <= row <= z14["maxTileRow"] and z14["minTileCol"] <= col <= z14["maxTileCol"]
    (layer,) = doc["layers"]
    assert layer["id"] == "parcels" and layer["geometryDimension"] == 2
    assert set(layer["propertiesSchema"]["properties"]) == set(CATALOG.get("parcels").tiles.properties)


def test_level_mapping_for_geographic_grids(client):
    """Collection zooms are WebMercatorQuad levels; CGCS2000Quad level N = WMQ level N = CRS84Quad N-1."""
    cgcs = client.get("/collections/parcels/tiles/CGCS2000Quad").json()
    crs84 = client.get("/collections/parcels/tiles/WorldCRS84Quad").json()
    assert cgcs["tileMatrixSetLimits"][0]["tileMatrix"] == "10"
    assert cgcs["tileMatrixSetLimits"][-1]["tileMatrix"] == "18"
    assert crs84["tileMatrixSetLimits"][0]["tileMatrix"] == "9"
    assert cgcs["layers"][0]["minTileMatrix"] == "10"


def test_tilejson(client):
    resp = client.get("/collections/land_survey/tiles/WebMercatorQuad?f=tilejson")
    assert resp.headers["content-type"].startswith("application/vnd.mapbox.tile+json")
    doc = resp.json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"][0].endswith("/collections/land_survey/tiles/WebMercatorQuad/{z}/{y}/{x}")
    (layer,) = doc["vector_layers"]
    assert layer["id"] == "land_survey" and (layer["minzoom"], layer["maxzoom"]) == (8, 22)
    assert layer["fields"]["land_code"] == "String" and layer["fields"]["area_m2"] == "Number"
    by_accept = client.get("/tiles/WebMercatorQuad", headers={"Accept": "application/vnd.mapbox.tile+json"}).json()
    assert {lyr["id"] for lyr in by_accept["vector_layers"]} == set(VECTOR)
    assert_ogc_error(client.get("/collections/parcels/tiles/CGCS2000Quad?f=tilejson"), 406, "WebMercatorQuad")


def test_dataset_tileset(client):
    assert len(client.get("/tiles").json()["tilesets"]) == 3
    doc = client.get("/tiles/CGCS2000Quad").json()
    assert {lyr["id"] for lyr in doc["layers"]} == set(VECTOR)
    assert doc["tileMatrixSetLimits"][0]["tileMatrix"] == "1"  # admin boundaries from level 0 of WMQ


# -- tiles ------------------------------------------------------------------------------------------


def test_collection_tile(client):
    resp = client.get(f"/collections/parcels/tiles/WebMercatorQuad/{wmq_tile(*CENTER, 14)}")
    assert resp.status_code == 200 and resp.headers["content-type"] == MVT
    tile = decode(resp.content)
    assert list(tile) == ["parcels"]
    layer = tile["parcels"]
    assert layer["extent"] == 4096 and 0 < len(layer["features"]) <= 8000
    fields = set(CATALOG.get("parcels").tiles.properties)  # what a map needs; owners stay in Features
    for f in layer["features"]:
        assert "unit_code" in f["properties"] and set(f["properties"]) <= fields
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        minx, miny, maxx, maxy = shape(f["geometry"]).bounds
        assert minx >= -64 and maxx <= 4096 + 64 and miny >= -64 and maxy <= 4096 + 64


def test_features_in_tile_are_the_ones_there(client):
    """The tile's unit codes are parcels the features API finds in the tile's area."""
    z, row, col = 15, *map(int, wmq_tile(*CENTER, 15).split("/")[1:])
    b = WMQ.bounds(morecantile.Tile(col, row, z))
    tile = decode(client.get(f"/collections/parcels/tiles/WebMercatorQuad/{z}/{row}/{col}").content)
    ids = {f["properties"]["unit_code"] for f in tile["parcels"]["features"]}
    dx, dy = (b.right - b.left) * 65 / 4096, (b.top - b.bottom) * 65 / 4096  # the tile's 64-unit buffer
    bbox = f"{b.left - dx},{b.bottom - dy},{b.right + dx},{b.top + dy}"
    items = client.get(f"/collections/parcels/items?bbox={bbox}&limit=10000").json()
    found = {f["id"] for f in items["features"]}
    assert ids and ids <= found


def test_empty_tiles_are_204(client):
    far = "/collections/parcels/tiles/WebMercatorQuad/14/8192/8192"  # the Gulf of Guinea
    below = f"/collections/parcels/tiles/WebMercatorQuad/{wmq_tile(*CENTER, 6)}"  # parcels start at 10
    for path in (far, below, "/tiles/WebMercatorQuad/14/8192/8192"):
        resp = client.get(path)
        assert resp.status_code == 204 and resp.content == b""


def test_dataset_tile_respects_zoom_ranges(client):
    at12 = decode(client.get(f"/tiles/WebMercatorQuad/{wmq_tile(*CENTER, 12)}").content)
    assert "buildings" not in at12  # buildings start at 13
    assert {"parcels", "land_survey", "admin_boundaries"} <= set(at12)
    at8 = decode(client.get(f"/tiles/WebMercatorQuad/{wmq_tile(*CENTER, 8)}").content)
    assert "parcels" not in at8 and "land_survey" in at8
    at15 = decode(client.get(f"/tiles/WebMercatorQuad/{wmq_tile(*CENTER, 15)}").content)
    assert {"parcels", "buildings"} <= set(at15)


def test_dataset_tile_collections_picks_layers(client):
    path = f"/tiles/WebMercatorQuad/{wmq_tile(*CENTER, 15)}"
    everything = decode(client.get(path).content)
    picked = client.get(path, params={"collections": "buildings,parcels"})
    assert picked.status_code == 200 and set(decode(picked.content)) == {"buildings", "parcels"}
    assert decode(picked.content)["parcels"] == everything["parcels"]
    assert client.get(path, params={"collections": "admin_boundaries"}).status_code in (200, 204)
    for bad in ("nowhere", "parcels,nowhere", "imagery", ","):
        assert_ogc_error(client.get(path, params={"collections": bad}), 400, "collections")


def test_cgcs2000_level_is_crs84_level_minus_one(client):
    t = morecantile.tms.get("WorldCRS84Quad").tile(*CENTER, 13)
    a = client.get(f"/collections/land_survey/tiles/CGCS2000Quad/{t.z + 1}/{t.y}/{t.x}")
    b = client.get(f"/collections/land_survey/tiles/WorldCRS84Quad/{t.z}/{t.y}/{t.x}")
    assert a.status_code == 200 and a.content == b.content


def test_generalization(client):
    """Low zooms drop what is too small to see, keep the biggest first and stay small."""
    spec = CATALOG.get("parcels").tiles
    z10 = decode(client.get(f"/collections/parcels/tiles/WebMercatorQuad/{wmq_tile(*CENTER, 10)}").content)
    z14_ids = set()
    for dy in (0, 1):
        z, row, col = map(int, wmq_tile(*CENTER, 14).split("/"))
        body = client.get(f"/collections/parcels/tiles/WebMercatorQuad/{z}/{row + dy}/{col}").content
        if body:
            z14_ids |= {f["properties"]["unit_code"] for f in decode(body)["parcels"]["features"]}
    min_units = spec.min_area_px * (spec.extent / 256) ** 2
    feats = z10.get("parcels", {"features": []})["features"]
    assert len(feats) <= spec.max_features
    inside = [shape(f["geometry"]) for f in feats if box(0, 0, 4096, 4096).contains(shape(f["geometry"]))]
    assert all(g.area >= 0.5 * min_units for g in inside)
    z10_ids = {f["properties"]["unit_code"] for f in feats}
    assert len(z14_ids - z10_ids) > 0  # small parcels seen at 14 are dropped at 10


def test_tiles_are_small(client):
    for path in (f"/tiles/WebMercatorQuad/{wmq_tile(*CENTER, z)}" for z in (10, 12, 14)):
        assert len(client.get(path).content) < 500 * 1024
