"""Fixtures for the raster, terrain and STAC tests: small real COGs beside the sample vector store.

``tests/conftest.py`` registers this module as a plugin: any test module may take ``raster_dir`` and ``raster_client``.
The COGs are the sample rasters at ``SCALE`` (same footprints, coarser pixels), written once per
module into a temporary data directory that links the session's embedded vector store.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.errors import NotGeoreferencedWarning

from server.app import create_app
from server.raster.sample import write_sample_rasters
from server.settings import Settings
from tests.support.api_keys import issue_key

SCALE = 8  # imagery 9.6 m grid cells, DEM 80 m


def raster_settings(data_dir: Path, **overrides) -> Settings:
    """Settings on ``data_dir``, never read from the developer's environment."""
    for key in [k for k in os.environ if k.startswith("ONEMAP_")]:
        os.environ.pop(key)
    return Settings(data_dir=data_dir, **overrides)


def make_data_dir(target: Path, sample_dir: Path) -> Path:
    """A data directory with the sample rasters and a link to the embedded vector store."""
    target.mkdir(parents=True, exist_ok=True)
    write_sample_rasters(target, scale=SCALE)
    link = target / "onemap.gpkg"
    if not link.exists():
        link.symlink_to(sample_dir / "onemap.gpkg")
    return target


@pytest.fixture(scope="module")
def raster_dir(tmp_path_factory, sample_dir) -> Path:
    """The module's data directory (rasters + vector store)."""
    return make_data_dir(tmp_path_factory.mktemp("rasters"), sample_dir)


@pytest.fixture(scope="module")
def raster_client(raster_dir):
    """A client with an all-collections API key on an app over ``raster_dir``."""
    settings = raster_settings(raster_dir)
    with TestClient(create_app(settings), headers={"X-API-Key": issue_key(settings, "rasters")}) as client:
        yield client


def decode_image(body: bytes) -> np.ndarray:
    """Pixels (bands, rows, cols) of a PNG, JPEG or WebP body, decoded with GDAL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.MemoryFile(io.BytesIO(body)) as mem, mem.open() as src:
            return src.read()


SHEETS = ("r0c0", "r0c1", "r1c0", "r1c1")  # the sample's 2 x 2 grid of sheets per imagery acquisition


def sheet_ids(acquisition: str) -> list[str]:
    """The STAC item ids of an imagery acquisition's sheets, in name order."""
    return [f"{acquisition}_{s}" for s in SHEETS]


def acquisitions(ids: list[str]) -> list[str]:
    """Item ids with each sheet id replaced by its acquisition, duplicates after the first dropped."""
    return list(dict.fromkeys(i.rsplit("_", 1)[0] if i.rsplit("_", 1)[-1] in SHEETS else i for i in ids))
