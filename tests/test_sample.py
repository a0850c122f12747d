"""The synthetic sample county, read back from the GeoPackage it writes.

One small build (2 000 parcels) is checked for: a valid GeoPackage with working R-tree indexes, an
exact tiling by the land survey and by the planning zones, valid and consistent unit codes,
farmland on cropland, buildings inside their parcels, and byte-identical rebuilds.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely

from server.codes.classes import LAND_SURVEY_CLASSES, PLANNING_USE_CLASSES, land_class
from server.codes.unit_code import parse_unit_code
from server.sample import COLLECTIONS, build_sample, sample_collections
from server.sample.names import credit_code_valid, resident_id_valid
from server.sources.gpkg_geometry import decode_gpkg_geometry, encode_gpkg_geometry, gpkg_envelope, gpkg_srs_id
from server.stores import GPKG_NAME
from server.stores.geopackage import GeoPackageStore
from server.stores.gpkg_writer import open_for_edits

SCALE = 2000
BOX = (121.40, 29.75, 121.70, 29.95)
RIGHTS = {
    ("G", "B"): "国有建设用地使用权", ("J", "B"): "集体建设用地使用权", ("J", "C"): "宅基地使用权",
    ("J", "D"): "土地承包经营权", ("J", "E"): "林地承包经营权", ("G", "L"): "林地使用权",
    ("J", "F"): "土地承包经营权", ("J", "N"): "土地经营权", ("J", "A"): "集体土地所有权",
}
PERSON_TYPES = {"C", "D", "E", "F"}


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    counts = build_sample(SCALE, GeoPackageStore(out / GPKG_NAME))
    assert counts["parcels"] == SCALE
    return out / "onemap.gpkg"


@pytest.fixture(scope="module")
def db(gpkg):
    conn = sqlite3.connect(f"file:{gpkg}?mode=ro", uri=True)
    yield conn
    conn.close()


def rows(db, table: str, columns: str) -> tuple[list[tuple], np.ndarray]:
    """Attribute tuples and decoded shapely geometries of a table, in fid order."""
    data = db.execute(f'SELECT {columns}, geom FROM "{table}" ORDER BY fid').fetchall()
    return [r[:-1] for r in data], shapely.from_wkb([decode_gpkg_geometry(r[-1]) for r in data])


_TO_GK = pyproj.Transformer.from_crs(4490, 4549, always_xy=True)


def gk_area(geoms: np.ndarray) -> np.ndarray:
    """Areas in m² computed in the Gauss-Kruger zone EPSG:4549."""
    coords = shapely.get_coordinates(geoms)
    x, y = _TO_GK.transform(coords[:, 0], coords[:, 1])
    return shapely.area(shapely.set_coordinates(geoms.copy(), np.column_stack([x, y])))


# -- the GeoPackage container -----------------------------------------------------------------------

def test_geopackage_header_and_core_tables(db):
    assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
    assert db.execute("PRAGMA user_version").fetchone()[0] == 10300
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    srs = dict(db.execute("SELECT srs_id, definition FROM gpkg_spatial_ref_sys").fetchall())
    assert {-1, 0, 4326, 4490} <= set(srs)
    assert "China Geodetic Coordinate System 2000" in srs[4490] and 'AUTHORITY["EPSG","4490"]' in srs[4490]
    contents = {r[0]: r[1:] for r in db.execute(
        "SELECT table_name, data_type, srs_id, min_x, min_y, max_x, max_y FROM gpkg_contents")}
    assert set(contents) == set(COLLECTIONS)
    for data_type, srs_id, *bounds in contents.values():
        assert (data_type, srs_id) == ("features", 4490)
        assert BOX[0] <= bounds[0] < bounds[2] <= BOX[2] and BOX[1] <= bounds[1] < bounds[3] <= BOX[3]
    geom_cols = db.execute(
        "SELECT table_name, column_name, geometry_type_name, srs_id, z, m FROM gpkg_geometry_columns")
    assert sorted(geom_cols) == sorted((t, "geom", "MULTIPOLYGON", 4490, 0, 0) for t in COLLECTIONS)
    ext = db.execute("SELECT table_name, column_name, extension_name, scope FROM gpkg_extensions").fetchall()
    assert sorted(ext) == sorted((t, "geom", "gpkg_rtree_index", "write-only") for t in COLLECTIONS)


def test_tables_follow_the_catalog_and_index_the_id(db):
    for c in sample_collections():
        cols = [r[1] for r in db.execute(f'PRAGMA table_info("{c.source.table}")')]
        assert cols == ["fid", *c.field_names, "geom"]
        unique = [r[1] for r in db.execute(f'PRAGMA index_list("{c.source.table}")') if r[2] == 1]
        indexed = {db.execute(f'PRAGMA index_info("{name}")').fetchone()[2] for name in unique}
        assert c.source.id_field in indexed
        triggers = {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (c.source.table,))}
        assert {f"rtree_{c.source.table}_geom_{s}" for s in ("insert", "update2", "update4", "update5",
                                                               "update6", "update7", "delete")} | {
            f"onemap_version_{c.source.table}_{e}" for e in ("insert", "update", "delete")} == triggers


def test_rtree_matches_every_row(db):
    for table in COLLECTIONS:
        n = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        assert n > 0
        assert db.execute(f'SELECT count(*) FROM "rtree_{table}_geom"').fetchone()[0] == n
        joined = db.execute(
            f'SELECT t.geom, r.minx, r.maxx, r.miny, r.maxy FROM "{table}" t '
            f'JOIN "rtree_{table}_geom" r ON r.id = t.fid'
        ).fetchall()
        assert len(joined) == n
        for blob, *box in joined[:: max(1, n // 200)]:
            env = gpkg_envelope(blob)
            assert gpkg_srs_id(blob) == 4490
            # the R-tree keeps 32-bit floats, rounded outwards
            assert box[0] <= env[0] and box[1] >= env[1] and box[2] <= env[2] and box[3] >= env[3]
            assert all(abs(a - b) < 3e-5 for a, b in zip(env, box, strict=True))


def test_geometries_decode_valid_multipolygons_in_the_box(db):
    for table in COLLECTIONS:
        _, geoms = rows(db, table, "fid")
        assert set(shapely.get_type_id(geoms)) == {shapely.GeometryType.MULTIPOLYGON}
        assert shapely.is_valid(geoms).all(), table
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        assert BOX[0] <= minx and maxx <= BOX[2] and BOX[1] <= miny and maxy <= BOX[3]


def test_rtree_triggers_follow_edits(gpkg, tmp_path):
    copy = tmp_path / "edit.gpkg"
    shutil.copy(gpkg, copy)
    conn = open_for_edits(copy)
    fid, blob = conn.execute("SELECT fid, geom FROM parcels ORDER BY fid LIMIT 1").fetchone()
    moved = shapely.affinity.translate(shapely.from_wkb(decode_gpkg_geometry(blob)), 0.001, 0.001)
    minx, miny, maxx, maxy = moved.bounds
    new_blob = encode_gpkg_geometry(shapely.to_wkb(moved, flavor="iso"), 4490, (minx, maxx, miny, maxy))
    conn.execute("UPDATE parcels SET geom = ? WHERE fid = ?", (new_blob, fid))
    box = conn.execute("SELECT minx, miny FROM rtree_parcels_geom WHERE id = ?", (fid,)).fetchone()
    assert box == pytest.approx((minx, miny), abs=1e-5)
    conn.execute("DELETE FROM parcels WHERE fid = ?", (fid,))
    assert conn.execute("SELECT count(*) FROM rtree_parcels_geom WHERE id = ?", (fid,)).fetchone()[0] == 0
    conn.execute("UPDATE buildings SET fid = 999999 WHERE fid = 1")
    assert conn.execute("SELECT count(*) FROM rtree_buildings_geom WHERE id = 999999").fetchone()[0] == 1
    conn.close()


# -- tilings -----------------------------------------------------------------------------------------

def test_admin_boundaries_county_and_towns(db):
    attrs, geoms = rows(db, "admin_boundaries", "code, name, level, parent_code")
    assert attrs[0] == ("330212", attrs[0][1], "county", "330200")
    towns = attrs[1:]
    assert len(towns) == 8 and all(re.fullmatch(r"330212\d{3}", t[0]) and t[2:] == ("town", "330212") for t in towns)
    county = geoms[0]
    assert shapely.union_all(geoms[1:]).symmetric_difference(county).area < 1e-6 * county.area
    assert abs(shapely.area(geoms[1:]).sum() - county.area) < 1e-6 * county.area


@pytest.mark.parametrize("table", ["land_survey", "planning_zones"])
def test_layers_tile_the_county_without_gaps_or_overlaps(db, table):
    _, admin = rows(db, "admin_boundaries", "level")
    county = admin[0]
    attrs, geoms = rows(db, table, "area_m2")
    union = shapely.union_all(geoms)
    assert abs(union.area - county.area) < 1e-6 * county.area, "gaps"
    assert abs(shapely.area(geoms).sum() - union.area) < 1e-6 * union.area, "overlaps"
    assert union.symmetric_difference(county).area < 1e-6 * county.area
    area_m2 = np.array([a[0] for a in attrs])
    assert abs(area_m2.sum() - gk_area(np.array([county]))[0]) < 1e-6 * area_m2.sum()


def test_land_survey_attributes(db):
    attrs, geoms = rows(db, "land_survey", "id, land_code, land_name, class_code, class_name, county_code,"
                                           " survey_year, survey_date, area_m2")
    assert [a[0] for a in attrs] == list(range(1, len(attrs) + 1))
    assert 500 < len(attrs) < 5000
    for a in attrs:
        assert land_class(a[1]) == a[1:5] and a[5:8] == ("330212", 2023, "2023-12-31")
    codes = {a[1] for a in attrs}
    assert {"0101", "0301", "0701", "0702", "1101", "1003", "1004", "0601", "05H1"} <= codes
    area = np.array([a[8] for a in attrs])
    assert np.allclose(area, gk_area(geoms), rtol=1e-6, atol=0.01)


def test_planning_zone_codes(db):
    attrs, _ = rows(db, "planning_zones", "use_code, use_name, approved_date")
    assert all(PLANNING_USE_CLASSES[c] == n and d == "2023-06-30" for c, n, d in attrs)
    assert {"01", "03", "07", "12", "17"} <= {a[0] for a in attrs}


# -- control lines -----------------------------------------------------------------------------------

def test_control_lines(db):
    attrs, geoms = rows(db, "control_lines", "line_type, line_name, approved_date, area_m2")
    types = np.array([a[0] for a in attrs])
    assert set(types) == {"ecological_red_line", "permanent_basic_farmland", "urban_development_boundary"}
    assert (types == "urban_development_boundary").sum() == 8
    survey, patches = rows(db, "land_survey", "land_code")
    cropland = shapely.union_all(patches[np.isin([s[0] for s in survey], ["0101", "0102", "0103"])])
    farmland = shapely.union_all(geoms[types == "permanent_basic_farmland"])
    assert farmland.area > 0.05 * cropland.area
    assert farmland.difference(cropland).area < 1e-6 * farmland.area, "farmland off cropland"
    udb = shapely.union_all(geoms[types == "urban_development_boundary"])
    eco = shapely.union_all(geoms[types == "ecological_red_line"])
    assert farmland.intersection(udb).area < 1e-6 * farmland.area
    assert eco.intersection(udb).area < 1e-6 * eco.area and eco.intersection(farmland).area < 1e-6 * eco.area
    assert np.allclose([a[3] for a in attrs], gk_area(geoms), rtol=1e-6, atol=0.01)


# -- parcels and buildings ---------------------------------------------------------------------------

def test_parcel_codes_are_valid_unique_and_consistent(db):
    attrs, geoms = rows(db, "parcels", "unit_code, parcel_code, ownership, parcel_type, right_type, land_use,"
                                       " land_use_name, registration_date, owner_name, owner_id_number, town_code")
    assert len(attrs) == SCALE
    codes = [a[0] for a in attrs]
    assert len(set(codes)) == SCALE and codes == sorted(codes)
    towns = {r[0] for r in db.execute("SELECT code FROM admin_boundaries WHERE level = 'town'")}
    for code, parcel, own, ptype, right, use, use_name, reg, owner, owner_id, town in attrs:
        u = parse_unit_code(code)
        assert u.parcel_code == parcel == code[:19] and u.fixture_type + u.fixture_number == "W00000000"
        assert (u.ownership, u.parcel_type) == (own, ptype) and u.county == "330212"
        assert RIGHTS[own, ptype] == right
        assert LAND_SURVEY_CLASSES[use] == use_name
        assert town in towns and town[-3:] == u.zone
        assert "2015-01-01" <= reg <= "2024-12-31"
        assert owner
        if ptype in PERSON_TYPES:
            assert resident_id_valid(owner_id) and owner_id.startswith("330212"), owner_id
        else:
            assert credit_code_valid(owner_id), owner_id
    assert {"GB", "JC", "JD", "JE"} <= {a[2] + a[3] for a in attrs}


def test_parcels_lie_on_survey_patches_of_their_use(db):
    attrs, parcels = rows(db, "parcels", "land_use")
    survey, patches = rows(db, "land_survey", "land_code")
    tree = shapely.STRtree(patches)
    points = shapely.point_on_surface(parcels)
    pidx, sidx = tree.query(points, predicate="within")
    assert len(np.unique(pidx)) == len(parcels)
    assert all(attrs[p][0] == survey[s][0] for p, s in zip(pidx, sidx, strict=True))
    assert shapely.area(parcels).sum() < shapely.area(patches).sum()


def test_buildings_stand_inside_their_parcels(db):
    attrs, buildings = rows(db, "buildings", "unit_code, parcel_code, height_m, floors, building_use, completed_date")
    parcel_attrs, parcel_geoms = rows(db, "parcels", "parcel_code")
    parcels = {a[0]: g for a, g in zip(parcel_attrs, parcel_geoms, strict=True)}
    uses = dict(db.execute("SELECT parcel_code, land_use FROM parcels").fetchall())
    assert len(attrs) > 100
    codes = [a[0] for a in attrs]
    assert len(set(codes)) == len(codes) and codes == sorted(codes)
    owners = np.array([parcels[a[1]] for a in attrs])
    assert shapely.within(buildings, owners).all()
    for code, parcel, height, floors, use, completed in attrs:
        u = parse_unit_code(code)
        assert u.parcel_code == parcel and u.fixture_type == "F" and re.fullmatch(r"\d{4}0000", u.fixture_number)
        assert 2.5 <= height / floors <= 8.5 and floors >= 1
        assert use and "1980-01-01" <= completed <= "2024-12-31"
        assert uses[parcel] in {"0701", "0702", "05H1", "0508", "0601", "0602", "08H1", "08H2", "0809", "1005", "09"}


# -- determinism -------------------------------------------------------------------------------------

def test_rebuild_gives_identical_bytes(gpkg, tmp_path):
    build_sample(SCALE, GeoPackageStore(tmp_path / GPKG_NAME))
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (gpkg, tmp_path / "onemap.gpkg")]
    assert digest[0] == digest[1]
    assert not list(tmp_path.glob(".*tmp"))


def test_scale_below_minimum_is_refused(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        build_sample(10, GeoPackageStore(tmp_path / GPKG_NAME))
    assert not list(tmp_path.iterdir())
