"""The package as a user gets it, and what importing it does to the process.

A wheel is built from a copy of this checkout and installed (not editable) into a fresh virtualenv;
from an empty directory its ``onemap`` writes the sample to ``./data``, creates a key and serves:
collections, items, a vector tile, a style and the viewer's MapLibre files. The build is offline
(``pip wheel --no-build-isolation`` with this environment's setuptools, from the ``test`` extra);
the virtualenv reaches this environment's site-packages through a ``.pth`` file, for the
dependencies only: the ``server`` it runs is the installed one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import httpx
import mapbox_vector_tile
import morecantile
import pytest

from tests.support import ROOT

SCALE = 500
NOT_SHIPPED = (".git", ".venv", "node_modules", "data", "build", "*.egg-info", "__pycache__", ".pytest_cache",
               "tests", "load-tests")


def _run(*cmd: str | Path, cwd: Path | None = None, env: dict | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _user_env() -> dict[str, str]:
    """The caller's environment without OneMap settings or a PYTHONPATH that could reach the checkout."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_") and k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtualenv holding the wheel built from this checkout; returns its bin/ directory."""
    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None:
        pytest.fail("building the wheel offline needs setuptools >= 70.1: pip install -e '.[test]' (or make test)")
    tmp = tmp_path_factory.mktemp("packaging")
    src, dist, env_dir = tmp / "src", tmp / "dist", tmp / "venv"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", dist, src)
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    wheel = next(dist.glob("onemap-*.whl"))
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "onemap_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours), encoding="utf-8")
    return env_dir / "bin"


def test_the_installed_package_finds_its_defaults(installed, tmp_path):
    script = ("import server; from server.settings import Settings; s = Settings(); "
              "print(server.__file__); print(s.collections_dir); print(s.styles_dir); print(s.config_dir); "
              "print(s.data_dir.resolve()); print(s.maplibre_dir.resolve())")
    lines = _run(installed / "python", "-c", script, cwd=tmp_path, env=_user_env()).splitlines()
    package = Path(lines[0]).parent
    assert package.is_relative_to(installed.parent), lines[0]
    assert [Path(p) for p in lines[1:4]] == [package / "defaults" / d for d in ("collections", "styles", "config")]
    assert (package / "defaults" / "collections" / "parcels.yaml").is_file()
    assert (package / "defaults" / "config" / "editions.yaml").is_file()
    assert Path(lines[4]) == tmp_path.resolve() / "data"
    assert Path(lines[5]) == tmp_path.resolve() / "node_modules" / "maplibre-gl" / "dist"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, url: str, headers: dict) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "onemap serve exited at start-up"
        try:
            if httpx.get(f"{url}/conformance", headers=headers, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("onemap serve did not answer in 30 s")


@pytest.fixture(scope="module")
def served(installed, tmp_path_factory):
    """``onemap sample``, ``onemap keys create`` and ``onemap serve`` from an empty directory: (URL, headers)."""
    work = tmp_path_factory.mktemp("empty")
    env = _user_env()
    _run(installed / "onemap", "sample", "--scale", str(SCALE), "--no-rasters", cwd=work, env=env)
    assert (work / "data" / "onemap.gpkg").is_file()
    out = _run(installed / "onemap", "keys", "create", "--name", "packaging test", cwd=work, env=env)
    key = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("api key"))
    port = _free_port()
    env["ONEMAP_MAPLIBRE_DIR"] = str(ROOT / "node_modules" / "maplibre-gl" / "dist")
    proc = subprocess.Popen([str(installed / "onemap"), "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=work, env=env)
    url, headers = f"http://127.0.0.1:{port}", {"X-API-Key": key}
    try:
        _wait_until_up(proc, url, headers)
        yield url, headers
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_installed_wheel_serves_the_sample_from_an_empty_directory(served):
    url, headers = served
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        ids = [c["id"] for c in client.get("/collections").json()["collections"]]
        assert {"parcels", "land_survey", "imagery", "dem"} <= set(ids)
        page = client.get("/collections/parcels/items", params={"limit": 3})
        assert page.status_code == 200 and len(page.json()["features"]) == 3
        lon, lat = page.json()["features"][0]["geometry"]["coordinates"][0][0][0]
        t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 14)
        tile = client.get(f"/collections/parcels/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}")  # matrix/row/col
        assert tile.status_code == 200
        assert mapbox_vector_tile.decode(tile.content)["parcels"]["features"]
        style = client.get("/styles/basemap", params={"f": "mapbox"})
        assert style.status_code == 200 and style.json()["layers"]
        assert client.get("/map").status_code == 200
        assert client.get("/map/lib/maplibre-gl.mjs").status_code == 200


ENVIRONMENT_CHECK = """
import importlib, os, pkgutil
import pyproj, rasterio  # they set their own CA bundle variables on import
import server
before = dict(os.environ)
for module in pkgutil.walk_packages(server.__path__, "server."):
    importlib.import_module(module.name)
print(sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)))
"""


def test_importing_the_server_leaves_the_environment_alone():
    assert _run(sys.executable, "-c", ENVIRONMENT_CHECK, cwd=ROOT, env=_user_env()).strip() == "[]"
