"""Per-collection data versions and stale tile overviews, on both backends.

Editing one parcel moves the version of ``parcels`` only; its tiles at overview levels are built from
the table until the overviews are rebuilt (``onemap overviews``), after which the overviews, now
recording the current version, are used again and show the edit. Each backend works on its own copy
of the sample (the embedded store copied into a temporary directory, PostGIS a separate database
in the test cluster), so the session stores other tests read are never changed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mapbox_vector_tile
import morecantile
import psycopg
import pytest
import shapely
import shapely.affinity
from pyproj import Transformer
from shapely.geometry import shape

from server.catalog import VectorCollection, load_catalog
from server.cli import main as onemap
from server.policy.model import Restriction
from server.sample import build_sample
from server.settings import Settings
from server.sources.geopackage_tiles import overview_state
from server.sources.gpkg_geometry import decode_gpkg_geometry, encode_gpkg_geometry
from server.sources.tile_overviews import OVERVIEW_VERSIONS, PG_SCHEMA
from server.stores import open_store
from server.stores.gpkg_writer import open_for_edits
from server.stores.prepare import stale_collections
from server.tiling.zooms import tile_request
from tests.conftest import keyed_client

WMQ = morecantile.tms.get("WebMercatorQuad")
CATALOG = load_catalog(Settings().collections_dir)
PARCELS, SURVEY = CATALOG.get("parcels"), CATALOG.get("land_survey")
PROPS = tuple(PARCELS.tiles.properties)
EVERYTHING = Restriction.unrestricted(PARCELS)  # the source read as stored, past the policy
PG_SCALE = 300
DX = 0.04  # degrees east the edited parcel moves (about 4 km, clear of where it was)
NEW_USE = "EDITED-USE"
OVERVIEW_ZOOM, TABLE_ZOOM = 12, 16
TO_LONLAT = Transformer.from_crs(3857, 4326, always_xy=True)


@dataclass
class Store:
    """One backend's private copy of the sample and how to edit and inspect it."""

    backend: str
    settings: Settings

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Rows of a read on the store (GeoPackage placeholders are converted)."""
        if self.settings.database_url:
            with psycopg.connect(self.settings.database_url) as conn:
                return conn.execute(query.replace("?", "%s"), params).fetchall()
        conn = open_for_edits(self.settings.gpkg_path)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def move_parcel(self, unit_code: str) -> None:
        """Move one parcel DX degrees east and change its land use name (one UPDATE, as an editor would)."""
        if self.settings.database_url:
            with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
                conn.execute("UPDATE parcels SET geom = ST_Translate(geom, %s, 0), land_use_name = %s"
                             " WHERE unit_code = %s", [DX, NEW_USE, unit_code])
            return
        conn = open_for_edits(self.settings.gpkg_path)  # the R-tree triggers need the GeoPackage functions
        try:
            blob = conn.execute("SELECT geom FROM parcels WHERE unit_code = ?", (unit_code,)).fetchone()[0]
            moved = shapely.affinity.translate(shapely.from_wkb(decode_gpkg_geometry(blob)), DX, 0)
            minx, miny, maxx, maxy = moved.bounds
            new_blob = encode_gpkg_geometry(shapely.to_wkb(moved, flavor="iso"), 4490, (minx, maxx, miny, maxy))
            conn.execute("UPDATE parcels SET geom = ?, land_use_name = ? WHERE unit_code = ?",
                         (new_blob, NEW_USE, unit_code))
            conn.commit()
        finally:
            conn.close()

    def overviews_fresh(self, collection_id: str) -> bool:
        """Whether the collection's overviews record its current data version (the overview path is used)."""
        if self.settings.database_url:
            rows = self.sql(f"SELECT b.version = v.version FROM {PG_SCHEMA}.{OVERVIEW_VERSIONS} b"
                            " JOIN onemap_versions v USING (collection) WHERE collection = %s", (collection_id,))
            return bool(rows and rows[0][0])
        conn = open_for_edits(self.settings.gpkg_path)
        try:
            fresh = overview_state(conn)[1]
        finally:
            conn.close()
        assert fresh is not None, "the store records no versions"
        return collection_id in fresh


