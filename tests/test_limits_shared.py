"""Rate limits and daily quotas hold across workers: ``onemap serve --workers 2`` with a real Redis.

A burst of requests spread over both workers gets exactly the key's daily quota of 200s, and exactly
the tokens of its bucket for the rate; the rest are 429 with Retry-After. With Redis down, an edition
whose limits fail closed answers 503 to keyed requests with limits, one that fails open limits in
process. Both backends hold the keys and the audit the quota is seeded from.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from server.app import create_app
from server.cache.breaker import CircuitBreaker
from server.commands.access import build_key
from server.policy.limits import quota_day
from server.policy.shared_limits import Limits
from server.settings import Settings
from server.stores import open_store
from tests.support import ROOT
from tests.support.mislabelled import mislabelled_gpkg_dir
from tests.support.redis_server import RedisServer

DATA = "/collections/admin_boundaries/items?limit=1"


def clean_settings(**kw) -> Settings:
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    return Settings(**kw)


def add_key(settings: Settings, **limits) -> str:
    record, key = build_key(settings, f"limits {sorted(limits.items())}", **limits)
    with open_store(settings).opened_admin() as admin:
        admin.add_key(record)
    return key


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis-limits"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["geopackage", "postgis"])
def two_workers(request, sample_dir, redis_server, tmp_path_factory):
    """(settings, root URL) of ``onemap serve --workers 2`` over the module's backend, limits in Redis."""
    data_dir = tmp_path_factory.mktemp("two-workers")
    shutil.copyfile(sample_dir / "onemap.gpkg", data_dir / "onemap.gpkg")
    url = request.getfixturevalue("pg_url") if request.param == "postgis" else None
    settings = clean_settings(data_dir=data_dir, database_url=url, redis_url=redis_server.url)
    port = _free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
           "ONEMAP_DATA_DIR": str(data_dir), "ONEMAP_REDIS_URL": redis_server.url,
           "ONEMAP_REDIS_TIMEOUT_S": "2"}  # a loaded CI machine must not make the limits fail closed
    if url:
        env["ONEMAP_DATABASE_URL"] = url
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--port", str(port),
                             "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, root)
        yield settings, root
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, root: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "onemap serve exited at start-up"
        try:
            if httpx.get(f"{root}/conformance", timeout=1).status_code < 500:
                time.sleep(2.0)  # the second worker starts beside the first
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("onemap serve did not answer in 60 s")


def burst(root: str, key: str, n: int) -> list[httpx.Response]:
    """``n`` requests on fresh connections, 8 at a time (so both workers get some)."""
    def one(_i: int) -> httpx.Response:
        return httpx.get(root + DATA, headers={"X-API-Key": key, "Connection": "close"}, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_daily_quota_is_shared_by_the_workers(two_workers):
    settings, root = two_workers
    key = add_key(settings, daily_quota=12)
    answers = burst(root, key, 40)
    assert sorted(r.status_code for r in answers) == [200] * 12 + [429] * 28, [r.text for r in answers]
    refused = [r for r in answers if r.status_code == 429]
    assert all("Daily quota of 12" in r.json()["description"] and int(r.headers["retry-after"]) > 0 for r in refused)


def test_rate_is_shared_by_the_workers(two_workers):
    settings, root = two_workers
    key = add_key(settings, rate="0.05/s")  # a bucket of one token, the next one 20 s later
    started = time.monotonic()
    answers = burst(root, key, 24)
    assert time.monotonic() - started < 20, "the burst must fit before a second token"
    assert sorted(r.status_code for r in answers) == [200] + [429] * 23, [r.text for r in answers]
    assert all(r.headers["retry-after"] for r in answers if r.status_code == 429)


def test_redis_down_fails_closed_or_open_per_edition(redis_server, sample_dir, tmp_path):
    classified = clean_settings(data_dir=tmp_path / "classified", redis_url=redis_server.url,
                                redis_timeout_s=0.1)
    shutil.copytree(sample_dir, classified.data_dir)
    internet = clean_settings(data_dir=mislabelled_gpkg_dir(tmp_path / "internet", sample_dir, rasters=False),
                              redis_url=redis_server.url, redis_timeout_s=0.1, edition="internet")
    keys = {s.edition: add_key(s, rate="1/s") for s in (classified, internet)}
    unlimited = add_key(classified)
    redis_server.stop()
    try:
        with TestClient(create_app(classified)) as client:
            r = client.get(DATA, headers={"X-API-Key": keys["classified"]})
            assert r.status_code == 503 and r.headers["retry-after"] and "limits" in r.json()["description"]
            assert client.get(DATA, headers={"X-API-Key": unlimited}).status_code == 200
        with TestClient(create_app(internet)) as client:
            codes = [client.get(DATA, headers={"X-API-Key": keys["internet"]}).status_code for _ in range(3)]
            assert codes[0] == 200 and 429 in codes
    finally:
        redis_server.start()


def test_no_redis_limits_in_process(sample_dir, tmp_path):
    settings = clean_settings(data_dir=Path(shutil.copytree(sample_dir, tmp_path / "d")))
    key = add_key(settings, daily_quota=2)
    with TestClient(create_app(settings)) as client:
        codes = [client.get(DATA, headers={"X-API-Key": key}).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]


def _limits(url: str) -> Limits:
    async def no_history(_key_id: str, _since: dt.datetime) -> int:
        return 0

    limits = Limits(url, 2.0, CircuitBreaker("test limits", 3, 10.0), "closed", no_history)
    limits.open()
    return limits


def _evalsha_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0)) + int(stats.get("cmdstat_eval", {}).get("calls", 0))


