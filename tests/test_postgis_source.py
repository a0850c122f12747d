"""The PostGIS source against a real throwaway PostGIS cluster.

A small ``parcels`` table (25 squares on a 5 x 5 grid, one registration date each) and a small
``land_survey`` table (integer ids) are created by hand; the full sample loader is not needed here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time

import psycopg
import pytest

from server.catalog import Catalog, load_catalog
from server.errors import InvalidParameter, Unavailable
from server.policy.model import Restriction
from server.settings import Settings
from server.sources.base import Cursor, ItemQuery, TimeInterval
from server.sources.postgis import PostGISSource
from server.sources.postgis_schema import install_versioning
from tests.support import ROOT
from tests.support.pg import PgCluster, start_cluster

ALL_CATALOG = load_catalog(ROOT / "collections")
PARCELS = ALL_CATALOG.get("parcels")
SURVEY = ALL_CATALOG.get("land_survey")
CATALOG = Catalog([PARCELS, SURVEY])
ALL_P, ALL_S = Restriction.unrestricted(PARCELS), Restriction.unrestricted(SURVEY)  # every field and row
N = 25
SIZE = 0.01
FIRST_DATE = dt.date(2015, 1, 1)
UTC = dt.UTC


def code(n: int) -> str:
    """A valid 28-character unit code for parcel n."""
    return f"330212001002GB{n + 1:05d}W00000000"


def corner(n: int) -> tuple[float, float]:
    """Lower-left corner of parcel n's square (more than 7 decimals, to see the rounding)."""
    return 121.4012345678 + 0.05 * (n % 5), 29.7512345678 + 0.03 * (n // 5)


def reg_date(n: int) -> dt.date:
    return FIRST_DATE + dt.timedelta(days=120 * n)


def square(n: int) -> str:
    x, y = corner(n)
    return f"MULTIPOLYGON((({x} {y},{x + SIZE} {y},{x + SIZE} {y + SIZE},{x} {y + SIZE},{x} {y})))"


def create_tables(url: str) -> None:
    """Tables shaped as collections/parcels.yaml and land_survey.yaml, with a few rows."""
    types = {"string": "text", "number": "double precision", "date": "date"}
    cols = ", ".join(f"{f.name} {types[f.type]}" for f in PARCELS.fields)
    cols = cols.replace("unit_code text", "unit_code text PRIMARY KEY")
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE parcels ({cols}, geom geometry(MultiPolygon, 4490))")
        conn.execute("CREATE INDEX ON parcels USING gist (geom)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO parcels (unit_code, parcel_code, ownership, parcel_type, right_type, land_use,"
                " land_use_name, area_m2, registration_date, owner_name, owner_id_number, town_code, geom)"
                " VALUES (%s, %s, 'G', 'B', '国有建设用地使用权', '0701', '城镇住宅用地', %s, %s, %s, NULL,"
                " '330212001', ST_GeomFromText(%s, 4490))",
                [(code(n), code(n)[:19], 1000.25 + n, reg_date(n), f"权利人{n}", square(n)) for n in range(N)],
            )
        conn.execute(
            "CREATE TABLE land_survey (id bigint PRIMARY KEY, land_code text, land_name text, class_code text,"
            " class_name text, county_code text, survey_year bigint, survey_date date, area_m2 double precision,"
            " geom geometry(MultiPolygon, 4490))"
        )
        conn.execute(
            "INSERT INTO land_survey SELECT i, '0101', '水田', '01', '耕地', '330212', 2023, '2023-12-31', 500.5,"
            " ST_Multi(ST_MakeEnvelope(121.5 + i * 0.01, 29.8, 121.505 + i * 0.01, 29.805, 4490))"
            " FROM generate_series(1, 3) AS i"
        )
        install_versioning(conn, CATALOG)


@pytest.fixture(scope="module")
def cluster():
    pg = start_cluster()
    try:
        create_tables(pg.url)
        yield pg
    finally:
        pg.stop()


def settings(pg: PgCluster, **overrides) -> Settings:
    values = dict(database_url=pg.url, pool_min_size=1, pool_max_size=3, statement_timeout_ms=5000)
    return Settings(**(values | overrides))


@pytest.fixture
async def source(cluster):
    src = PostGISSource(settings(cluster), CATALOG)
    await src.open()
    yield src
    await src.close()


def q(limit=10, props=("unit_code", "registration_date"), **kw) -> ItemQuery:
    return ItemQuery(properties=props, limit=limit, **kw)


def ids(page) -> list:
    return [f["id"] for f in json.loads(page.features)]


async def test_feature_json_shape(source):
    props = ("registration_date", "area_m2", "unit_code", "no_such_field")
    page = await source.query(PARCELS, q(props=props), restriction=ALL_P)
    features = json.loads(page.features)
    assert page.number_returned == 10 and len(features) == 10
    f = features[0]
    assert list(f) == ["type", "id", "geometry", "properties"]
    assert f["type"] == "Feature" and f["id"] == code(0)
    assert list(f["properties"]) == ["unit_code", "area_m2", "registration_date"]  # catalog order
    assert f["properties"] == {"unit_code": code(0), "area_m2": 1000.25, "registration_date": "2015-01-01"}
    assert f["geometry"]["type"] == "MultiPolygon" and "crs" not in f["geometry"]
    x, y = f["geometry"]["coordinates"][0][0][0]
    assert (x, y) == (round(corner(0)[0], 7), round(corner(0)[1], 7))
    assert not re.search(rb"\d\.\d{8,}", page.features)


async def test_bbox_selects_intersecting(source):
    (x1, y1), (x2, y2) = corner(1), corner(7)  # parcels 1, 2, 6, 7
    moved = (x1 + 0.001, y1 + 0.001, x2 + 0.001, y2 + 0.001)
    page = await source.query(PARCELS, q(bbox=moved), restriction=ALL_P)
    assert ids(page) == [code(n) for n in (1, 2, 6, 7)]
    assert page.number_matched == 4 and page.next_key is None and page.prev_key is None
    empty = await source.query(PARCELS, q(bbox=(100.0, 10.0, 100.1, 10.1)), restriction=ALL_P)
    assert empty.features == b"[]" and empty.number_returned == 0 and empty.number_matched == 0


def test_bbox_shortcut_never_admits_a_row_outside(cluster):
    """A row whose box lies inside the shrunk bbox is taken without ST_Intersects; single-precision
    boxes must not let a tiny geometry just outside the bbox through (the exact test decides)."""
    from psycopg import sql

    from server.sources.postgis_page import bbox_condition, inner_box

    x, y = 121.500005, 29.8  # float4 values here are 121.5 and 121.5000076: x lies between them
    rows = {  # name: (xmin, ymin, xmax, ymax) of a tiny square
        "just_outside": (x - 4e-6, y + 0.002, x - 2e-6, y + 0.002003),  # left of the bbox, x's float4 cell
        "deep_inside": (x + 0.003, y + 0.003, x + 0.003003, y + 0.003003),
        "on_edge": (x - 1e-6, y + 0.004, x + 1e-6, y + 0.004002),
    }
    env = sql.SQL("ST_MakeEnvelope(%(xmin)s, %(ymin)s, %(xmax)s, %(ymax)s, 4490)")
    geom = sql.Identifier("geom")
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE edge_rows (name text, geom geometry(Polygon, 4490))")
        for name, box in rows.items():
            conn.execute("INSERT INTO edge_rows VALUES (%s, ST_MakeEnvelope(%s, %s, %s, %s, 4490))", (name, *box))
        for bbox in [(x, y, x + 0.01, y + 0.01), (x, y, x + 0.00015, y + 0.01)]:  # the second too thin to shrink
            params = dict(zip(("xmin", "ymin", "xmax", "ymax"), bbox, strict=True)) | inner_box(bbox)
            found = {}
            for exact in (None, env):
                statement = sql.SQL("SELECT array_agg(name ORDER BY name) FROM edge_rows WHERE {}").format(
                    bbox_condition(geom, env, exact, 4490))
                found[exact is None] = conn.execute(statement, params).fetchone()[0] or []
            assert found[True] == found[False]
            assert "just_outside" not in found[True] and "on_edge" in found[True]
        inside = conn.execute(sql.SQL("SELECT array_agg(name) FROM edge_rows WHERE {} @ {}").format(
            geom, sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, 4490)")), (x, y, x + 0.01, y + 0.01)).fetchone()[0]
        assert "just_outside" in inside  # what an unshrunk box would have let through


async def test_datetime_compares_utc_calendar_dates(source):
    def at(n: int, hour: int) -> dt.datetime:
        return dt.datetime.combine(reg_date(n), dt.time(hour), tzinfo=dt.timezone(dt.timedelta(hours=8)))

    def midnight(n: int) -> dt.datetime:
        return dt.datetime.combine(reg_date(n), dt.time(), UTC)

    closed = TimeInterval(midnight(3), midnight(7))
    assert ids(await source.query(PARCELS, q(interval=closed), restriction=ALL_P)) == [code(n) for n in range(3, 8)]
    # 02:00 at UTC+8 is the previous UTC day: the start still includes parcel 3, the end excludes 7
    shifted = TimeInterval(at(3, 2), at(7, 2))
    assert ids(await source.query(PARCELS, q(interval=shifted), restriction=ALL_P)) == [code(n) for n in range(3, 7)]
    open_end = TimeInterval(midnight(20), None)
    page = await source.query(PARCELS, q(interval=open_end), restriction=ALL_P)
    assert ids(page) == [code(n) for n in range(20, 25)] and page.number_matched == 5


async def test_forward_and_backward_paging(source):
    seen, cursor, pages = [], None, []
    for _ in range(5):
        page = await source.query(PARCELS, q(cursor=cursor), restriction=ALL_P)
        pages.append(page)
        seen += ids(page)
        if page.next_key is None:
            break
        cursor = Cursor(page.next_key)
    assert seen == [code(n) for n in range(N)]
    assert [p.number_returned for p in pages] == [10, 10, 5]
    assert [p.prev_key for p in pages] == [None, code(10), code(20)]
    assert all(p.number_matched is None for p in pages)

    back, cursor = [], Cursor(pages[-1].prev_key, forward=False)
    for _ in range(5):
        page = await source.query(PARCELS, q(cursor=cursor), restriction=ALL_P)
        back = ids(page) + back
        assert ids(page) == sorted(ids(page)) and page.next_key == ids(page)[-1]
        if page.prev_key is None:
            break
        cursor = Cursor(page.prev_key, forward=False)
    assert back == [code(n) for n in range(20)]


async def test_get(source):
    raw = await source.get(PARCELS, code(5), ("area_m2", "unit_code"), restriction=ALL_P)
    feature = json.loads(raw)
    assert feature["id"] == code(5) and feature["properties"] == {"unit_code": code(5), "area_m2": 1005.25}
    assert await source.get(PARCELS, code(99), (), restriction=ALL_P) is None
    survey = json.loads(await source.get(SURVEY, "2", ("land_code",), restriction=ALL_S))
    assert survey["id"] == 2 and survey["properties"] == {"land_code": "0101"}
    for bad in ("abc", "02", "2.0", "", "1 OR 1=1"):
        assert await source.get(SURVEY, bad, (), restriction=ALL_S) is None
    with pytest.raises(InvalidParameter, match="64-bit"):  # names nothing on any backend: a client error
        await source.get(SURVEY, "99999999999999999999", (), restriction=ALL_S)


async def test_foreign_cursor_is_a_client_error(source):
    with pytest.raises(InvalidParameter, match="cursor"):
        await source.query(SURVEY, q(props=(), cursor=Cursor("abc")), restriction=ALL_S)


async def test_extent(source):
    extent = await source.extent(PARCELS, restriction=ALL_P)
    x0, y0 = corner(0)
    x1, y1 = corner(24)
    assert extent.bbox == pytest.approx((x0, y0, x1 + SIZE, y1 + SIZE), abs=1e-6)
    assert extent.interval == ("2015-01-01T00:00:00Z", f"{reg_date(24).isoformat()}T00:00:00Z")


async def test_version_bumps_on_change_and_extent_follows(source, cluster):
    before, extent_before = await source.version(PARCELS), await source.extent(PARCELS, restriction=ALL_P)
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("UPDATE parcels SET area_m2 = area_m2 WHERE unit_code = %s", [code(3)])
        after_update = await source.version(PARCELS)
        conn.execute(
            "INSERT INTO parcels (unit_code, geom) VALUES ('x', ST_Multi(ST_MakeEnvelope(122, 30, 122.1, 30.1, 4490)))"
        )
        try:
            assert (await source.extent(PARCELS, restriction=ALL_P)).bbox[2:] == pytest.approx((122.1, 30.1))
        finally:
            conn.execute("DELETE FROM parcels WHERE unit_code = 'x'")
    assert int(before) < int(after_update) < int(await source.version(PARCELS))
    assert (await source.extent(PARCELS, restriction=ALL_P)).bbox == extent_before.bbox
    assert await source.version(ALL_CATALOG.get("control_lines")) == "0"


async def test_version_without_versioning_table(source, cluster):
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("ALTER TABLE onemap_versions RENAME TO onemap_versions_aside")
        try:
            assert await source.version(PARCELS) == "0"
        finally:
            conn.execute("ALTER TABLE onemap_versions_aside RENAME TO onemap_versions")
    assert await source.version(PARCELS) != "0"


async def test_check_reports_missing_tables_and_columns(source, cluster):
    assert await source.check() == []
    extra_field = PARCELS.fields[0].model_copy(update={"name": "extra"})
    extra = PARCELS.model_copy(update={"fields": [*PARCELS.fields, extra_field]})
    broken = PostGISSource(settings(cluster), Catalog([extra, ALL_CATALOG.get("control_lines")]))
    await broken.open()
    try:
        found = await broken.check()
    finally:
        await broken.close()
    assert found == [
        "parcels: column 'parcels.extra' does not exist",
        "control_lines: table 'control_lines' does not exist",
    ]


async def test_statement_timeout_is_unavailable(cluster):
    src = PostGISSource(settings(cluster, statement_timeout_ms=100), CATALOG)
    await src.open()
    try:
        with psycopg.connect(cluster.url) as locker:
            locker.execute("LOCK TABLE parcels IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(Unavailable) as err:
                await src.query(PARCELS, q(), restriction=ALL_P)
            assert time.monotonic() - started < 2
            locker.rollback()
        assert err.value.status == 503 and "Retry-After" in err.value.headers
        assert "SELECT" not in err.value.description and "parcels" not in err.value.description
        assert (await src.query(PARCELS, q(), restriction=ALL_P)).number_returned == 10  # the connection is usable
    finally:
        await src.close()


def terminate_app_backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'onemap' AND pid <> pg_backend_pid()"
        ).fetchone()[0]


async def test_pool_heals_after_backends_are_terminated(source, cluster):
    # several pooled connections
    await asyncio.gather(*(source.query(PARCELS, q(), restriction=ALL_P) for _ in range(3)))
    for _ in range(2):
        assert terminate_app_backends(cluster.url) >= 1
        pages = await asyncio.gather(*(source.query(PARCELS, q(), restriction=ALL_P) for _ in range(3)))
        assert all(p.number_returned == 10 for p in pages)


async def test_pool_recovers_when_database_comes_back(cluster):
    src = PostGISSource(settings(cluster), CATALOG, acquire_timeout=0.5)
    await src.open()
    try:
        assert (await src.query(PARCELS, q(), restriction=ALL_P)).number_returned == 10
        cluster.halt()
        try:
            with pytest.raises(Unavailable):
                await src.query(PARCELS, q(), restriction=ALL_P)
        finally:
            cluster.resume()
        deadline = time.monotonic() + 15
        while True:
            try:
                assert (await src.query(PARCELS, q(), restriction=ALL_P)).number_returned == 10
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the pool did not reconnect"
                await asyncio.sleep(0.2)
    finally:
        await src.close()
