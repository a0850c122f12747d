"""The embedded store rebuilt while served: ``onemap overviews`` and ``onemap sample`` write aside and
rename, and a running ``onemap serve`` under load answers no 5xx and moves to the new file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from server.sample import build_sample
from server.settings import Settings
from server.stores import GPKG_NAME
from server.stores.geopackage import GeoPackageStore
from tests.support.api_keys import issue_key
from tests.test_config_checks import _free_port

ROOT = Path(__file__).resolve().parents[1]
FIRST, SECOND = 200, 320  # parcels before and after the rebuild
URLS = ("/collections/parcels/items?limit=50&bbox=121.45,29.78,121.65,29.92",
        "/collections/parcels/tiles/WebMercatorQuad/13/3383/6861",
        "/tiles/WebMercatorQuad/12/1691/3430",
        "/collections/land_survey/items?limit=20")


def _env(data_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    return {**base, "PYTHONPATH": str(ROOT), "ONEMAP_DATA_DIR": str(data_dir)}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A data directory with a small sample, served by a real ``onemap serve`` process; (url, key, dir)."""
    data_dir = tmp_path_factory.mktemp("swap")
    build_sample(FIRST, GeoPackageStore(data_dir / GPKG_NAME))
    key = issue_key(Settings(data_dir=data_dir), "swap")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--no-access-log"],
                            env=_env(data_dir), cwd=data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/conformance", timeout=2)
            break
        except httpx.HTTPError:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.3)
    try:
        yield url, key, data_dir
    finally:
        proc.terminate()
        proc.wait(20)


class Load:
    """Clients requesting ``URLS`` in a loop until stopped; every status code is kept."""

    def __init__(self, url: str, key: str, clients: int = 3) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url, key, i), daemon=True) for i in range(clients)]

    def _run(self, url: str, key: str, i: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client:
            n = i
            while not self._stop.is_set():
                self.statuses.append(client.get(URLS[n % len(URLS)]).status_code)
                n += 1

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def _parcels(url: str, key: str) -> int:
    r = httpx.get(f"{url}/collections/parcels/items?limit=5000", headers={"X-API-Key": key}, timeout=30)
    assert r.status_code == 200, r.text
    return len(r.json()["features"])


def _run(args: list[str], data_dir: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "server.cli", *args], env=_env(data_dir), cwd=data_dir,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


def test_overviews_rebuilt_while_served(served):
    url, key, data_dir = served
    assert _parcels(url, key) == FIRST
    inode = (data_dir / GPKG_NAME).stat().st_ino
    with Load(url, key) as load:
        _run(["overviews"], data_dir)
        time.sleep(1.0)
    assert (data_dir / GPKG_NAME).stat().st_ino != inode  # a new file was renamed into place
    assert load.statuses and all(s == 200 for s in load.statuses), sorted(set(load.statuses))
    assert not list(data_dir.glob(".onemap.gpkg.*"))  # no file left aside


def test_sample_rewritten_while_served_is_picked_up(served):
    url, key, data_dir = served
    with Load(url, key) as load:
        _run(["sample", "--scale", str(SECOND), "--no-rasters"], data_dir)
        deadline = time.monotonic() + 15
        while (count := _parcels(url, key)) != SECOND and time.monotonic() < deadline:
            time.sleep(0.3)
    assert count == SECOND  # the new file, not the deleted one
    assert len(load.statuses) > 10 and all(s == 200 for s in load.statuses), sorted(set(load.statuses))
    for _ in range(8):  # whichever thread answers, it reads the new file
        assert _parcels(url, key) == SECOND
