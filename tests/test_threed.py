"""3D Tiles 1.1 of the buildings, on both backends: the tileset obeys the spec's rules (checked here
against the spec, the official validator being in no registry), every GLB passes Khronos's glTF-Validator
with zero errors, the metadata matches its schema and the caller's view, and buildings stand on the DEM.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer

from server.elevation import heights_at
from server.policy.labels import write_gpkg_label
from tests.conftest import BACKENDS, keyed_client
from tests.support import ROOT
from tests.support.mislabelled import release_label
from tests.support.rasters import raster_settings

VALIDATE = ROOT / "tests" / "browser" / "gltf_validate.mjs"
BASE = "/collections/buildings/3dtiles"
_TO_LLH = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
_EPS_DEG = 1e-6


def _client(backend: str, request, **overrides) -> TestClient:
    url = request.getfixturevalue("pg_url") if backend == "postgis" else None
    return keyed_client(raster_settings(request.getfixturevalue("raster_dir"), database_url=url, **overrides))


@pytest.fixture(scope="module", params=BACKENDS)
def client(request):
    with _client(request.param, request) as c:
        yield c


@pytest.fixture(scope="module")
def tileset(client) -> dict:
    r = client.get(f"{BASE}/tileset.json")
    assert r.status_code == 200, r.text
    return r.json()


def tiles_of(tile: dict, parent: dict | None = None):
    """(tile, parent) pairs, depth first."""
    yield tile, parent
    for child in tile.get("children", []):
        yield from tiles_of(child, tile)


def leaves(tileset: dict) -> list[dict]:
    """The tiles that have content."""
    return [t for t, _ in tiles_of(tileset["root"]) if "content" in t]


def accessor(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """The values of one accessor (tightly packed, as the server writes them)."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_INT: np.uint32}[acc.componentType]
    width = {"SCALAR": 1, "VEC3": 3}[acc.type]
    data = np.frombuffer(blob, dtype, acc.count * width, view.byteOffset + (acc.byteOffset or 0))
    return data.reshape(acc.count, width) if width > 1 else data


