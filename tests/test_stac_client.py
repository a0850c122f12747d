"""pystac-client against the STAC API on a live server (uvicorn on loopback)."""

from __future__ import annotations

import pystac_client
import pytest

from tests.support.api_keys import issue_key
from tests.support.live import live_server
from tests.support.rasters import acquisitions, raster_settings, sheet_ids


@pytest.fixture(scope="module")
def live(raster_dir):
    """The root URL of a live server on a free loopback port, and an API key for it."""
    settings = raster_settings(raster_dir)
    key = issue_key(settings, "pystac-client")
    with live_server(settings) as url:
        yield f"{url}/stac", key


def _client(live):
    url, key = live
    return pystac_client.Client.open(url, headers={"X-API-Key": key})


def test_collections_and_items(live):
    client = _client(live)
    assert client.conforms_to("ITEM_SEARCH") and client.conforms_to("COLLECTIONS")
    assert sorted(c.id for c in client.get_collections()) == ["dem", "imagery"]
    items = list(client.get_collection("imagery").get_items())
    assert sorted(i.id for i in items) == sheet_ids("imagery_20231115") + sheet_ids("imagery_20240518")
    assert items[0].assets["data"].media_type.startswith("image/tiff")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_search_filters_and_pages(live, method):
    client = _client(live)
    found = client.search(method=method, collections=["imagery"], bbox=[121.52, 29.85, 121.53, 29.86],
                          datetime="2024-01-01/2024-12-31")
    assert acquisitions([i.id for i in found.items()]) == ["imagery_20240518"]
    paged = client.search(method=method, limit=1, max_items=20)
    ids = [i.id for i in paged.items()]
    assert sorted(ids) == sorted(["dem_2023", *sheet_ids("imagery_20231115"), *sheet_ids("imagery_20240518")])
    hills = client.search(method=method, intersects={"type": "Point", "coordinates": [121.66, 29.77]})
    assert [i.id for i in hills.items()] == ["dem_2023"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_search_with_filter_sortby_and_fields(live, method):
    client = _client(live)
    assert client.conforms_to("FILTER") and client.conforms_to("SORT") and client.conforms_to("FIELDS")
    recent = "collection = 'imagery' AND T_AFTER(datetime, TIMESTAMP('2024-01-01T00:00:00Z'))"
    text = client.search(method=method, filter=recent)
    assert [i.id for i in text.items()] == sheet_ids("imagery_20240518")
    as_json = client.search(method=method, filter={"op": "s_intersects", "args": [
        {"property": "geometry"}, {"type": "Point", "coordinates": [121.66, 29.77]}]})
    assert [i.id for i in as_json.items()] == ["dem_2023"]
    newest_first = client.search(method=method, sortby="-properties.datetime", limit=1, max_items=9)
    assert acquisitions([i.id for i in newest_first.items()]) == ["imagery_20240518", "imagery_20231115", "dem_2023"]
    slim = client.search(method=method, ids=["dem_2023"], fields=["id", "properties.datetime"])
    (doc,) = slim.item_collection_as_dict()["features"]
    assert set(doc["properties"]) == {"datetime"} and "assets" not in doc
