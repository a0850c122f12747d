"""Configuration reload without a restart: ``onemap serve --workers 2`` given ``kill -HUP`` replaces its
workers one at a time with workers built from the edited catalog and styles, and no request fails on
the way; an edit that does not load leaves the running workers serving the configuration before it."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from server.settings import Settings
from tests.conftest import settings_for
from tests.support import ROOT
from tests.support.api_keys import issue_key
from tests.support.live import serve_process, wait_answering

RELOAD_WAIT_S = 120


@pytest.fixture()
def served(sample_dir, tmp_path, request):
    """(base URL, key, process, log, collections dir, styles dir): a two-worker server on copies of the
    packaged catalog, styles and configuration."""
    settings_for("geopackage", request)  # clears the environment
    dirs = {name: tmp_path / name for name in ("collections", "styles", "config")}
    for name, target in dirs.items():
        shutil.copytree(ROOT / name, target)
    env = {"ONEMAP_DATA_DIR": str(sample_dir), "ONEMAP_CACHE_SECRET": "reload",
           **{f"ONEMAP_{name.upper()}_DIR": str(path) for name, path in dirs.items()}}
    log = tmp_path / "serve.log"
    proc, url = serve_process(env, log, "--log-level", "info", "--no-access-log")
    try:
        wait_answering(url + "/healthz", proc, log)
        yield url, issue_key(Settings(data_dir=sample_dir), "reload"), proc, log, dirs["collections"], dirs["styles"]
    finally:
        proc.terminate()
        proc.wait(30)


class Load:
    """Two threads asking for the parcels collection and its style until stopped; outcomes counted."""

    def __init__(self, url: str, key: str) -> None:
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url, key, path), daemon=True)
                         for path in ("/collections/parcels", "/styles/parcels")]
        for t in self._threads:
            t.start()

    def _run(self, url: str, key: str, path: str) -> None:
        while not self._stop.is_set():
            try:  # a new connection each time: every worker is reached
                outcome = str(httpx.get(url + path, headers={"X-API-Key": key}, timeout=30).status_code)
            except httpx.HTTPError as exc:
                outcome = exc.__class__.__name__
            self.outcomes[outcome] += 1

    def stop(self) -> Counter[str]:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        return self.outcomes


def titles(url: str, key: str) -> tuple[str, str]:
    """The parcels collection's English title and the parcels style's name, from a new connection."""
    headers = {"X-API-Key": key, "Accept-Language": "en"}
    collection = httpx.get(url + "/collections/parcels", headers=headers, timeout=30).json()
    style = orjson.loads(httpx.get(url + "/styles/parcels", headers=headers, timeout=30).content)
    return collection["title"], style["name"]


def every_answer(url: str, key: str, expected: tuple[str, str]) -> bool:
    """Whether ten answers in a row (new connections, so both workers) carry ``expected``."""
    return all(titles(url, key) == expected for _ in range(10))


def edit(collections: Path, styles: Path, mark: str) -> tuple[str, str]:
    """Append ``mark`` to the parcels collection's English title and to its style's name."""
    catalog = collections / "parcels.yaml"
    text = catalog.read_text(encoding="utf-8")
    catalog.write_text(text.replace("en: Registered real estate parcels}",
                                    f"en: Registered real estate parcels{mark}}}", 1), encoding="utf-8")
    style = orjson.loads((styles / "parcels.json").read_bytes())
    style["name"] += mark
    (styles / "parcels.json").write_bytes(orjson.dumps(style))
    return f"Registered real estate parcels{mark}", style["name"]


def test_hup_reloads_catalog_and_styles_with_no_failed_request(served):
    url, key, proc, log, collections, styles = served
    before = titles(url, key)
    assert before == ("Registered real estate parcels", "parcels")
    load = Load(url, key)
    try:
        time.sleep(1)
        expected = edit(collections, styles, " (edited)")
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_WAIT_S
        while not every_answer(url, key, expected):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(1)
    finally:
        outcomes = load.stop()
    assert set(outcomes) == {"200"} and outcomes["200"] > 20, outcomes


def test_an_edit_that_does_not_load_keeps_the_running_workers(served):
    url, key, proc, log, collections, styles = served
    (collections / "parcels.yaml").write_text("id: parcels\nkind: [vector\n", encoding="utf-8")
    os.kill(proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + RELOAD_WAIT_S
    while "aborting the restart" not in log.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    assert proc.poll() is None
    assert every_answer(url, key, ("Registered real estate parcels", "parcels"))


def test_cache_keys_change_with_the_styles_and_the_configuration(tmp_path):
    """Workers started on edited files share no cache entry (in Redis) with the workers before them."""
    from server.cache.response_cache import _namespace
    from server.catalog import load_catalog

    styles, config = tmp_path / "styles", tmp_path / "config"
    shutil.copytree(ROOT / "styles", styles)
    shutil.copytree(ROOT / "config", config)
    settings = Settings(styles_dir=styles, config_dir=config)
    catalog = load_catalog(ROOT / "collections")
    first = _namespace(settings, catalog)
    assert _namespace(settings, catalog) == first
    style = orjson.loads((styles / "parcels.json").read_bytes())
    (styles / "parcels.json").write_bytes(orjson.dumps({**style, "name": "parcels 2"}))
    second = _namespace(settings, catalog)
    with open(config / "editions.yaml", "a", encoding="utf-8") as f:
        f.write("\n# edited\n")
    third = _namespace(settings, catalog)
    assert len({first, second, third}) == 3
