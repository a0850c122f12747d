"""Shared fixtures: one small sample county, written to the embedded store and to a real PostGIS.

The same behaviour tests take ``client`` and run once per backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.sample import build_sample
from server.settings import Settings
from server.stores import GPKG_NAME
from server.stores.geopackage import GeoPackageStore
from server.stores.postgis import PostGISStore

# the raster fixtures (raster_dir, raster_client) for any test module that takes them
pytest_plugins = ["tests.support.rasters"]

SAMPLE_SCALE = 3000
BACKENDS = ("geopackage", "postgis")


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A data directory holding the embedded sample store."""
    data_dir = tmp_path_factory.mktemp("sample")
    build_sample(SAMPLE_SCALE, GeoPackageStore(data_dir / GPKG_NAME))
    return data_dir


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory) -> str:
    """A throwaway PostGIS cluster loaded with the same sample."""
    from tests.support.pg import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("pg"))
    try:
        build_sample(SAMPLE_SCALE, PostGISStore(Settings(database_url=cluster.url)))
        yield cluster.url
    finally:
        cluster.stop()


def settings_for(backend: str, request: pytest.FixtureRequest, **overrides) -> Settings:
    """Settings for one backend, never read from the developer's environment."""
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    data_dir = request.getfixturevalue("sample_dir")
    url = request.getfixturevalue("pg_url") if backend == "postgis" else None
    return Settings(data_dir=data_dir, database_url=url, **overrides)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


def keyed_client(settings: Settings, name: str = "tests") -> TestClient:
    """A client on a new app for ``settings`` sending an all-collections API key (use it in ``with``)."""
    from tests.support.api_keys import issue_key

    return TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, name)})


@pytest.fixture(scope="module")
def client(backend, request):
    """A test client (with an all-collections API key) on the app over the given backend."""
    with keyed_client(settings_for(backend, request)) as c:
        yield c
