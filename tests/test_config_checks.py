"""Fail fast: a bad configuration stops ``onemap serve`` (any number of workers) with one message, and
``onemap check-config`` finds missing or damaged rasters, damaged store pages and bad URLs.

Every test runs the real command line as a subprocess, bounded by a timeout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 90


def onemap(args: list[str], env: dict[str, str], cwd: Path, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``onemap ARGS`` with only ``env`` as its ONEMAP_ settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data_env(sample_dir) -> dict[str, str]:
    return {"ONEMAP_DATA_DIR": str(sample_dir)}


@pytest.fixture(scope="module")
def bad_collections(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("collections")
    for f in (ROOT / "collections").glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    path = folder / "parcels.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("kind: vector", "kind: vectr"), encoding="utf-8")
    return folder


@pytest.mark.parametrize(("workers", "env", "names"), [
    (1, {"ONEMAP_REDIS_URL": "redis//127.0.0.1:6379"}, "ONEMAP_REDIS_URL"),
    (3, {"ONEMAP_REDIS_URL": "redis://127.0.0.1:99999/0"}, "ONEMAP_REDIS_URL"),
    (1, {"ONEMAP_EDITION": "intranet"}, "ONEMAP_EDITION"),
    (3, {"ONEMAP_EDITION": "intranet"}, "ONEMAP_EDITION"),
    (2, {"ONEMAP_POOL_MAX_SIZE": "two"}, "ONEMAP_POOL_MAX_SIZE"),
    (2, {"ONEMAP_DATABASE_URL": "postgresql://u@h:54x2/db"}, "ONEMAP_DATABASE_URL"),
    (3, {"ONEMAP_COLLECTIONS_DIR": "BAD"}, "parcels.yaml: key 'kind'"),
    (2, {"ONEMAP_EDITION": "internet"}, "unlabelled master store"),
])
def test_serve_stops_with_one_message(workers, env, names, data_env, bad_collections, tmp_path):
    """No worker starts: one message naming the variable or file, exit status 2, no traceback."""
    if env.get("ONEMAP_COLLECTIONS_DIR") == "BAD":
        env = {"ONEMAP_COLLECTIONS_DIR": str(bad_collections)}
    started = time.monotonic()
    out = onemap(["serve", "--workers", str(workers), "--port", str(_free_port())], {**data_env, **env}, tmp_path)
    assert out.returncode == 2, out
    assert names in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "Started server process" not in out.stderr  # nothing was forked
    assert time.monotonic() - started < 30


def test_other_commands_name_the_variable(data_env, tmp_path):
    out = onemap(["overviews"], {**data_env, "ONEMAP_STATEMENT_TIMEOUT_MS": "-5"}, tmp_path)
    assert out.returncode == 2
    assert "ONEMAP_STATEMENT_TIMEOUT_MS" in out.stderr and "Traceback" not in out.stderr


def test_good_configuration_serves_with_workers(data_env, tmp_path):
    """The control: the same command with a valid configuration serves until stopped."""
    import httpx

    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--port", str(port)],
                            env={**base, **data_env, "PYTHONPATH": str(ROOT)},
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, status = time.monotonic() + TIMEOUT_S, None
        while status is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/collections", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(0.3)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert status == 401  # serving: the default (classified) edition admits keyed callers only
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture(scope="module")
def damaged_dir(tmp_path_factory, raster_dir) -> Path:
    """A copy of the raster data directory: one COG truncated, one removed, store pages overwritten."""
    target = tmp_path_factory.mktemp("damaged")
    shutil.copytree(raster_dir / "rasters", target / "rasters")
    shutil.copyfile((raster_dir / "onemap.gpkg").resolve(), target / "onemap.gpkg")
    cogs = sorted((target / "rasters").rglob("*.tif"))  # the DEM, then the imagery's sheets
    assert len(cogs) >= 3
    with open(cogs[0], "r+b") as f:
        f.truncate(f.seek(0, 2) // 2)
    cogs[1].unlink()
    return target


def test_check_config_passes_a_good_configuration(raster_dir, tmp_path):
    out = onemap(["check-config"], {"ONEMAP_DATA_DIR": str(raster_dir)}, tmp_path)
    assert out.returncode == 0, out.stderr
    for section in ("settings", "catalog", "store", "editions", "rasters"):
        assert f"{section}: ok" in out.stdout


def test_check_config_reports_rasters_and_urls(damaged_dir, tmp_path):
    env = {"ONEMAP_DATA_DIR": str(damaged_dir), "ONEMAP_REDIS_URL": "http://127.0.0.1:6379",
           "ONEMAP_BASE_URL": "onemap.example.org"}
    out = onemap(["check-config"], env, tmp_path)
    assert out.returncode == 1
    cogs = sorted(str(p.relative_to(damaged_dir)) for p in (damaged_dir / "rasters").rglob("*.tif"))
    problems = [line for line in out.stderr.splitlines() if line.startswith("rasters: ")]
    assert len(problems) == 2, out.stderr  # the truncated and the missing file; the others read
    assert not any(name in line for name in cogs[1:] for line in problems)
    assert "ONEMAP_REDIS_URL" in out.stderr and "ONEMAP_BASE_URL" in out.stderr
    assert "Traceback" not in out.stderr


def test_check_config_reports_damaged_store_pages(damaged_dir, tmp_path):
    store = tmp_path / "data"
    store.mkdir()
    shutil.copyfile(damaged_dir / "onemap.gpkg", store / "onemap.gpkg")
    page = 4096
    with open(store / "onemap.gpkg", "r+b") as f:
        size = f.seek(0, 2)
        for offset in range(size // 3 // page * page, size // 3 // page * page + 8 * page, page):
            f.seek(offset)
            f.write(b"\xa5" * page)
    out = onemap(["check-config"], {"ONEMAP_DATA_DIR": str(store)}, tmp_path)
    assert out.returncode == 1
    assert "store: " in out.stderr and "onemap.gpkg" in out.stderr
    assert "store: ok" not in out.stdout and "Traceback" not in out.stderr
