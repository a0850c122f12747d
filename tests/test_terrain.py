"""Terrain: Terrain-RGB/Terrarium decode to the DEM, quantized-mesh tiles and layer.json, elevation."""

from __future__ import annotations

import gzip
import struct

import morecantile
import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from tests.support.rasters import decode_image

WMQ = morecantile.tms.get("WebMercatorQuad")
HILLS = (121.65, 29.80)  # in the south-eastern hills


def _dem(raster_dir):
    return rasterio.open(raster_dir / "rasters" / "dem_2023.tif")


def _expected(raster_dir, tile: morecantile.Tile) -> np.ndarray:
    """The DEM cell values under every pixel centre of a WebMercatorQuad tile, and 1 m around it.

    (5, 256, 256): the centre and the four points 1 m east, west, north and south. GDAL's warper
    maps pixel centres through an approximate transformation (within 1/8 of a tile pixel, 1 m
    here), so next to a cell boundary it may take the neighbouring DEM cell.
    """
    left, bottom, right, top = WMQ.xy_bounds(tile)
    size = (right - left) / 256
    xs, ys = np.meshgrid(left + (np.arange(256) + 0.5) * size, top - (np.arange(256) + 0.5) * size)
    with _dem(raster_dir) as src:
        to_dem = Transformer.from_crs("EPSG:3857", src.crs.to_wkt(), always_xy=True)
        dem = src.read(1)
        out = []
        for dx, dy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
            gx, gy = to_dem.transform(xs, ys)
            rows, cols = rasterio.transform.rowcol(src.transform, (gx + dx).ravel(), (gy + dy).ravel())
            out.append(dem[np.array(rows), np.array(cols)].reshape(256, 256))
        return np.stack(out)


