"""GDAL's OAPIF driver sends an attribute filter (``-where``) to the server as a CQL2 text ``filter``
instead of reading every feature and filtering on its side: a request recorder in front of the app
proves what it sent, and the features it wrote are exactly those the filter selects.

GDAL (Debian's 3.6 and the 3.12 bundled in pyogrio's wheel alike) pushes a filter only when the
OpenAPI document offers ``filter-lang=cql-text`` (the Part 3 drafts' name, which the server accepts for
CQL2 text) and the collection links its queryables with the drafts' ``rel="queryables"``, whose
``queryables`` list names the fields it may use; it asks for them as ``application/json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs

import httpx
import pytest

from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.support.live import live_server

WHERE = "land_use = '0702' AND area_m2 > 1000"
READ_WHERE = """
import json, sys, pyogrio
pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": sys.argv[2]})
meta, fids, geoms, fields = pyogrio.raw.read(
    "OAPIF:" + sys.argv[1], layer="parcels", where=sys.argv[3], return_fids=False)
props = dict(zip(meta["fields"].tolist(), fields))
print(json.dumps(sorted(props["unit_code"].tolist())))
"""


def recording(seen: list[tuple[str, dict]]):
    """An ASGI wrapper noting the path and query parameters of every request."""
    def wrap(app):
        async def recorder(scope, receive, send):
            if scope["type"] == "http":
                seen.append((scope["path"], parse_qs(scope["query_string"].decode())))
            await app(scope, receive, send)
        return recorder
    return wrap


@pytest.fixture(scope="module")
def live(backend, request, tmp_path_factory):
    settings = settings_for(backend, request)
    key = issue_key(settings, "filter clients")
    headers = tmp_path_factory.mktemp("gdal") / "headers.txt"
    headers.write_text(f"X-API-Key: {key}\n")
    seen: list[tuple[str, dict]] = []
    with live_server(settings, wrap=recording(seen)) as url:
        yield url, key, headers, seen


def expected(url: str, key: str) -> list[str]:
    """The parcels the filter selects, filtered here from every parcel the server lists."""
    page = httpx.get(f"{url}/collections/parcels/items", params={"limit": 10_000},
                     headers={"X-API-Key": key}, timeout=60).json()
    assert page["numberReturned"] == page["numberMatched"]  # one page holds the whole sample
    return sorted(f["id"] for f in page["features"]
                  if f["properties"]["land_use"] == "0702" and f["properties"]["area_m2"] > 1000)


def pushed_filters(seen: list[tuple[str, dict]]) -> list[dict]:
    """The query parameters of the item requests that carried a filter."""
    return [q for path, q in seen if path == "/collections/parcels/items" and "filter" in q]


def assert_pushed(filters: list[dict]) -> None:
    assert filters, "GDAL read the layer without sending the filter"
    for q in filters:
        assert q["filter-lang"] == ["cql-text"]
        assert "land_use = '0702'" in q["filter"][0] and "area_m2 > 1000" in q["filter"][0]


def test_debian_gdal_sends_where_as_a_cql2_filter(live, tmp_path):
    url, key, _, seen = live
    seen.clear()
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"X-API-Key: {key}", "OAPIF_PAGE_SIZE": "40"}
    out = tmp_path / "parcels.geojson"
    subprocess.run(["ogr2ogr", "-f", "GeoJSON", "-where", WHERE, str(out), f"OAPIF:{url}", "parcels"],
                   check=True, env=env, capture_output=True, timeout=120)
    filters = pushed_filters(seen)
    assert_pushed(filters)
    got = sorted(f["properties"]["unit_code"] for f in json.loads(out.read_text())["features"])
    want = expected(url, key)
    assert len(want) > 40 and got == want  # several pages, each filtered by the server


def test_pyogrio_gdal_sends_where_as_a_cql2_filter(live):
    url, key, headers, seen = live
    seen.clear()
    run = subprocess.run([sys.executable, "-c", READ_WHERE, url, str(headers), WHERE],
                         capture_output=True, text=True, timeout=120, check=True)
    assert_pushed(pushed_filters(seen))
    assert not [q for path, q in seen if path == "/collections/parcels/items" and "filter" not in q
                and int(q.get("limit", ["10"])[0]) > 20]  # no unfiltered read of the layer
    assert json.loads(run.stdout) == expected(url, key)