def _settings(data_dir: Path, database_url: str | None = None) -> Settings:
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    return Settings(data_dir=data_dir, database_url=database_url, cache_version_ttl_s=0, cache_debug_header=True)


@pytest.fixture(scope="module")
def gpkg_store(sample_dir, tmp_path_factory) -> Store:
    data_dir = tmp_path_factory.mktemp("versions-gpkg")
    shutil.copy(sample_dir / "onemap.gpkg", data_dir / "onemap.gpkg")
    return Store("geopackage", _settings(data_dir))


@pytest.fixture(scope="module")
def pg_store(pg_url, tmp_path_factory) -> Store:
    """A separate database in the session's cluster with a small sample of its own."""
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    name = "onemap_versions_test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    data_dir = tmp_path_factory.mktemp("versions-pg")
    settings = _settings(data_dir, url)
    build_sample(PG_SCALE, open_store(settings))
    yield Store("postgis", settings)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["geopackage", "postgis"])
def store(request) -> Store:
    return request.getfixturevalue("gpkg_store" if request.param == "geopackage" else "pg_store")


def _tile_path(collection: str, lon: float, lat: float, z: int) -> tuple[str, morecantile.Tile]:
    t = WMQ.tile(lon, lat, z)
    return f"/collections/{collection}/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}", t


def _feature(body: bytes, tile: morecantile.Tile, unit_code: str) -> tuple[dict, shapely.Geometry] | None:
    """The parcel's properties in a tile and its geometry in longitude/latitude, or None if absent."""
    layer = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True}).get("parcels") if body else None
    found = [f for f in (layer or {}).get("features", []) if f["properties"].get("unit_code") == unit_code]
    if not found:
        return None
    b, extent = WMQ.xy_bounds(tile), layer["extent"]

    def to_lonlat(coords):
        x = b.left + coords[:, 0] / extent * (b.right - b.left)
        y = b.top - coords[:, 1] / extent * (b.top - b.bottom)
        coords = coords.copy()
        coords[:, 0], coords[:, 1] = TO_LONLAT.transform(x, y)
        return coords

    return found[0]["properties"], shapely.transform(shape(found[0]["geometry"]), to_lonlat)


def _assert_at(geom: shapely.Geometry, moved: shapely.Geometry, old: shapely.Geometry) -> None:
    """A tile's parcel lies on the moved parcel (within generalization), not where it was."""
    assert geom.intersection(moved).area >= 0.8 * geom.area, (geom.wkt, moved.wkt)
    assert geom.intersection(old).area <= 0.05 * geom.area


def _version(client, collection) -> str:
    return client.portal.call(client.app.state.source.version, collection)


def _assert_moved(client, unit_code: str, moved: shapely.Geometry, old: shapely.Geometry, z: int) -> None:
    """The tile at the parcel's new place carries it there, with the new attribute."""
    point = moved.representative_point()
    path, tile = _tile_path("parcels", point.x, point.y, z)
    resp = client.get(path)
    assert resp.status_code == 200, (path, resp.status_code)
    found = _feature(resp.content, tile, unit_code)
    assert found is not None, f"parcel {unit_code} missing from {path}"
    assert found[0]["land_use_name"] == NEW_USE
    _assert_at(found[1], moved, old)