@pytest.mark.parametrize("render", ["terrain-rgb", "terrarium"])
def test_rgb_encoded_tiles_decode_to_the_dem_within_half_a_metre(raster_client, raster_dir, render):
    tile = WMQ.tile(*HILLS, 14)
    r = raster_client.get(f"/collections/dem/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}?render={render}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    rgb = decode_image(r.content).astype(np.float64)
    if render == "terrain-rgb":
        heights = -10000 + (rgb[0] * 65536 + rgb[1] * 256 + rgb[2]) * 0.1
    else:
        heights = rgb[0] * 256 + rgb[1] + rgb[2] / 256 - 32768
    expected = _expected(raster_dir, tile)
    assert expected[0].max() - expected[0].min() > 20, "a tile with relief"
    error = np.abs(heights - expected).min(axis=0)  # the nearest of the cells around each pixel
    assert error.max() <= 0.5
    assert (np.abs(heights - expected[0]) <= 0.5).mean() > 0.95, "almost every pixel on its own cell"


def test_elevation_at_a_point(raster_client, raster_dir):
    r = raster_client.get(f"/collections/dem/elevation?lon={HILLS[0]}&lat={HILLS[1]}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    with _dem(raster_dir) as src:
        x, y = Transformer.from_crs("EPSG:4326", src.crs.to_wkt(), always_xy=True).transform(*HILLS)
        expected = float(next(src.sample([(x, y)]))[0])
    assert doc["properties"]["elevation"] == pytest.approx(expected, abs=0.01)
    assert doc["properties"]["item"] == "dem_2023" and doc["geometry"]["coordinates"] == list(HILLS)
    assert raster_client.get("/collections/dem/elevation?lon=100&lat=29.8").status_code == 404
    bad = raster_client.get("/collections/dem/elevation?lon=east&lat=29.8")
    assert bad.status_code == 400 and "lon" in bad.json()["description"]
    assert raster_client.get("/collections/imagery/elevation?lon=121.5&lat=29.8").status_code == 404


# -- quantized mesh ------------------------------------------------------------------------------


def _zigzag_deltas(raw: np.ndarray) -> np.ndarray:
    values = (raw.astype(np.int64) >> 1) ^ -(raw.astype(np.int64) & 1)
    return np.cumsum(values)


def decode_mesh(body: bytes) -> dict:
    """Decode a quantized-mesh-1.0 tile: header, vertices (u, v, height in m), triangles, edges.

    HTTP clients undo ``Content-Encoding: gzip`` themselves; a still-compressed body is inflated here.
    """
    data = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    min_h, max_h = struct.unpack_from("<2f", data, 24)
    count = struct.unpack_from("<I", data, 88)[0]
    raw = np.frombuffer(data, "<u2", count * 3, 92).reshape(3, count)
    u, v, h = (_zigzag_deltas(raw[i]) for i in range(3))
    offset = 92 + count * 6
    wide = count > 65536
    if wide and offset % 4:
        offset += 4 - offset % 4
    kind, width = ("<u4", 4) if wide else ("<u2", 2)
    tri_count = struct.unpack_from("<I", data, offset)[0]
    codes = np.frombuffer(data, kind, tri_count * 3, offset + 4)
    indices, highest = [], 0
    for code in codes.tolist():
        indices.append(highest - code)
        if code == 0:
            highest += 1
    offset += 4 + tri_count * 3 * width
    edges = {}
    for name in ("west", "south", "east", "north"):
        n = struct.unpack_from("<I", data, offset)[0]
        edges[name] = np.frombuffer(data, kind, n, offset + 4)
        offset += 4 + n * width
    heights = min_h + h / 32767.0 * (max_h - min_h)
    extensions = {}
    while offset < len(data):
        ext_id, length = struct.unpack_from("<BI", data, offset)
        extensions[ext_id] = data[offset + 5:offset + 5 + length]
        offset += 5 + length
    return {"u": u, "v": v, "h": heights, "triangles": np.array(indices).reshape(-1, 3), "edges": edges,
            "min": min_h, "max": max_h, "extensions": extensions}


def test_layer_json(raster_client):
    r = raster_client.get("/collections/dem/terrain/layer.json")
    doc = r.json()
    assert (doc["format"], doc["scheme"], doc["projection"]) == ("quantized-mesh-1.0", "tms", "EPSG:4326")
    assert doc["tiles"] == ["{z}/{x}/{y}.terrain?v={version}"] and doc["bounds"] == [-180.0, -90.0, 180.0, 90.0]
    assert doc["available"][0] == [{"startX": 0, "startY": 0, "endX": 1, "endY": 0}]
    assert len(doc["available"]) == doc["maxzoom"] + 1 == 16
    z12 = doc["available"][12][0]
    x, y = int((HILLS[0] + 180) // (180 / 2**12)), int((HILLS[1] + 90) // (180 / 2**12))
    assert z12["startX"] <= x <= z12["endX"] and z12["startY"] <= y <= z12["endY"]


def _mesh(client, z, x, y) -> dict:
    r = client.get(f"/collections/dem/terrain/{z}/{x}/{y}.terrain?v=1.0.0", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.quantized-mesh"
    assert r.headers["content-encoding"] == "gzip"
    return decode_mesh(r.content)


def _oct_decode(data: bytes) -> np.ndarray:
    """Unit vectors from oct-encoded byte pairs (the format's ``octvertexnormals``)."""
    xy = np.frombuffer(data, np.uint8).reshape(-1, 2).astype(float) / 255.0 * 2.0 - 1.0
    z = 1.0 - np.abs(xy).sum(axis=1)
    neg = z < 0
    x, y = xy[:, 0].copy(), xy[:, 1].copy()
    x[neg], y[neg] = (1 - np.abs(xy[neg, 1])) * np.sign(xy[neg, 0]), (1 - np.abs(xy[neg, 0])) * np.sign(xy[neg, 1])
    v = np.column_stack([x, y, z])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_vertex_normals_when_cesium_asks_for_them(raster_client):
    x, y = int((HILLS[0] + 180) // (180 / 2**12)), int((HILLS[1] + 90) // (180 / 2**12))
    url = f"/collections/dem/terrain/12/{x}/{y}.terrain"
    accept = "application/vnd.quantized-mesh;extensions=octvertexnormals-watermask,application/octet-stream;q=0.9"
    lit = raster_client.get(url, headers={"Accept": accept})
    assert lit.status_code == 200 and "octvertexnormals" in lit.headers["content-type"]
    mesh, plain = decode_mesh(lit.content), _mesh(raster_client, 12, x, y)
    assert plain["extensions"] == {} and set(mesh["extensions"]) == {1}
    normals = _oct_decode(mesh["extensions"][1])
    assert len(normals) == len(mesh["u"]) == len(plain["u"])
    lon = np.radians(-180 + (x + mesh["u"] / 32767) * 180 / 2**12)
    lat = np.radians(-90 + (y + mesh["v"] / 32767) * 180 / 2**12)
    up = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    tilt = np.degrees(np.arccos(np.clip((normals * up).sum(axis=1), -1, 1)))
    assert tilt.max() < 89 and np.median(tilt) < 45 and tilt.max() > 2, "outward, tilted by the hills"
    assert "octvertexnormals" in raster_client.get("/collections/dem/terrain/layer.json").json()["extensions"]


def test_layer_json_and_tiles_have_validators(raster_client):
    x, y = int((HILLS[0] + 180) // (180 / 2**12)), int((HILLS[1] + 90) // (180 / 2**12))
    for url in ("/collections/dem/terrain/layer.json", f"/collections/dem/terrain/12/{x}/{y}.terrain"):
        first = raster_client.get(url)
        assert first.headers["etag"] and "max-age" in first.headers["cache-control"]
        assert raster_client.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304


def test_mesh_tile_is_a_valid_tin_with_the_dem_heights(raster_client):
    x, y = int((HILLS[0] + 180) // (180 / 2**12)), int((HILLS[1] + 90) // (180 / 2**12))
    mesh = _mesh(raster_client, 12, x, y)
    assert len(mesh["u"]) > 50 and mesh["max"] - mesh["min"] > 100, "hills, simplified but not flat"
    assert mesh["triangles"].max() < len(mesh["u"])
    assert len(mesh["edges"]["west"]) == len(mesh["edges"]["east"]) == 65, "every border lattice point"
    # counter-clockwise triangles (seen from above)
    a, b, c = (np.stack([mesh["u"], mesh["v"]], 1)[mesh["triangles"][:, i]].astype(float) for i in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    assert (cross > 0).all()
    root = _mesh(raster_client, 0, 1, 0)
    assert len(root["u"]) >= 4


def _edge(mesh: dict, side: str) -> dict[int, float]:
    axis, value = {"east": ("u", 32767), "west": ("u", 0), "north": ("v", 32767), "south": ("v", 0)}[side]
    other = "v" if axis == "u" else "u"
    on = mesh[axis] == value
    return dict(zip(mesh[other][on].tolist(), mesh["h"][on].tolist(), strict=True))


def test_neighbouring_tiles_share_their_edges(raster_client):
    z = 12
    x, y = int((HILLS[0] + 180) // (180 / 2**z)), int((HILLS[1] + 90) // (180 / 2**z))
    here, east, north = (_mesh(raster_client, z, x + dx, y + dy) for dx, dy in ((0, 0), (1, 0), (0, 1)))
    for a, b in ((_edge(here, "east"), _edge(east, "west")), (_edge(here, "north"), _edge(north, "south"))):
        assert a.keys() == b.keys() and len(a) == 65
        assert max(abs(a[k] - b[k]) for k in a) < 0.05


def test_terrain_errors(raster_client):
    assert raster_client.get("/collections/dem/terrain/16/0/0.terrain").status_code == 400
    far = raster_client.get("/collections/dem/terrain/12/0/0.terrain")
    assert far.status_code == 404 and "no data" in far.json()["description"]
    assert raster_client.get("/collections/imagery/terrain/layer.json").status_code == 404
    assert raster_client.get("/collections/nope/terrain/layer.json").status_code == 404
