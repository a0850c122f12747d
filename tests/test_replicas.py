"""Reads on a real streaming replica, writes on the primary (two throwaway PostgreSQL 15 clusters on
loopback, ``pg_basebackup -R``): start-up needs no DDL on the replica, a change on the primary moves the
replica's data versions and so the cache, and stopping the replica mid-load costs no client an error."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.pgconn import read_conninfo
from server.sample import build_sample
from server.settings import Settings
from server.stores.postgis import PostGISStore
from tests.conftest import settings_for
from tests.support.api_keys import issue_key
from tests.support.live import live_server
from tests.support.pg import PgCluster, start_cluster
from tests.support.replica import start_replica

ITEMS = "/collections/parcels/items"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Iterator[tuple[PgCluster, PgCluster]]:
    primary = start_cluster(tmp_path_factory.mktemp("primary"))
    try:
        build_sample(200, PostGISStore(Settings(database_url=primary.url)))
        replica = start_replica(primary, tmp_path_factory.mktemp("replica"))
        try:
            yield primary, replica
        finally:
            replica.stop()
    finally:
        primary.stop()


@pytest.fixture(scope="module")
def settings(pair, request) -> Settings:
    primary, replica = pair
    settings_for("geopackage", request)  # clears the environment
    return Settings(data_dir=request.getfixturevalue("sample_dir"), database_url=primary.url,
                    database_read_urls=replica.url)


def sessions(url: str, application: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (application,)).fetchone()
    return int(row[0]) if row else 0


def test_read_urls_are_checked_and_put_replicas_before_the_primary():
    info = read_conninfo("postgresql://u:p@10.0.0.1:5432/onemap",
                         ["postgresql://u:p@10.0.0.2:5433/onemap", "postgresql://u:p@10.0.0.3/onemap"])
    assert "host=10.0.0.2,10.0.0.3,10.0.0.1" in info and "port=5433,5432,5432" in info
    assert "target_session_attrs=prefer-standby" in info and "load_balance_hosts=random" in info
    with pytest.raises(ValueError, match="ONEMAP_DATABASE_READ_URLS"):
        read_conninfo("postgresql://u:p@10.0.0.1/onemap", ["postgresql://other:p@10.0.0.2/onemap"])
    assert Settings(database_read_urls=" postgresql://a/db , postgresql://b/db").database_read_urls == (
        "postgresql://a/db", "postgresql://b/db")


def test_reads_go_to_the_replica_and_writes_to_the_primary(pair, settings):
    primary, replica = pair
    key = issue_key(settings, "replicas")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        page = c.get(ITEMS, params={"limit": 5})
        assert page.status_code == 200 and len(page.json()["features"]) == 5
        assert c.get("/readyz").json()["checks"] == {"store": "ok", "replica": "ok", "redis": "off"}
        assert sessions(replica.url, "onemap") >= 1 and sessions(primary.url, "onemap") == 0
        c.app.state.policy.audit.flush()
    with psycopg.connect(primary.url) as conn:
        row = conn.execute("SELECT count(*) FROM onemap_audit WHERE path = %s", (ITEMS,)).fetchone()
    assert row and row[0] >= 1  # the audit went to the primary (the replica refuses writes)


def test_a_change_on_the_primary_reaches_the_cached_answer_within_the_lag_bound(pair, settings):
    primary, _ = pair
    key = issue_key(settings, "versions")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        feature = c.get(ITEMS, params={"limit": 1}).json()["features"][0]
        code, url = feature["id"], f"{ITEMS}/{feature['id']}"
        assert c.get(url).json()["properties"]["area_m2"] != 4321.5
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("UPDATE parcels SET area_m2 = 4321.5 WHERE unit_code = %s", (code,))
        changed = time.monotonic()
        deadline = changed + 10
        while c.get(url).json()["properties"]["area_m2"] != 4321.5:
            assert time.monotonic() < deadline, "the change did not reach the replica's answers"
            time.sleep(0.1)
    assert time.monotonic() - changed < 5  # replication lag (sub-second here) + ONEMAP_CACHE_VERSION_TTL_S (1 s)


def test_stopping_the_replica_mid_load_costs_no_client_an_error(pair, settings):
    _, replica = pair
    key = issue_key(settings, "failover")
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def client(n: int, url: str) -> None:
        i = n
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as http:
            while not stop.is_set():
                i += 4
                statuses[http.get(ITEMS, params={"limit": 1 + i % 400}).status_code] += 1  # each a cache miss

    with live_server(settings) as url:
        threads = [threading.Thread(target=client, args=(n, url)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            before = sum(statuses.values())
            replica.halt()
            time.sleep(2.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
            replica.resume()
    assert before > 0 and sum(statuses.values()) > before  # it served before and after the replica stopped
    assert statuses == Counter({200: sum(statuses.values())})


def _ready(c: TestClient, replica: str, within: float = 10.0) -> dict:
    """The /readyz answer once its replica check says ``replica`` (asserting it does within ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        answer = c.get("/readyz")
        if answer.json()["checks"]["replica"] == replica or time.monotonic() > deadline:
            assert answer.json()["checks"]["replica"] == replica, answer.json()
            return {"code": answer.status_code, **answer.json()}
        time.sleep(0.2)


def test_readiness_reports_the_replica_apart_and_stays_ready_without_it(pair, settings):
    primary, replica = pair
    with TestClient(create_app(settings)) as c:
        assert _ready(c, "ok") == {"code": 200, "status": "ready",
                                   "checks": {"store": "ok", "replica": "ok", "redis": "off"}}
        assert sessions(primary.url, "onemap-readyz") == 1  # the store check reads on the primary
        replica.halt()
        try:
            down = _ready(c, "unavailable")
            assert down["code"] == 200 and down["checks"]["store"] == "ok"  # the primary answers reads
        finally:
            replica.resume()
        assert _ready(c, "ok", within=20)["code"] == 200
    assert sessions(primary.url, "onemap-readyz") == 0  # closed with the app
