"""Any client string either parses or raises InvalidParameter with a description; nothing else escapes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.catalog import load_catalog
from server.errors import InvalidParameter
from server.features.params import parse_bbox, parse_properties
from server.params import parse_datetime, parse_limit
from server.settings import Settings
from server.sources import Cursor, TimeInterval

PARCELS = load_catalog(Settings().collections_dir).get("parcels")
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1000, 1000)).map(str)
BBOXISH = st.lists(NUMBERS, min_size=0, max_size=7).map(",".join)
DATEISH = st.one_of(
    st.text(max_size=40),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.tuples(st.dates(), st.dates()).map(lambda p: f"{p[0]}/{p[1]}"),
    st.sampled_from(["..", "../..", "2020-02-30", "2020-01-01T25:00:00Z", "/2020-01-01", "2020-01-01/"]),
)


def _parses_or_400(fn, *args):
    try:
        fn(*args)
    except InvalidParameter as exc:
        assert exc.description and exc.status == 400


@settings(max_examples=300, deadline=None)
@given(st.one_of(BBOXISH, st.text(max_size=60)))
def test_bbox(raw):
    _parses_or_400(parse_bbox, raw)


@settings(max_examples=300, deadline=None)
@given(DATEISH)
def test_datetime(raw):
    _parses_or_400(parse_datetime, raw)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=20), st.integers().map(str)))
def test_limit(raw):
    _parses_or_400(parse_limit, raw, 10, 10_000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PARCELS.field_names), st.text(max_size=12)), max_size=6).map(",".join))
def test_properties(raw):
    _parses_or_400(parse_properties, raw, PARCELS, PARCELS.field_names)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=40), st.binary(max_size=30).map(lambda b: b.hex())))
def test_cursor(raw):
    _parses_or_400(Cursor.decode, raw)


def test_cursor_round_trip():
    for key in (0, 123456789, "330212001001GB00001W00000000"):
        for forward in (True, False):
            assert Cursor.decode(Cursor(key, forward).encode()) == Cursor(key, forward)


UTC = dt.UTC
DAY_END = dt.time.max


def _at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "start", "end"),
    [
        ("2024-05-18T02:35:00Z", _at(2024, 5, 18, 2, 35), _at(2024, 5, 18, 2, 35)),
        ("2024-05-18t02:35:00.5z", _at(2024, 5, 18, 2, 35, 0, 500000), _at(2024, 5, 18, 2, 35, 0, 500000)),
        ("2024-05-18T10:35:00+08:00", _at(2024, 5, 18, 2, 35), _at(2024, 5, 18, 2, 35)),
        ("2024-05-31", _at(2024, 5, 31), dt.datetime.combine(dt.date(2024, 5, 31), DAY_END, UTC)),
        ("2024-01-01/2024-05-31", _at(2024, 1, 1), dt.datetime.combine(dt.date(2024, 5, 31), DAY_END, UTC)),
        ("2024-01-01T00:00:00Z/2024-05-31T12:00:00Z", _at(2024, 1, 1), _at(2024, 5, 31, 12)),
        ("../2024-05-31", None, dt.datetime.combine(dt.date(2024, 5, 31), DAY_END, UTC)),
        ("/2024-05-31", None, dt.datetime.combine(dt.date(2024, 5, 31), DAY_END, UTC)),
        ("2024-01-01/..", _at(2024, 1, 1), None),
        ("2024-01-01/", _at(2024, 1, 1), None),
    ],
)
def test_datetime_forms(raw, start, end):
    assert parse_datetime(raw) == TimeInterval(start, end)


@pytest.mark.parametrize(
    "raw",
    ["", "..", "../..", "/", "yesterday", "2020-02-30", "2020-01-01T00:00:00", "2020-01-01T25:00:00Z",
     "2020-01-01T00:00Z", "2021-01-01/2020-01-01", "2020-01-01/2020-02-01/2020-03-01", "2020-W01-1"],
)
def test_bad_datetime_names_the_parameter(raw):
    with pytest.raises(InvalidParameter) as exc:
        parse_datetime(raw)
    assert "'datetime'" in exc.value.description


def test_limit_policy():
    assert parse_limit(None, 10, 10_000) == 10
    assert parse_limit("25", 10, 10_000) == 25 and parse_limit(25, 10, 10_000) == 25
    assert parse_limit(10_000, 10, 10_000) == 10_000
    assert parse_limit("100000000", 10, 10_000) == 10_000, "above the maximum: served as the maximum"
    for bad in ("0", 0, "-1", "ten", "1.5"):
        with pytest.raises(InvalidParameter) as exc:
            parse_limit(bad, 10, 10_000)
        assert "'limit'" in exc.value.description
