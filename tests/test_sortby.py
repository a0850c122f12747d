"""sortby with keyset paging: any order, both directions, NULLs, on every backend, and bad input."""

from __future__ import annotations

import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import shape

from server.sources.keyset import SortKey, order_keys, sqlite_after, sqlite_order

ITEMS = "/collections/parcels/items"
BBOX = "121.52,29.82,121.56,29.85"
SITE = shapely.Point(121.54, 29.835).buffer(0.012, 50)  # round: most rows near it meet it, not all


def _next(doc: dict, rel: str = "next") -> dict | None:
    found = [ln for ln in doc["links"] if ln["rel"] == rel]
    return parse_qs(urlsplit(found[0]["href"]).query) if found else None


def walk(client, params: dict, rel: str = "next", start: dict | None = None) -> list[dict]:
    """Every feature reached by following ``rel`` links from a first request."""
    doc = client.get(ITEMS, params=start or params).json()
    pages = [doc]
    while (query := _next(doc, rel)) is not None:
        doc = client.get(ITEMS, params={k: v[0] for k, v in query.items()}).json()
        pages.append(doc)
        assert len(pages) < 100
    if rel == "prev":
        pages.reverse()
    return [f for p in pages for f in p["features"]]


def expected_order(features: list[dict], keys: list[tuple[str, bool]]) -> list:
    """Ids in the order the keys (NULL after every value ascending) and then the id ascending give."""
    rows = sorted(features, key=lambda f: f["id"])
    for name, descending in reversed(keys):
        present = sorted((f for f in rows if f["properties"][name] is not None),
                         key=lambda f: f["properties"][name], reverse=descending)
        nulls = [f for f in rows if f["properties"][name] is None]
        rows = nulls + present if descending else present + nulls
    return [f["id"] for f in rows]


def assert_both_ways(client, params: dict, every: list[dict], keys: list[tuple[str, bool]]) -> None:
    """Following ``next`` from the first page, and ``prev`` back from the last, gives ``every`` in order."""
    forward = walk(client, params)
    assert [f["id"] for f in forward] == expected_order(every, keys)
    last = client.get(ITEMS, params=params).json()
    while (query := _next(last)) is not None:
        last = client.get(ITEMS, params={k: v[0] for k, v in query.items()}).json()
    back_start = {k: v[0] for k, v in _next(last, "prev").items()}
    backward = walk(client, params, "prev", back_start) + last["features"]
    assert [f["id"] for f in backward] == [f["id"] for f in forward]


@pytest.mark.parametrize("sortby, keys", [
    ("-area_m2", [("area_m2", True)]),
    ("land_use,-registration_date", [("land_use", False), ("registration_date", True)]),
    ("+right_type,area_m2", [("right_type", False), ("area_m2", False)]),
    ("-unit_code", [("unit_code", True)]),
])
def test_pages_follow_the_order_both_ways(client, sortby, keys):
    every = client.get(ITEMS, params={"bbox": BBOX, "limit": 5000}).json()["features"]
    assert len(every) > 60
    assert_both_ways(client, {"bbox": BBOX, "limit": 23, "sortby": sortby}, every, keys)


@pytest.mark.parametrize("sortby, keys", [
    (None, []),
    ("-area_m2", [("area_m2", True)]),
    ("town_code,-area_m2", [("town_code", False), ("area_m2", True)]),
])
@pytest.mark.parametrize("text", [
    f"S_INTERSECTS(geometry, {SITE.wkt})",
    f"area_m2 > 20000 AND (S_INTERSECTS(geometry, {SITE.wkt}) OR land_use = '0702')",
])
def test_a_spatial_filter_pages_in_order_both_ways(client, text, sortby, keys):
    """PostGIS runs a filter's exact geometry tests on candidates already in the page's order, only
    until the page is full: each page still holds exactly the next matching rows."""
    def matches(f: dict) -> bool:
        inside = shape(f["geometry"]).intersects(SITE)
        area, use = f["properties"]["area_m2"], f["properties"]["land_use"]
        return inside if "OR" not in text else area is not None and area > 20000 and (inside or use == "0702")

    every = [f for f in client.get(ITEMS, params={"limit": 10000}).json()["features"] if matches(f)]
    assert len(every) > 40
    params = {"filter": text, "limit": 17, **({"sortby": sortby} if sortby else {})}
    assert_both_ways(client, params, every, keys)


