"""Failover: two real ``onemap serve`` replicas sharing one PostGIS and one Redis behind a real nginx;
one replica is killed (kill -9, workers included) under a short load, and nginx retries the other:
clients see no error (the documented figure is 0)."""

from __future__ import annotations

import time

import pytest

from server.settings import Settings
from tests.support.api_keys import issue_key
from tests.support.failover import PATHS_DEFAULT as PATHS
from tests.support.failover import Load, Nginx, Replica
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def system(pg_url, tmp_path_factory):
    """(nginx, [replica 1, replica 2], key), all on loopback."""
    work = tmp_path_factory.mktemp("failover")
    redis = RedisServer(work)
    redis.start()
    env = {"ONEMAP_DATABASE_URL": pg_url, "ONEMAP_REDIS_URL": redis.url, "ONEMAP_CACHE_SECRET": "failover",
           "ONEMAP_DATA_DIR": str(work / "data")}
    replicas = [Replica(env, work), Replica(env, work)]
    nginx = None
    try:
        for r in replicas:
            r.start()
        nginx = Nginx(work / "nginx", [r.port for r in replicas])
        yield nginx, replicas, issue_key(Settings(database_url=pg_url), "failover")
    finally:
        if nginx is not None:
            nginx.stop()
        for r in replicas:
            r.stop()
        redis.stop()


def test_both_replicas_answer_through_nginx(system):
    nginx, replicas, key = system
    load = Load(nginx.url, PATHS, key, clients=2)
    time.sleep(3)
    load.stop()
    assert load.statuses[200] >= 4 and load.error_count == 0, load.statuses


def test_killing_a_replica_under_load_costs_no_client_error(system):
    nginx, replicas, key = system
    load = Load(nginx.url, PATHS, key, clients=4)
    try:
        time.sleep(3)
        replicas[0].kill()
        killed_at = int(time.monotonic() - load.started)
        time.sleep(5)
    finally:
        load.stop()
    assert load.error_count == 0, (dict(load.statuses), dict(load.errors), dict(load.failures))
    after = sum(n for second, n in load.ok.items() if second > killed_at)
    assert after >= 4  # the survivor carried the load