def test_edit_moves_only_its_collection_and_tiles_follow_until_rebuilt(store, capsys):
    unit_code, old_use = store.sql("SELECT unit_code, land_use_name FROM parcels ORDER BY area_m2 DESC LIMIT 1")[0]
    with keyed_client(store.settings) as c:
        old_geom = shape(c.get(f"/collections/parcels/items/{unit_code}").json()["geometry"])
        moved = shapely.affinity.translate(old_geom, DX, 0)
        here, there = old_geom.representative_point(), moved.representative_point()
        assert store.overviews_fresh("parcels") and store.overviews_fresh("land_survey")
        before = {coll.id: _version(c, coll) for coll in (PARCELS, SURVEY)}
        old_path, old_tile = _tile_path("parcels", here.x, here.y, OVERVIEW_ZOOM)
        props, geom = _feature(c.get(old_path).content, old_tile, unit_code)
        assert props["land_use_name"] == old_use
        _assert_at(geom, old_geom, moved)
        survey_path, _ = _tile_path("land_survey", here.x, here.y, OVERVIEW_ZOOM)
        assert c.get(survey_path).headers["x-cache"] == "miss"

        store.move_parcel(unit_code)

        after = {coll.id: _version(c, coll) for coll in (PARCELS, SURVEY)}
        assert after["parcels"] != before["parcels"] and after["land_survey"] == before["land_survey"]
        assert int(after["parcels"]) > int(before["parcels"])  # a per-collection counter, not a file stamp
        assert c.get(survey_path).headers["x-cache"] == "hit"  # other collections stay cached
        assert not store.overviews_fresh("parcels") and store.overviews_fresh("land_survey")
        assert stale_collections(store.settings) == ["parcels"]
        for z in (OVERVIEW_ZOOM, OVERVIEW_ZOOM + 1, TABLE_ZOOM):  # overview levels read the table now
            _assert_moved(c, unit_code, moved, old_geom, z)
        item = c.get(f"/collections/parcels/items/{unit_code}").json()
        assert item["properties"]["land_use_name"] == NEW_USE
        assert shape(item["geometry"]).equals_exact(moved, 1e-6)

        args = ["overviews", "--stale", "--collections", "parcels", "land_survey",
                "--data-dir", str(store.settings.data_dir)]
        if store.settings.database_url:
            args += ["--database-url", store.settings.database_url]
        capsys.readouterr()
        assert onemap(args) == 0
        assert "rebuilt 5 overview tables" in capsys.readouterr().out  # parcels z10-z14; land_survey is current
        assert store.overviews_fresh("parcels") and stale_collections(store.settings) == []
        assert _version(c, PARCELS) == after["parcels"]  # rebuilding overviews is not a data edit
        for z in (OVERVIEW_ZOOM, OVERVIEW_ZOOM + 1):  # the overview path now, past the response cache
            tile = WMQ.tile(there.x, there.y, z)
            body = c.portal.call(partial(c.app.state.source.tile, PARCELS, tile_request(PARCELS, WMQ, tile, PROPS),
                                         restriction=EVERYTHING))
            props, geom = _feature(body, tile, unit_code)
            assert props["land_use_name"] == NEW_USE
            _assert_at(geom, moved, old_geom)
            if WMQ.tile(here.x, here.y, z) != tile:
                before_tile = WMQ.tile(here.x, here.y, z)
                req = tile_request(PARCELS, WMQ, before_tile, PROPS)
                body = c.portal.call(partial(c.app.state.source.tile, PARCELS, req, restriction=EVERYTHING))
                assert _feature(body, before_tile, unit_code) is None


def test_unknown_collection_for_overviews_is_an_error(gpkg_store, capsys):
    code = onemap(["overviews", "--collections", "parcels,nope", "--data-dir", str(gpkg_store.settings.data_dir)])
    assert code == 2 and "nope" in capsys.readouterr().err


def test_embedded_store_without_versioning_falls_back_to_the_file_stamp(sample_dir, tmp_path):
    shutil.copy(sample_dir / "onemap.gpkg", tmp_path / "onemap.gpkg")
    conn = open_for_edits(tmp_path / "onemap.gpkg")
    try:  # a store written before versions existed
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                    " AND name LIKE 'onemap_version_%'").fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("DROP TABLE onemap_versions")
        conn.commit()
        assert overview_state(conn)[1] is None  # overviews are used as they are
    finally:
        conn.close()
    settings = _settings(tmp_path)
    with keyed_client(settings) as c:
        stamp = _version(c, PARCELS)
        st = (tmp_path / "onemap.gpkg").stat()
        assert stamp == f"{st.st_mtime_ns:x}-{st.st_size:x}" == _version(c, SURVEY)
        path, _ = _tile_path("parcels", 121.55, 29.85, OVERVIEW_ZOOM)
        assert c.get(path).status_code == 200
    assert stale_collections(settings) == [c.id for c in CATALOG.of_kind(VectorCollection)]
