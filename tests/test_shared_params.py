"""Parameters shared by Features, raster tiles and STAC behave the same everywhere: datetime and limit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.support.api_keys import issue_key
from tests.support.rasters import raster_settings, sheet_ids

IMAGERY_TILE = "/collections/imagery/tiles/WebMercatorQuad/14/6767/13723"
ELEVATION = "/collections/dem/elevation"
ITEMS = "/collections/parcels/items"
SEARCH = "/stac/search"


def _surfaces(client: TestClient, when: str) -> dict[str, object]:
    """The answer of every surface taking ``datetime`` to the same value."""
    return {
        "features": client.get(ITEMS, params={"datetime": when, "limit": 1}),
        "raster tile": client.get(IMAGERY_TILE, params={"datetime": when}),
        "elevation": client.get(ELEVATION, params={"lon": 121.6, "lat": 29.8, "datetime": when}),
        "stac get": client.get(SEARCH, params={"datetime": when}),
        "stac post": client.post(SEARCH, json={"datetime": when}),
    }


@pytest.mark.parametrize(
    "when",
    ["2024-05-18T02:35:00Z", "2024-05-31", "2023-01-01/2024-05-31", "../2024-05-31", "/2024-05-31",
     "2023-01-01/..", "2023-01-01/", "2024-05-31T00:00:00+08:00"],
)
def test_every_datetime_form_is_accepted_everywhere(raster_client, when):
    for surface, r in _surfaces(raster_client, when).items():
        assert r.status_code == 200, (surface, r.text)


@pytest.mark.parametrize(
    "when", ["yesterday", "2024-13-01", "2024-05-31T10:00:00", "2024-02-01/2024-01-01", "../..", "2024/05/31"]
)
def test_the_same_bad_datetime_gets_the_same_answer_everywhere(raster_client, when):
    answers = {surface: r.json() for surface, r in _surfaces(raster_client, when).items()}
    assert {a["status"] for a in answers.values()} == {400}, answers
    assert len({a["description"] for a in answers.values()}) == 1, answers
    assert "'datetime'" in answers["features"]["description"]


def test_a_date_is_the_whole_day_everywhere(raster_client):
    # imagery_20240518 was acquired at 02:35 UTC that day: a date covers it, as an instant and as an interval end
    tile = raster_client.get(IMAGERY_TILE, params={"datetime": "2024-05-18"})
    assert tile.headers["OneMap-Item"] == "imagery_20240518"
    ended = raster_client.get(IMAGERY_TILE, params={"datetime": "2024-05-01/2024-05-18"})
    assert ended.headers["OneMap-Item"] == "imagery_20240518"
    for found in (raster_client.get(SEARCH, params={"datetime": "2024-05-18"}),
                  raster_client.get(SEARCH, params={"datetime": "2024-05-01/2024-05-18"}),
                  raster_client.post(SEARCH, json={"datetime": "2024-05-18"})):
        assert [f["id"] for f in found.json()["features"]] == sheet_ids("imagery_20240518")
    some = raster_client.get(ITEMS, params={"limit": 1}).json()["features"][0]["properties"]["registration_date"]
    day = raster_client.get(ITEMS, params={"datetime": some, "limit": 10000}).json()["features"]
    assert day and {f["properties"]["registration_date"] for f in day} == {some}


@pytest.fixture(scope="module")
def small_pages(raster_dir):
    """A client on an app whose pages hold 1 feature by default and 2 at most."""
    settings = raster_settings(raster_dir, default_limit=1, max_limit=2)
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "limits")}) as client:
        yield client


def test_one_limit_policy(small_pages):
    def returned(r) -> int:
        assert r.status_code == 200, r.text
        return r.json()["numberReturned"]

    for limit, expected in ((None, 1), (1, 1), (2, 2), (50, 2), (100_000_000, 2)):
        params = {} if limit is None else {"limit": limit}
        assert returned(small_pages.get(ITEMS, params=params)) == expected, ("features", limit)
        assert returned(small_pages.get(SEARCH, params=params)) == expected, ("stac get", limit)
        assert returned(small_pages.post(SEARCH, json=params)) == expected, ("stac post", limit)
    for bad in (0, -1, "ten", "1.5"):
        answers = [small_pages.get(ITEMS, params={"limit": bad}), small_pages.get(SEARCH, params={"limit": bad}),
                   small_pages.post(SEARCH, json={"limit": bad})]
        assert {r.status_code for r in answers} == {400}
        descriptions = {r.json()["description"] for r in answers}
        assert len(descriptions) == 1 and "'limit'" in descriptions.pop(), bad
