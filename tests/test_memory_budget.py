"""The in-process cache is budgeted per machine: the workers of one ``onemap serve`` share
``ONEMAP_CACHE_MEMORY_BYTES``; a short soak of distinct requests shows worker memory levelling off."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from server.app import create_app
from server.settings import Settings
from tests.support.api_keys import issue_key
from tests.support.soak import soak
from tests.test_config_checks import ROOT, _free_port

BUDGET = 16 * 2**20


def test_each_worker_holds_its_part_of_the_budget(sample_dir):
    for workers in (1, 4):
        app = create_app(Settings(data_dir=sample_dir, cache_memory_bytes=BUDGET, workers=workers))
        assert app.state.cache.memory.max_bytes == BUDGET // workers


def test_worker_memory_levels_off_under_a_soak(sample_dir, tmp_path):
    key = issue_key(Settings(data_dir=sample_dir), "soak")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    env.update(PYTHONPATH=str(ROOT), ONEMAP_DATA_DIR=str(sample_dir), ONEMAP_CACHE_MEMORY_BYTES=str(BUDGET))
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--port", str(port),
                             "--no-access-log"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/conformance", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        series, statuses = soak(base, key, proc.pid, seconds=30, clients=4)
    finally:
        proc.terminate()
        proc.wait(20)
    assert set(statuses) <= {200, 204} and sum(statuses.values()) > 100, statuses
    third = len(series) // 3
    for w in range(len(series[0][1])):
        middle = max(s[1][w] for s in series[third:2 * third])
        last = max(s[1][w] for s in series[2 * third:])
        assert last - middle < 24, series  # MiB: levelled off (the cache holds at most BUDGET / 2 per worker)
