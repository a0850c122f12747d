"""OGC API Styles: the MapLibre styles in styles/, served with this server's tile URLs.

The app runs over the embedded sample store (the edition's policy reads it); styles themselves read
no data. Every served style is checked with the MapLibre style-spec validator from npm (``npm ci``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.catalog import load_catalog
from server.settings import Settings
from server.styles.render import render_style
from server.styles.routes import MAPBOX_STYLE, style_links
from server.styles.store import PLACEHOLDER, collections_of, load_styles, read_styles
from tests.support import ROOT
from tests.support.api_keys import issue_key

VECTOR = ("admin_boundaries", "buildings", "control_lines", "land_survey", "parcels", "planning_zones")
VALIDATOR = ROOT / "node_modules" / ".bin" / "gl-style-validate"
BASE = "http://testserver"


def make_client(data_dir: Path, **overrides) -> TestClient:
    """A client (with an API key of its own) on an app over the sample store; use it in ``with``."""
    settings = Settings(**{"data_dir": data_dir, "base_url": None, "edition": "classified", **overrides})
    key = issue_key(settings, "style tests")
    return TestClient(create_app(settings), headers={"X-API-Key": key})


@pytest.fixture(scope="module")
def client(sample_dir) -> TestClient:
    with make_client(sample_dir) as c:
        yield c


def served(client: TestClient, style_id: str) -> dict:
    r = client.get(f"/styles/{style_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_every_style_file_loads_and_the_base_map_draws_every_collection():
    styles = read_styles(ROOT / "styles")
    assert set(VECTOR) | {"basemap"} == set(styles)
    for cid in VECTOR:
        assert styles[cid].collections == {cid}
        assert styles[cid].title["zh"] and styles[cid].title["en"]
    assert styles["basemap"].collections == set(VECTOR)
    # The base map reuses each collection style's layers, re-pointed at the dataset tileset.
    base_layers = {lyr["id"]: lyr for lyr in styles["basemap"].doc["layers"]}
    for cid in VECTOR:
        for layer in styles[cid].doc["layers"]:
            assert base_layers[layer["id"]]["source"] == "onemap"
            assert base_layers[layer["id"]]["paint"] == layer["paint"]


def test_styles_list_links_each_style(client):
    doc = client.get("/styles").json()
    ids = [s["id"] for s in doc["styles"]]
    assert set(ids) == set(VECTOR) | {"basemap"}
    assert doc["default"] == "basemap"
    for entry in doc["styles"]:
        rels = {ln["rel"]: ln for ln in entry["links"]}
        assert rels["stylesheet"]["type"] == MAPBOX_STYLE
        assert rels["stylesheet"]["href"] == f"{BASE}/styles/{entry['id']}?f=mapbox"
        assert rels["describedby"]["href"] == f"{BASE}/styles/{entry['id']}/metadata"
    assert client.get("/styles", headers={"Accept-Language": "en"}).json()["styles"][0]["title"].isascii()


@pytest.mark.parametrize("collection_id", VECTOR)
def test_collection_style_points_at_the_collection_tiles(client, collection_id):
    r = client.get(f"/styles/{collection_id}")
    assert r.headers["content-type"] == MAPBOX_STYLE
    doc = r.json()
    assert doc["version"] == 8
    source = doc["sources"][collection_id]
    assert source["tiles"] == [f"{BASE}/collections/{collection_id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"]
    c = load_catalog(ROOT / "collections").get(collection_id)
    assert (source["minzoom"], source["maxzoom"]) == (c.tiles.minzoom, c.tiles.maxzoom)
    assert source["bounds"] == list(c.extent.spatial.bbox)
    assert {lyr["source-layer"] for lyr in doc["layers"]} == {collection_id}
    assert all(lyr.get("minzoom", 0) >= c.tiles.minzoom for lyr in doc["layers"])


def test_base_map_uses_the_dataset_tileset(client):
    doc = served(client, "basemap")
    assert list(doc["sources"]) == ["onemap"]
    assert doc["sources"]["onemap"]["tiles"] == [f"{BASE}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"]
    assert doc["layers"][0]["type"] == "background"
    assert collections_of(doc) == set(VECTOR)
    hidden = {lyr["source-layer"] for lyr in doc["layers"] if lyr.get("layout", {}).get("visibility") == "none"}
    assert hidden == {"planning_zones"}
    assert 121.4 < doc["center"][0] < 121.7 and 29.75 < doc["center"][1] < 29.95 and 8 <= doc["zoom"] <= 14


def test_configured_base_url_wins_and_no_placeholder_is_left(sample_dir):
    with make_client(sample_dir, base_url="https://onemap.example.gov.cn/api/") as client:
        texts = [client.get(f"/styles/{style_id}").text for style_id in (*VECTOR, "basemap")]
    for text in texts:
        assert PLACEHOLDER not in text
        tiles = [t for s in json.loads(text)["sources"].values() for t in s["tiles"]]
        assert all(t.startswith("https://onemap.example.gov.cn/api/") and "//api" not in t for t in tiles)


def test_json_alternate_and_bad_format(client):
    r = client.get("/styles/parcels?f=json")
    assert r.headers["content-type"] == "application/json" and r.json()["version"] == 8
    r = client.get("/styles/parcels?f=sld")
    assert r.status_code == 406 and "'f'" in r.json()["description"]


def test_unknown_style_is_an_ogc_404(client):
    for path in ("/styles/nope", "/styles/nope/metadata", "/styles/..%2Fcollections"):
        r = client.get(path)
        assert r.status_code == 404
        body = r.json()
        assert body["code"] == "NotFound"
        assert "does not exist" in body["description"] or "No resource" in body["description"]


def test_style_metadata(client):
    meta = client.get("/styles/control_lines/metadata", headers={"Accept-Language": "en"}).json()
    assert meta["id"] == "control_lines" and meta["scope"] == "style"
    assert "control lines" in meta["title"].lower() and meta["description"]
    assert meta["stylesheets"][0]["link"]["href"] == f"{BASE}/styles/control_lines?f=mapbox"
    layers = {lyr["id"]: lyr for lyr in meta["layers"]}
    assert layers["control_lines-urban-line"]["type"] == "line"
    assert layers["control_lines-urban-line"]["sampleData"]["href"] == f"{BASE}/collections/control_lines/items"


def _match_colors(expression: list) -> dict[str, str]:
    """Label -> colour of a ``match`` written as QGIS 3.22's converter reads it: a plain ``get`` input
    and array labels (a ``coalesce``/``slice`` input or string labels leave its fills empty)."""
    assert expression[0] == "match" and expression[1][0] == "get" and len(expression[1]) == 2
    pairs = expression[2:-1]
    assert all(isinstance(labels, list) for labels in pairs[0::2])
    return {label: color for labels, color in zip(pairs[0::2], pairs[1::2], strict=True) for label in labels}


def test_land_survey_palette_covers_every_first_level_class(client):
    fill = next(lyr for lyr in served(client, "land_survey")["layers"] if lyr["type"] == "fill")
    colors = _match_colors(fill["paint"]["fill-color"])
    assert set(colors) == {f"{i:02d}" for i in range(13)}
    assert len(set(colors.values())) == 13
    assert colors["11"].startswith("#6") and colors["03"] == "#3f9b4e"  # water blue, forest green


def test_planning_palette_covers_every_first_level_use(client):
    fill = next(lyr for lyr in served(client, "planning_zones")["layers"] if lyr["type"] == "fill")
    assert set(_match_colors(fill["paint"]["fill-color"])) == {f"{i:02d}" for i in range(1, 25)}


def test_control_lines_are_distinct_outlines(client):
    lines = [lyr for lyr in served(client, "control_lines")["layers"] if lyr["type"] == "line"]
    by_type = {lyr["filter"][2]: lyr["paint"] for lyr in lines}
    assert set(by_type) == {"ecological_red_line", "permanent_basic_farmland", "urban_development_boundary"}
    assert len({p["line-color"] for p in by_type.values()}) == 3
    dashes = [json.dumps(p.get("line-dasharray")) for p in by_type.values()]
    assert len(set(dashes)) == 3


def test_buildings_extrude_by_height(client):
    layer = served(client, "buildings")["layers"][0]
    assert layer["type"] == "fill-extrusion"
    assert "height_m" in json.dumps(layer["paint"]["fill-extrusion-height"])


def test_styles_need_nothing_from_another_host(client):
    labelled = set()
    for style_id in (*VECTOR, "basemap"):
        doc = served(client, style_id)
        assert "sprite" not in doc
        symbols = [lyr for lyr in doc["layers"] if lyr["type"] == "symbol"]
        if symbols:
            assert doc["glyphs"] == f"{BASE}/fonts/{{fontstack}}/{{range}}.pbf"
            assert all(lyr["layout"]["text-font"][0] == "Noto Sans CJK SC Regular" for lyr in symbols)
            labelled |= {lyr["source-layer"] for lyr in symbols}
    assert labelled == {"admin_boundaries", "control_lines", "parcels"}


def test_every_served_style_passes_the_maplibre_validator(client, tmp_path):
    if not VALIDATOR.exists():
        pytest.fail("the MapLibre style validator is not installed: run 'npm ci' at the repository root")
    files = []
    for style_id in (*VECTOR, "basemap"):
        path = tmp_path / f"{style_id}.json"
        path.write_text(client.get(f"/styles/{style_id}").text, encoding="utf-8")
        files.append(str(path))
    node = shutil.which("node")
    assert node, "node is needed to run the style validator"
    run = subprocess.run([node, str(VALIDATOR), "--json", *files], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    # The validator really rejects a bad style (so a pass above means something).
    bad = json.loads(Path(files[-1]).read_text())
    bad["layers"][1]["paint"]["fill-color"] = "not-a-colour"
    Path(files[-1]).write_text(json.dumps(bad))
    run = subprocess.run([node, str(VALIDATOR), "--json", files[-1]], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "fill-color" in run.stdout


def test_collections_link_to_their_styles(client):
    links = style_links("land_survey", "http://h/")
    assert [ln["href"] for ln in links] == ["http://h/styles/land_survey?f=mapbox", "http://h/styles/basemap?f=mapbox"]
    assert all(ln["rel"] == "stylesheet" and ln["type"] == MAPBOX_STYLE for ln in links)
    doc = client.get("/collections/parcels").json()
    hrefs = {ln["href"] for ln in doc["links"] if ln["rel"] == "stylesheet"}
    assert hrefs == {f"{BASE}/styles/parcels?f=mapbox", f"{BASE}/styles/basemap?f=mapbox"}
    landing = client.get("/").json()
    assert any(ln["href"] == f"{BASE}/styles" for ln in landing["links"])


def test_styles_follow_what_the_caller_may_see(sample_dir):
    """A key scoped to three collections: the others' styles and base-map layers are gone."""
    settings = Settings(data_dir=sample_dir, base_url=None, edition="classified")
    scope = frozenset({"land_survey", "planning_zones", "admin_boundaries"})
    key = issue_key(settings, "scoped style tests", scopes=scope)
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as client:
        ids = {s["id"] for s in client.get("/styles").json()["styles"]}
        missing = client.get("/styles/parcels")
        basemap = served(client, "basemap")
    assert ids == scope | {"basemap"}
    assert missing.status_code == 404 and missing.json()["description"] == "Style 'parcels' does not exist."
    assert collections_of(basemap) == scope
    assert basemap["sources"]["onemap"]["minzoom"] == 0  # admin boundaries start at 0


def test_render_filters_by_visible_collections():
    catalog = load_catalog(ROOT / "collections")
    styles = load_styles(ROOT / "styles")
    visible = [catalog.get("land_survey"), catalog.get("buildings")]
    assert render_style(styles["parcels"], BASE, visible) is None
    only = render_style(styles["basemap"], BASE, visible)
    assert collections_of(only) == {"land_survey", "buildings"}
    assert only["sources"]["onemap"]["minzoom"] == 8 and only["sources"]["onemap"]["maxzoom"] == 22
    assert [lyr["id"] for lyr in only["layers"]][0] == "background"
