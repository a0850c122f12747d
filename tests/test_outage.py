"""A database outage (a real PostgreSQL cluster stopped): cached answers keep coming at cache speed for
keyed callers, uncached ones are a clean 503, the log stays short, and all heals when it is back."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.support.pg import PgCluster, sample_cluster

ITEMS = "/collections/parcels/items"
BASE = "/tiles/WebMercatorQuad/12/3430/1691"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[PgCluster]:
    with sample_cluster(tmp_path_factory.mktemp("pg-outage")) as pg:
        yield pg


def test_cached_answers_outlive_an_outage_at_cache_speed(cluster, tmp_path, request, caplog):
    settings_for("geopackage", request)  # clears the environment
    settings = Settings(database_url=cluster.url, data_dir=tmp_path)
    key = issue_key(settings, "outage")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        warm = {path: c.get(path) for path in (f"{ITEMS}?limit=3", BASE)}
        assert {r.status_code for r in warm.values()} <= {200, 204}
        cluster.halt()
        try:
            caplog.set_level(logging.INFO, logger="onemap")
            caplog.clear()
            time.sleep(1.2)  # past the version period: the next request is the one that meets the outage
            first = time.monotonic()
            assert c.get(f"{ITEMS}?limit=3").status_code == 200  # it may wait once (the pool's acquire timeout)
            assert time.monotonic() - first < 8
            slowest = 0.0
            deadline = time.monotonic() + 7  # past the key cache (5 s) and many version periods (1 s)
            served = 0
            while time.monotonic() < deadline:
                for path, before in warm.items():
                    started = time.monotonic()
                    answer = c.get(path)
                    slowest = max(slowest, time.monotonic() - started)
                    assert (answer.status_code, answer.content) == (before.status_code, before.content)
                    served += 1
                time.sleep(0.05)
            assert slowest < 0.5, f"a cached answer took {slowest:.2f} s during the outage"
            uncached = c.get(f"{ITEMS}?limit=4")
            assert uncached.status_code == 503 and "Retry-After" in uncached.headers
            lines = [r for r in caplog.records if r.name.startswith("onemap")]
            assert served > 40 and len(lines) <= 12, [r.getMessage() for r in lines]
        finally:
            cluster.resume()
        deadline = time.monotonic() + 20
        while c.get(f"{ITEMS}?limit=5").status_code != 200:
            assert time.monotonic() < deadline, "did not heal"
            time.sleep(0.3)


def test_cached_answers_stop_after_the_grace_period(cluster, tmp_path, request):
    settings_for("geopackage", request)
    settings = Settings(database_url=cluster.url, data_dir=tmp_path, cache_outage_grace_s=2, key_outage_grace_s=60)
    key = issue_key(settings, "grace")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        assert c.get(f"{ITEMS}?limit=3").status_code == 200
        cluster.halt()
        try:
            time.sleep(3)  # past the 2 s grace: the last known version is no longer trusted
            assert c.get(f"{ITEMS}?limit=3").status_code == 503
        finally:
            cluster.resume()
