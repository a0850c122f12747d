"""The shared cache on a real redis-server: sharing between workers, fail-open when Redis stops or
hangs, healing when it comes back, and ``onemap seed`` (resumable) through the tile route.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time

import pytest
import redis

from server.cache.entry import Entry
from server.cli import main
from server.commands.seed import SeedPlan, seed
from server.settings import Settings
from tests.support.api_keys import issue_key
from tests.support.redis_server import RedisServer
from tests.test_cache_http import WMQ, feature_tile, make_client

FAST_FAIL = {"redis_timeout_s": 0.2, "redis_breaker_failures": 2, "redis_breaker_cooldown_s": 0.5}
BBOX = (121.50, 29.80, 121.56, 29.86)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(redis_server):
    """The module's redis-server, running and empty."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.resume()
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server


def test_workers_share_entries_through_redis(sample_dir, fresh_redis):
    with make_client(sample_dir, redis_url=fresh_redis.url) as a, \
            make_client(sample_dir, redis_url=fresh_redis.url) as b:
        path, _ = feature_tile(a, "land_survey")
        first, shared, local = a.get(path), b.get(path), b.get(path)
    assert [r.headers["x-cache"] for r in (first, shared, local)] == ["miss", "hit-shared", "hit"]
    assert first.content == shared.content == local.content
    assert first.headers["etag"] == shared.headers["etag"] == local.headers["etag"]
    r = redis.Redis.from_url(fresh_redis.url)
    packed = [r.get(k) for k in r.keys("onemap:r:*")]
    tile = [Entry.unpack(p) for p in packed if Entry.unpack(p).identity == first.content]
    assert len(tile) == 1 and tile[0].gzip and tile[0].br  # stored compressed, without the identity body
    assert len(max(packed, key=len)) < len(tile[0].gzip) + len(tile[0].br) + len(first.content)


def _timed_get(client, path):
    started = time.monotonic()
    r = client.get(path)
    return r, time.monotonic() - started


def test_redis_stopping_mid_run_is_never_an_error_and_heals(sample_dir, fresh_redis, caplog):
    caplog.set_level(logging.INFO, "onemap.cache")
    settings = dict(FAST_FAIL, redis_url=fresh_redis.url, cache_memory_bytes=0)
    with make_client(sample_dir, **settings) as c:
        path, _ = feature_tile(c, "land_survey", 14)
        assert c.get(path).headers["x-cache"] == "miss" and c.get(path).headers["x-cache"] == "hit-shared"
        expected = c.get(path).content
        fresh_redis.stop()
        for _ in range(6):
            r, took = _timed_get(c, path)
            assert r.status_code == 200 and r.content == expected and r.headers["x-cache"] == "miss"
            assert took < 2.0
        assert c.app.state.cache.shared.breaker.state == "open"
        fresh_redis.start()
        time.sleep(0.6)  # the cool-down ends; the next call is the trial
        assert c.get(path).headers["x-cache"] == "miss"  # Redis came back empty: rendered and stored again
        assert c.get(path).headers["x-cache"] == "hit-shared"
    messages = [r.getMessage() for r in caplog.records]
    assert any("circuit open" in m for m in messages) and any("circuit closed" in m for m in messages)


def test_a_hung_redis_costs_a_short_timeout_then_is_skipped(sample_dir, fresh_redis):
    settings = dict(FAST_FAIL, redis_url=fresh_redis.url, cache_memory_bytes=0)
    with make_client(sample_dir, **settings) as c:
        path, _ = feature_tile(c, "admin_boundaries", 12)
        c.get(path)
        fresh_redis.pause()
        try:
            timings = []
            for _ in range(4):
                r, took = _timed_get(c, path)
                assert r.status_code == 200 and r.headers["x-cache"] == "miss"
                timings.append(took)
            assert max(timings) < 1.5 and timings[-1] < 0.3  # once open, Redis is not even tried
        finally:
            fresh_redis.resume()
        time.sleep(0.6)
        c.get(path)
        assert c.get(path).headers["x-cache"] == "hit-shared"


def test_seed_renders_once_and_resumes(sample_dir, fresh_redis):
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    settings = Settings(data_dir=sample_dir, redis_url=fresh_redis.url, cache_secret="test-secret")
    key = issue_key(settings)
    plan = SeedPlan(("admin_boundaries",), ("WebMercatorQuad",), (11, 12), BBOX)
    first = asyncio.run(seed(settings, plan, 3, key, io.StringIO()))
    assert first["rendered"] == 6 and first["failed"] == 0 and first["present"] == 0
    out = io.StringIO()
    again = asyncio.run(seed(settings, plan, 3, key, out))
    assert again["rendered"] == 0 and again["present"] == first["rendered"]
    assert f"{first['rendered']}/{first['rendered']} 100.0%" in out.getvalue()
    t = WMQ.tile((BBOX[0] + BBOX[2]) / 2, (BBOX[1] + BBOX[3]) / 2, 12)
    with make_client(sample_dir, redis_url=fresh_redis.url) as c:  # a server with the same settings
        r = c.get(f"/collections/admin_boundaries/tiles/WebMercatorQuad/12/{t.y}/{t.x}")
        assert r.status_code == 200 and r.headers["x-cache"] == "hit-shared"


def test_seed_command(sample_dir, fresh_redis, capsys):
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    key = issue_key(Settings(data_dir=sample_dir))
    args = ["seed", "--collections", "admin_boundaries", "--zooms", "10-11", "--bbox", ",".join(map(str, BBOX)),
            "--concurrency", "2", "--data-dir", str(sample_dir), "--api-key", key]
    assert main([*args, "--redis-url", fresh_redis.url]) == 0
    out = capsys.readouterr()
    assert "100.0%" in out.err and "seeded: rendered" in out.out
    assert main(args) == 2 and "ONEMAP_REDIS_URL" in capsys.readouterr().err
    assert main([*args[:5], "--zooms", "14-10"]) == 2 and "--zooms" in capsys.readouterr().err
    assert main([*args, "--redis-url", fresh_redis.url, "--tms", "NoSuchGrid"]) == 2
    assert "NoSuchGrid" in capsys.readouterr().err
