"""The MapLibre expressions the vector PNG renderer evaluates, checked against the style spec's meaning."""

from __future__ import annotations

import pytest

from server.settings import Settings
from server.wmts.paint import base_map, evaluate, parse_color, reads_feature

LAND = ["match", ["coalesce", ["get", "class_code"], ["slice", ["to-string", ["get", "land_code"]], 0, 2]],
        "01", "#f6e98a", ["03", "04"], "#3f9b4e", "#cccccc"]


@pytest.mark.parametrize("props, expected", [
    ({"class_code": "01"}, "#f6e98a"),
    ({"land_code": "0301"}, "#3f9b4e"),  # coalesce falls back to the first two characters
    ({"land_code": 401}, "#cccccc"),  # to-string of a number: "401", not a class
    ({"class_code": "04"}, "#3f9b4e"),  # an array label matches any of its values
    ({}, "#cccccc"),
])
def test_match_coalesce_slice(props, expected):
    assert evaluate(LAND, props, 12) == expected


def test_zoom_functions_and_conditions():
    width = ["interpolate", ["linear"], ["zoom"], 8, 1.0, 16, 3.0]
    assert [evaluate(width, {}, z) for z in (4, 8, 12, 16, 20)] == [1.0, 1.0, 2.0, 3.0, 3.0]
    assert evaluate(["interpolate", ["exponential", 2], ["zoom"], 0, 0, 2, 3], {}, 1) == pytest.approx(1.0)
    assert evaluate(["step", ["zoom"], "a", 10, "b", 14, "c"], {}, 12) == "b"
    colour = evaluate(["interpolate", ["linear"], ["zoom"], 0, "#000000", 10, "#ffffff"], {}, 5)
    assert parse_color(colour) == (128, 128, 128, 1.0)
    rule = ["all", ["==", ["get", "line_type"], "red"], ["!", ["in", ["get", "level"], ["literal", ["county"]]]]]
    assert evaluate(rule, {"line_type": "red", "level": "town"}, 10) is True
    assert evaluate(rule, {"line_type": "red", "level": "county"}, 10) is False
    assert evaluate(["case", [">", ["to-number", ["get", "h"]], 10], "tall", "low"], {"h": "12"}, 10) == "tall"
    assert evaluate(["no-such-operator", 1], {}, 10) is None
    assert reads_feature(LAND) and not reads_feature(width)


def test_colours():
    assert parse_color("#abc") == (170, 187, 204, 1.0)
    assert parse_color("rgba(70, 70, 70, 0.35)") == (70, 70, 70, 0.35)
    assert parse_color("hsl(0, 0%, 0%)") is None and parse_color(3) is None


def test_the_shipped_base_map_is_read():
    style = base_map(Settings().styles_dir)
    drawn = style.collections()
    assert drawn[0] == "land_survey" and "planning_zones" not in drawn  # off by default in basemap.json
    assert {"control_lines", "parcels", "buildings", "admin_boundaries"} <= set(drawn)
    assert style.background[3] == 1.0
