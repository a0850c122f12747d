"""Any client string either parses or raises InvalidParameter with a description; nothing else escapes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.catalog import load_catalog
from server.errors import InvalidParameter
from server.features.params import parse_bbox, parse_datetime, parse_limit, parse_properties
from server.settings import Settings
from server.sources import Cursor

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