def test_busy_keys_take_leases_and_never_pass_their_limits(redis_server):
    """Two workers' limiters on one Redis: a busy key costs a Redis call per lease, not per request, and the
    workers together still admit exactly the daily quota (leases are counted when taken) and no more
    than the bucket's tokens (the rate's burst plus its refill while the test runs)."""
    workers = [_limits(redis_server.url), _limits(redis_server.url)]
    now = dt.datetime.now(dt.UTC)

    async def run() -> tuple[int, int, float]:
        quota_admitted = rate_admitted = 0
        for i in range(5_200):  # the quota is 5,000: taken in leases of 5, alternately by each worker
            quota_admitted += await workers[i % 2].quota("lease-quota", 5_000, now) == 0
        started = time.monotonic()
        for i in range(3_000):  # 2,000/s: a burst of 2,000 tokens, leases of 100
            rate_admitted += await workers[i % 2].rate("lease-rate", 2_000.0) == 0
        return quota_admitted, rate_admitted, time.monotonic() - started

    calls_before = _evalsha_calls(redis_server.url)
    quota_admitted, rate_admitted, elapsed = asyncio.run(run())
    calls = _evalsha_calls(redis_server.url) - calls_before
    assert quota_admitted == 5_000
    assert 2_000 <= rate_admitted <= 2_000 + 2_000 * elapsed + 1
    assert calls < (5_000 // 5 + 3_000 // 100) * 1.2  # a call per lease, none per request or refusal
    assert int(redis.Redis.from_url(redis_server.url).get(f"onemap:quota:lease-quota:{quota_day(now)[0]}")) == 5_000


def test_concurrent_requests_of_a_busy_key_share_one_lease(redis_server):
    """Requests arriving together while a worker's lease is empty wait for one Redis call and share its lease
    (they must not each take a lease, wasting the bucket and refusing a key far below its rate)."""
    limits = _limits(redis_server.url)
    now = dt.datetime.now(dt.UTC)

    async def run() -> list[tuple[int, int]]:
        async def one() -> tuple[int, int]:
            return (await limits.rate("lease-busy", 1_000_000.0), await limits.quota("lease-busy", 10**9, now))

        return await asyncio.gather(*(one() for _ in range(500)))

    calls_before = _evalsha_calls(redis_server.url)
    answers = asyncio.run(run())
    assert answers == [(0, 0)] * 500
    assert _evalsha_calls(redis_server.url) - calls_before <= 4  # one lease of each, maybe a quota seed


def test_requests_waiting_for_a_lease_all_go_on_together(redis_server):
    """Requests that wait for a lease go on in the same turn of the event loop once it is taken (with a lock
    they went on one turn after another, each turn holding other requests' work: the tail of a busy key)."""
    limits = _limits(redis_server.url)

    async def run() -> list[int]:
        turns, went_on, stop = 0, [], asyncio.Event()

        async def count_turns() -> None:
            nonlocal turns
            while not stop.is_set():
                turns += 1
                await asyncio.sleep(0)

        async def one() -> None:
            assert await limits.rate("lease-together", 1_000_000.0) == 0
            went_on.append(turns)

        ticker = asyncio.create_task(count_turns())
        await asyncio.gather(*(one() for _ in range(300)))
        stop.set()
        await ticker
        return went_on

    went_on = asyncio.run(run())
    assert len(went_on) == 300 and max(went_on) - min(went_on) <= 2, (min(went_on), max(went_on))
