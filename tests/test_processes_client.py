"""OWSLib's OGC API Processes client lists, describes and executes site-compliance on a live server."""

from __future__ import annotations

import pytest
from owslib.ogcapi.processes import Processes

from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.support.live import live_server

SITE = {"type": "Polygon", "coordinates": [[[121.54, 29.84], [121.55, 29.84], [121.55, 29.85], [121.54, 29.85],
                                            [121.54, 29.84]]]}


@pytest.fixture(scope="module")
def processes(request):
    settings = settings_for("geopackage", request)
    key = issue_key(settings, "owslib")
    with live_server(settings) as url:
        yield Processes(url, headers={"X-API-Key": key})


def test_owslib_lists_describes_and_executes(processes):
    assert [p["id"] for p in processes.processes()] == ["site-compliance"]
    described = processes.process("site-compliance")
    assert set(described["inputs"]) == {"geometry", "crs", "planned_use"}
    result = processes.execute("site-compliance", inputs={"geometry": SITE, "planned_use": "07"})
    report = result["report"]  # OWSLib asks for a results document
    assert report["verdict"] in ("approve", "flag", "conflict", "reject")
    assert report["site"]["area_m2"] > 1_000_000 and report["layers"]["land_survey"]["overlap_m2"] > 0
    raw = processes.execute("site-compliance", inputs={"geometry": SITE}, response="raw")
    assert raw["site"] == {**report["site"], "planned_use": None}