def table(gltf: pygltflib.GLTF2, blob: bytes) -> tuple[dict, dict[str, list]]:
    """The class of the one property table and its columns, decoded as the schema says."""
    meta = gltf.extensions["EXT_structural_metadata"]
    prop_table = meta["propertyTables"][0]
    klass = meta["schema"]["classes"][prop_table["class"]]
    columns: dict[str, list] = {}
    for name, col in prop_table["properties"].items():
        spec = klass["properties"][name]  # a column not in the schema fails here
        view = gltf.bufferViews[col["values"]]
        raw = blob[view.byteOffset:view.byteOffset + view.byteLength]
        if spec["type"] == "STRING":
            ov = gltf.bufferViews[col["stringOffsets"]]
            offsets = np.frombuffer(blob, np.uint32, prop_table["count"] + 1, ov.byteOffset)
            columns[name] = [raw[a:b].decode() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        else:
            dtype = {"INT32": np.int32, "FLOAT64": np.float64}[spec["componentType"]]
            columns[name] = np.frombuffer(raw, dtype).tolist()
        assert len(columns[name]) == prop_table["count"], name
    return klass, columns


def load(body: bytes) -> tuple[pygltflib.GLTF2, bytes]:
    gltf = pygltflib.GLTF2.load_from_bytes(body)
    return gltf, gltf.binary_blob()


def world(tile: dict, positions: np.ndarray) -> np.ndarray:
    """Lon, lat (degrees) and height of glTF positions: Y-up to Z-up, then the tile's transform."""
    z_up = np.column_stack([positions[:, 0], -positions[:, 2], positions[:, 1]]).astype(np.float64)
    matrix = np.array(tile["transform"]).reshape(4, 4).T
    ecef = z_up @ matrix[:3, :3].T + matrix[:3, 3]
    lon, lat, h = _TO_LLH.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    return np.column_stack([lon, lat, h])


@pytest.fixture(scope="module")
def contents(client, tileset) -> list[tuple[dict, bytes]]:
    out = []
    for tile in leaves(tileset):
        r = client.get(f"{BASE}/{tile['content']['uri']}")  # every URI resolves, relative to the tileset
        assert r.status_code == 200 and r.headers["content-type"] == "model/gltf-binary", r.text
        out.append((tile, r.content))
    return out


def test_tileset_rules(tileset):
    assert tileset["asset"]["version"] == "1.1"
    assert tileset["geometricError"] > tileset["root"]["geometricError"]
    count = 0
    for tile, parent in tiles_of(tileset["root"]):
        w, s, e, n, low, high = tile["boundingVolume"]["region"]
        assert w < e and s < n and low <= high
        if parent is not None:
            assert tile["geometricError"] < parent["geometricError"]  # decreasing down the tree
            pw, ps, pe, pn, plow, phigh = parent["boundingVolume"]["region"]
            assert pw <= w and ps <= s and e <= pe and n <= pn and plow <= low and high <= phigh
        if "children" in tile:
            assert "content" not in tile and tile["refine"] == "REPLACE"
        else:
            assert tile["geometricError"] == 0 and tile["content"]["uri"].endswith(".glb")
        count += 1
    assert count > 4 and len(leaves(tileset)) > 3, "the sample city is split into several tiles"


def test_every_glb_passes_the_khronos_validator(contents, tmp_path):
    files = []
    for i, (_, body) in enumerate(contents):
        files.append(tmp_path / f"{i}.glb")
        files[-1].write_bytes(body)
    run = subprocess.run(["node", str(VALIDATE), *map(str, files)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={"NODE_PATH": str(ROOT / "node_modules"), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    reports = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(reports) == len(files)
    for report in reports:
        assert report["errors"] == 0, report["messages"]


def test_content_is_inside_its_tile_and_metadata_matches_the_schema(contents):
    codes: list[str] = []
    for tile, body in contents:
        gltf, blob = load(body)
        assert gltf.extensionsUsed == ["EXT_mesh_features", "EXT_structural_metadata"]
        prim = gltf.meshes[0].primitives[0]
        ids_ext = prim.extensions["EXT_mesh_features"]["featureIds"][0]
        klass, columns = table(gltf, blob)
        assert set(klass["properties"]) == {"unit_code", "height_m", "floors", "building_use"}
        assert klass["properties"]["floors"]["componentType"] == "INT32"
        ids = accessor(gltf, blob, prim.attributes._FEATURE_ID_0)
        assert ids_ext["featureCount"] == len(columns["unit_code"]) and set(ids.astype(int)) == set(
            range(ids_ext["featureCount"]))
        llh = world(tile, accessor(gltf, blob, prim.attributes.POSITION))
        w, s, e, n, low, high = tile["boundingVolume"]["region"]
        assert np.radians(llh[:, 0]).min() >= w - _EPS_DEG and np.radians(llh[:, 0]).max() <= e + _EPS_DEG
        assert np.radians(llh[:, 1]).min() >= s - _EPS_DEG and np.radians(llh[:, 1]).max() <= n + _EPS_DEG
        assert llh[:, 2].min() >= low - 0.05 and llh[:, 2].max() <= high + 0.05
        first = llh[ids == 0, 2]
        assert first.max() - first.min() == pytest.approx(columns["height_m"][0], abs=0.05)  # base to roof
        codes += columns["unit_code"]
    assert len(codes) == len(set(codes)), "a building is in exactly one tile"
    assert all(len(c) == 28 for c in codes)


def test_buildings_stand_on_the_dem(client, contents, raster_dir):
    tile, body = contents[0]
    gltf, blob = load(body)
    prim = gltf.meshes[0].primitives[0]
    ids = accessor(gltf, blob, prim.attributes._FEATURE_ID_0)
    llh = world(tile, accessor(gltf, blob, prim.attributes.POSITION))
    _, columns = table(gltf, blob)
    code = columns["unit_code"][0]
    feature = client.get(f"/collections/buildings/items/{code}").json()
    ring = np.array(feature["geometry"]["coordinates"][0][0])
    import rasterio

    with rasterio.open(Path(raster_dir) / "rasters" / "dem_2023.tif") as src:
        under = heights_at(src, ring[:, 0], ring[:, 1])
    assert under.min() > 1.0, "the sample building stands on hills, not the ellipsoid"
    assert llh[ids == 0, 2].min() == pytest.approx(float(under.min()), abs=0.05)


@pytest.fixture(scope="module")
def government_dir(tmp_path_factory, sample_dir, raster_dir) -> Path:
    """The master sample labelled as a government release: the policy alone hides the secret rows."""
    target = tmp_path_factory.mktemp("government")
    shutil.copyfile(sample_dir / "onemap.gpkg", target / "onemap.gpkg")
    with sqlite3.connect(target / "onemap.gpkg") as conn:
        write_gpkg_label(conn, release_label("government"))
    shutil.copytree(Path(raster_dir) / "rasters", target / "rasters")
    return target


def test_hidden_buildings_are_in_no_tile(government_dir):
    with keyed_client(raster_settings(government_dir, edition="government")) as c:
        r = c.get(f"{BASE}/tileset.json")
        assert r.status_code == 200, r.text
        ts, codes = r.json(), []
        for tile in leaves(ts):
            _, columns = table(*load(c.get(f"{BASE}/{tile['content']['uri']}").content))
            codes += columns["unit_code"]
            assert "特殊用途" not in columns.get("building_use", [])
        assert codes, "the government edition sees the buildings, less the secret ones"
        seen, url = [], "/collections/buildings/items?limit=10000&properties=unit_code"
        while url:
            page = c.get(url).json()
            seen += [f["id"] for f in page["features"]]
            url = next((lk["href"] for lk in page["links"] if lk["rel"] == "next"), None)
    assert sorted(codes) == sorted(seen)


def test_cache_headers_and_errors(client, tileset):
    uri = f"{BASE}/{leaves(tileset)[0]['content']['uri']}"
    first = client.get(uri, headers={"Accept-Encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip" and first.headers["etag"]
    assert "max-age" in first.headers["cache-control"]
    again = client.get(uri, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    for bad in ("tiles/r9.glb", "tiles/x.glb", "tiles/r00000000.glb", "tiles/r.glb"):
        r = client.get(f"{BASE}/{bad}")
        assert r.status_code == 404 and r.json()["code"] == "NotFound", bad
    assert client.get("/collections/parcels/3dtiles/tileset.json").status_code == 404
    assert client.get("/collections/nope/3dtiles/tileset.json").status_code == 404


def test_collection_links_to_its_3d_container(client):
    links = client.get("/collections/buildings").json()["links"]
    tiles = [lk for lk in links if lk["type"] == "application/json+3dtiles"]
    assert tiles and tiles[0]["href"].endswith(f"{BASE}/tileset.json")
    box = client.get(BASE).json()
    assert box["collectionType"] == "3d-container" and len(box["extent"]["spatial"]["bbox"][0]) == 6
    assert box["content"][0]["href"] == tiles[0]["href"]
    assert math.isfinite(box["extent"]["spatial"]["bbox"][0][5])
