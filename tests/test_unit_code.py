"""The 28-character real estate unit code: parsing, display, building, and every kind of bad value."""

from __future__ import annotations

import pytest

from server.codes.classes import (
    CODE_LISTS,
    LAND_SURVEY_CLASSES,
    LAND_SURVEY_FIRST,
    LAND_SURVEY_PARENT,
    PLANNING_USE_CLASSES,
    land_class,
)
from server.codes.unit_code import (
    UNIT_CODE_RE,
    is_unit_code,
    make_unit_code,
    normalize_unit_code,
    parse_unit_code,
    unit_code_problems,
)
from server.errors import InvalidParameter

GOOD = "330212001002GB00017W00000000"


def test_parse_splits_every_part():
    u = parse_unit_code(GOOD)
    assert (u.county, u.zone, u.subzone) == ("330212", "001", "002")
    assert (u.ownership, u.parcel_type, u.sequence) == ("G", "B", "00017")
    assert (u.fixture_type, u.fixture_number) == ("W", "00000000")
    assert u.parcel_code == "330212001002GB00017"
    assert u.code == str(u) == GOOD
    assert u.display == "330212 001002 GB00017 W00000000"
    assert [len(g) for g in u.display.split()] == [6, 6, 7, 9]


@pytest.mark.parametrize("code", [
    "330212001002JA00001W00000000",  # collective ownership parcel
    "330212001002JC00001F00010000",  # homestead with building 1
    "330212001002GL99999L00000001",  # state forest land with trees
    "330212001002ZW00001Q00000003",  # undetermined ownership, other fixture
    "110105999999GH00001W00000000",  # sea area
])
def test_valid_codes(code):
    assert parse_unit_code(code).code == code
    assert is_unit_code(code) and UNIT_CODE_RE.match(code)


def _error(code) -> str:
    with pytest.raises(InvalidParameter) as info:
        parse_unit_code(code)
    assert info.value.status == 400
    return info.value.description


@pytest.mark.parametrize("code, expected", [
    ("", "0 characters, expected 28"),
    ("330212001002GB00017W0000000", "27 characters, expected 28"),
    (GOOD + "0", "29 characters, expected 28"),
    ("33X212001002GB00017W00000000", "position 3 (county code) must be digits"),
    ("3302120A1002GB00017W00000000", "position 8 (cadastral zone) must be digits"),
    ("33021200100 GB00017W00000000", "position 12 (cadastral subzone) must be digits"),
    ("330212001002QB00017W00000000", "position 13 (ownership) is 'Q', expected G, J or Z"),
    ("330212001002gB00017W00000000", "position 13 (ownership) is 'g'"),
    ("330212001002GZ00017W00000000", "position 14 (parcel type) is 'Z'"),
    ("330212001002GA00017W00000000", "position 14 (parcel type) 'A' (collective land ownership) requires position 13"),
    ("330212001002ZA00017W00000000", "requires position 13 (ownership) = 'J', not 'Z'"),
    ("330212001002GB0001XW00000000", "position 19 (parcel sequence) must be digits"),
    ("330212001002GB00000W00000000", "positions 15-19 (parcel sequence) must be 00001-99999"),
    ("330212001002GB00017X00000000", "position 20 (fixture type) is 'X', expected F, L, Q or W"),
    ("330212001002GB00017W00010000", "positions 21-28 (fixture number) must be 00000000 when position 20 is 'W'"),
    ("330212001002GB00017F0001000a", "position 28 (fixture number) must be digits"),
    ("３30212001002GB00017W00000000", "position 1 (county code) must be digits"),
])
def test_bad_codes_name_the_position(code, expected):
    message = _error(code)
    assert expected in message
    assert message.startswith("Unit code '")


def test_all_problems_are_reported_in_position_order():
    message = _error("33021200100XQQ00000X0000000x")
    positions = ["position 12", "position 13", "position 14", "positions 15-19", "position 20", "position 28"]
    found = [message.index(p) for p in positions]
    assert found == sorted(found)


def test_several_bad_digits_are_listed_together():
    assert "positions 2, 4 (county code) must be digits" in _error("3A0B12001002GB00017W00000000")


@pytest.mark.parametrize("value", [None, 330212001002, b"330212001002GB00017W00000000", ["x"]])
def test_non_text_is_rejected(value):
    assert "text of 28 characters" in _error(value)
    assert not is_unit_code(value)


def test_long_input_is_not_echoed_in_full():
    message = _error("9" * 5000)
    assert len(message) < 300


def test_control_characters_are_escaped_in_messages():
    message = _error("330212001002G\n00017W00000000")
    assert "\n" not in message and "\\n" in message


def test_problems_list_is_empty_for_valid_code():
    assert unit_code_problems(GOOD) == []


def test_make_pads_numbers_and_validates():
    u = make_unit_code("330212", 1, 2, "J", "C", 17, "F", 10000)
    assert u.code == "330212001002JC00017F00010000"
    assert make_unit_code("330212", "001", "002", "G", "B", "00017").code == GOOD
    with pytest.raises(InvalidParameter, match="position 14"):
        make_unit_code("330212", 1, 2, "G", "A", 1)
    with pytest.raises(InvalidParameter, match="30 characters"):
        make_unit_code("330212", 1000, 2, "G", "B", 100000)


def test_normalize_accepts_the_display_form():
    assert normalize_unit_code("330212 001002 gb00017 w00000000") == GOOD
    assert normalize_unit_code("330212-001002-GB00017-W00000000") == GOOD


def test_code_lists_match_the_domain_reference():
    assert len(LAND_SURVEY_FIRST) == 13 and len(PLANNING_USE_CLASSES) == 24
    assert PLANNING_USE_CLASSES["17"] == "陆地水域" and PLANNING_USE_CLASSES["24"] == "其他海域"
    assert land_class("0101") == ("0101", "水田", "01", "耕地")
    assert land_class("0303") == ("0303", "红树林地", "00", "湿地")
    assert land_class("05H1")[1] == "商业服务业设施用地"
    assert land_class("09") == ("09", "特殊用地", "09", "特殊用地")
    assert set(LAND_SURVEY_PARENT) == set(LAND_SURVEY_CLASSES)
    assert len(LAND_SURVEY_CLASSES) == 8 + 3 + 4 + 4 + 3 + 2 + 2 + 2 + 4 + 1 + 9 + 7 + 7
    assert set(CODE_LISTS) == {"land_survey_classes", "planning_use_classes", "control_line_types"}