def test_sorting_a_field_not_returned(client):
    doc = client.get(ITEMS, params={"limit": 30, "sortby": "-area_m2", "properties": "unit_code"}).json()
    assert all(set(f["properties"]) == {"unit_code"} for f in doc["features"])
    full = client.get(ITEMS, params={"limit": 30, "sortby": "-area_m2"}).json()
    assert [f["id"] for f in doc["features"]] == [f["id"] for f in full["features"]]
    areas = [f["properties"]["area_m2"] for f in full["features"]]
    assert areas == sorted(areas, reverse=True)


@pytest.mark.parametrize("sortby, words", [
    ("nope", ["sortby", "unknown property 'nope'"]),
    ("area_m2,-area_m2", ["sortby", "more than once"]),
    ("area_m2,,", ["sortby", "empty"]),
    ("-", ["sortby", "empty"]),
    (",".join(["area_m2", "land_use", "right_type", "ownership", "parcel_type", "town_code", "parcel_code",
               "land_use_name", "registration_date"]), ["sortby", "at most 8"]),
])
def test_bad_sortby_is_400(client, sortby, words):
    r = client.get(ITEMS, params={"sortby": sortby})
    assert r.status_code == 400 and all(w in r.json()["description"] for w in words), r.json()


def test_cursor_of_another_order_is_400(client):
    doc = client.get(ITEMS, params={"limit": 5, "sortby": "-area_m2"}).json()
    cursor = _next(doc)["cursor"][0]
    r = client.get(ITEMS, params={"limit": 5, "sortby": "area_m2", "cursor": cursor})
    assert r.status_code == 400 and "cursor" in r.json()["description"]
    plain = client.get(ITEMS, params={"limit": 5, "cursor": cursor})
    assert plain.status_code == 400


VALUE = st.one_of(st.none(), st.integers(0, 3))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(VALUE, VALUE), min_size=1, max_size=25),
       dirs=st.tuples(st.booleans(), st.booleans()), pick=st.integers(0, 24), forward=st.booleans())
def test_keyset_predicate_matches_the_order(rows, dirs, pick, forward):
    """For any data with NULLs and any directions, "after row r" is exactly the rows after r in the order."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, a, b) for i, (a, b) in enumerate(rows)])
    sortby = [SortKey("a", dirs[0]), SortKey("b", dirs[1])]
    keys = order_keys(sortby, "id", forward)
    ordered = [r[0] for r in conn.execute(f"SELECT id FROM t ORDER BY {sqlite_order(keys)}")]
    boundary = ordered[pick % len(ordered)]
    a, b = conn.execute("SELECT a, b FROM t WHERE id = ?", [boundary]).fetchone()
    where, params = sqlite_after(keys, [a, b, boundary])
    after = [r[0] for r in conn.execute(f"SELECT id FROM t WHERE {where} ORDER BY {sqlite_order(keys)}", params)]
    assert after == ordered[ordered.index(boundary) + 1:]


@pytest.fixture(scope="module")
def pg_conn(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t (id integer PRIMARY KEY, a integer, b integer)")
        yield conn


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(VALUE, VALUE), min_size=1, max_size=25),
       dirs=st.tuples(st.booleans(), st.booleans()), pick=st.integers(0, 24), forward=st.booleans())
def test_keyset_predicate_matches_the_order_in_postgis(pg_conn, rows, dirs, pick, forward):
    from psycopg import sql

    from server.sources.keyset import pg_after, pg_order

    pg_conn.execute("TRUNCATE t")
    with pg_conn.cursor() as cur:
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s)", [(i, a, b) for i, (a, b) in enumerate(rows)])
    keys = order_keys([SortKey("a", dirs[0]), SortKey("b", dirs[1])], "id", forward)
    order = pg_order(keys)
    ordered = [r[0] for r in pg_conn.execute(sql.SQL("SELECT id FROM t ORDER BY {}").format(order))]
    boundary = ordered[pick % len(ordered)]
    a, b = pg_conn.execute("SELECT a, b FROM t WHERE id = %s", [boundary]).fetchone()
    where, params = pg_after(keys, [a, b, boundary])
    query = sql.SQL("SELECT id FROM t WHERE {} ORDER BY {}").format(where, order)
    assert [r[0] for r in pg_conn.execute(query, params)] == ordered[ordered.index(boundary) + 1:]
