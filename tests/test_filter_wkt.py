"""Polygon literals read ahead of the CQL2 parser (``server.filters.wkt``): the same document or the same
error as the parser alone, for any text; the parser sees a short text when a literal is plain."""

from __future__ import annotations

import math

import cql2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.errors import InvalidParameter
from server.filters import parse as parse_module
from server.filters.parse import parse_cql2


def _circle(x: float, y: float, r: float, n: int = 200) -> str:
    ring = [(x + r * math.cos(2 * math.pi * i / n), y + r * math.sin(2 * math.pi * i / n)) for i in range(n)]
    return ", ".join(f"{a:.6f} {b:.6f}" for a, b in [*ring, ring[0]])


SITE = _circle(121.55, 29.85, 0.003)
HOLE = _circle(121.55, 29.85, 0.001, 12)
PLAIN = [
    f"S_INTERSECTS(geom, POLYGON(({SITE})))",
    f"s_intersects(geom, polygon (( {SITE} ) , ({HOLE})))",
    f"S_WITHIN(geom, MULTIPOLYGON((({SITE})),(({HOLE}))))",
    f"S_INTERSECTS(geom, POLYGON(({SITE}))) AND land_use = 'POLYGON((1 2, 3 4))' AND area_m2 > 5",
    f"S_INTERSECTS(geom, POLYGON(({SITE}))) OR S_DISJOINT(geom, POLYGON(({HOLE})))",
    "S_INTERSECTS(geom, POLYGON((0\t0,1\n0,1\r1,-0 00)))",
    f"S_INTERSECTS(geom, GEOMETRYCOLLECTION(POLYGON(({HOLE})), POINT(1 2), MULTIPOLYGON((({SITE})))))",
    "S_INTERSECTS(geometry, POLYGON((121 29, 122 29)))",  # too short a ring: the compiler's error, as before
]
NOT_PLAIN = [
    "S_INTERSECTS(geom, POLYGON Z((0 0 1, 1 0 1, 1 1 1, 0 0 1)))",
    "S_INTERSECTS(geom, POLYGON((0 0 5, 1 0, 1 1, 0 0)))",
    "S_INTERSECTS(geom, POLYGON((0 0 5 1 0, 1 1, 0 0)))",
    "S_INTERSECTS(geom, POLYGON((1e2 0, 1 0, 1 1, 1e2 0)))",
    "S_INTERSECTS(geom, POLYGON((.5 0, 1 0, 1 1, .5 0)))",
    "S_INTERSECTS(geom, POLYGON((5. 0, 1 0, 1 1, 5. 0)))",
    "S_INTERSECTS(geom, POLYGON((1-2 0, 1 0, 1 1, 1 0)))",
    "S_INTERSECTS(geom, POLYGON((0 0, 1 0, 1 1, 0 0),))",
    "S_INTERSECTS(geom, POLYGON(()))",
    "S_INTERSECTS(geom, POLYGON EMPTY)",
    "S_INTERSECTS(geom, MULTIPOLYGON((0 0, 1 0, 1 1, 0 0)))",
    "S_INTERSECTS(geom, POLYGON((0 0, 1 0, 1 1, 0 0))",
    "land_use = 'S_INTERSECTS(geom, POLYGON((0 0, 1 0, 1 1, 0 0)))'",
    f"S_INTERSECTS(geom, POLYGON(({SITE}))) AND S_INTERSECTS(geom, POINT(0 -999999))",  # the marker itself
    f"S_INTERSECTS(geom, POLYGON(({SITE}))) AND",  # the rest does not parse: the error points into the original
]


def _alone(text: str):
    """What the parser alone makes of ``text``: the document, or the error message."""
    lift = parse_module.lift
    parse_module.lift = lambda t: (t, [])
    try:
        return parse_cql2(text, None)
    except InvalidParameter as exc:
        return str(exc)
    finally:
        parse_module.lift = lift


def _outcome(text: str):
    try:
        return parse_cql2(text, None)
    except InvalidParameter as exc:
        return str(exc)


@pytest.fixture
def parsed_texts(monkeypatch) -> list[str]:
    """The texts the ``cql2`` parser is handed."""
    seen: list[str] = []
    parse_text = cql2.parse_text

    def spy(text: str):
        seen.append(text)
        return parse_text(text)

    monkeypatch.setattr(parse_module.cql2, "parse_text", spy)
    return seen


@pytest.mark.parametrize("text", PLAIN, ids=range(len(PLAIN)))
def test_a_plain_polygon_literal_is_read_ahead_with_the_parsers_result(text, parsed_texts):
    assert _outcome(text) == cql2.parse_text(text).to_json()
    assert "POINT(0 -999999)" in parsed_texts[0] and len(parsed_texts[0]) < 200


@pytest.mark.parametrize("text", NOT_PLAIN, ids=range(len(NOT_PLAIN)))
def test_any_other_text_gets_what_the_parser_alone_gives(text, parsed_texts):
    got = _outcome(text)
    assert parsed_texts[-1] == text  # the original text, with its positions, had the last word
    assert got == _alone(text)


def test_an_error_after_a_read_ahead_literal_names_its_place_in_the_original():
    text = f"S_INTERSECTS(geom, POLYGON(({SITE}))) AND"
    assert f"column {len(text) + 1}" in _outcome(text)


def _mostly(good, bad, odds: int = 30):
    """``good``, and about once in ``odds`` draws ``bad``."""
    return st.integers(0, odds).flatmap(lambda k: bad if k == 0 else good)


NUMBERS = _mostly(st.one_of(st.integers(-180, 180).map(str), st.floats(-180, 180).map(lambda v: f"{v:.6f}")),
                  st.sampled_from(["-0", "007", "1e2", ".5", "5.", "-.5", "1.2.3", "--1", "1-2", "+1", "-"]), 90)
SEPARATORS = _mostly(st.sampled_from([" ", "  ", "\t", "\n", "\r"]), st.sampled_from(["", "\f", "\u3000"]), 60)
PADDING = _mostly(st.sampled_from(["", " ", "\n"]), st.sampled_from(["\f", "\u3000", "x"]), 60)


@st.composite
def literals(draw) -> str:
    """CQL2 text with a polygon literal: mostly plain ones, now and then something else in it."""
    def ring() -> str:
        count = draw(st.integers(1, 6))
        arity = [draw(_mostly(st.just(2), st.sampled_from([1, 3, 4, 5]), 60)) for _ in range(count)]
        points = [draw(SEPARATORS).join(draw(NUMBERS) for _ in range(k)) for k in arity]
        return "(" + ",".join(draw(PADDING) + p + draw(PADDING) for p in points) + ")"

    def polygon() -> str:
        rings = ",".join(draw(PADDING) + ring() for _ in range(draw(st.integers(1, 3))))
        return "(" + rings + draw(_mostly(st.just(""), st.sampled_from([")", "(", ","]), 20)) + ")"

    kind = draw(st.sampled_from(["POLYGON", "polygon", "MULTIPOLYGON", "MultiPolygon", "POLYGON Z", "POLYGON "]))
    body = "(" + ",".join(polygon() for _ in range(draw(st.integers(1, 2)))) + ")" if "MULTI" in kind.upper() \
        else polygon()
    tail = draw(st.sampled_from(["", " AND area_m2 > 1", " AND", " OR S_INTERSECTS(geom, POINT(0 -999999))"]))
    return f"S_INTERSECTS(geom, {kind}{body}){tail}"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(literals())
def test_generated_literals_get_what_the_parser_alone_gives(text):
    assert _outcome(text) == _alone(text)
