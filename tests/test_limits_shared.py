"""Rate limits and daily quotas hold across workers: ``onemap serve --workers 2`` with a real Redis.

A burst of requests spread over both workers gets exactly the key's daily quota of 200s, and exactly
the tokens of its bucket for the rate; the rest are 429 with Retry-After. With Redis down, an edition
whose limits fail closed answers 503 to keyed requests with limits, one that fails open limits in
process. Both backends hold the keys and the audit the quota is seeded from.
"""

from __future__ import annotations

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
from fastapi.testclient import TestClient

from server.app import create_app
from server.commands.access import build_key
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
