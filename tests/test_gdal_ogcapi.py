"""GDAL's OGC API driver finds each tile matrix set by its reference (``tileMatrixSetURI``).

Two GDALs: the newest one PyPI gives (pyogrio's wheel, 3.12 today; reads the vector tiles, key as ``?api_key=``,
which the server carries into every link GDAL follows) and Debian's (``gdalinfo``, GDAL 3.6; reads
the imagery map tiles, key in the ``X-API-Key`` header through ``GDAL_HTTP_HEADERS``). GDAL before 3.7
reads only the TMS 1.0 names of a tile matrix set, which the definitions carry beside the 2.0 ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from server.raster.sample import write_sample_rasters
from server.settings import Settings
from tests.support.api_keys import issue_key
from tests.support.live import live_server

GRIDS = ("WorldCRS84Quad", "CGCS2000Quad")
COUNTY = (121.40, 29.75, 121.70, 29.95)
REGISTERED = {"WebMercatorQuad": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
              "WorldCRS84Quad": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WorldCRS84Quad"}


@pytest.fixture(scope="module")
def served(sample_dir, tmp_path_factory):
    """A keyed server over the sample county and small imagery: (URL, key)."""
    data_dir = tmp_path_factory.mktemp("gdal-data")
    (data_dir / "onemap.gpkg").symlink_to(sample_dir / "onemap.gpkg")
    write_sample_rasters(data_dir, scale=16)
    settings = Settings(data_dir=data_dir, edition="classified")
    key = issue_key(settings, "gdal")
    with live_server(settings) as url:
        yield url, key


def test_every_tileset_references_its_set(served):
    url, key = served
    for tiles in ("/collections/land_survey/tiles", "/collections/imagery/tiles", "/tiles"):
        tilesets = httpx.get(url + tiles, headers={"X-API-Key": key}).json()["tilesets"]
        refs = {t["links"][1]["href"].rsplit("/", 1)[1]: t["tileMatrixSetURI"] for t in tilesets}
        assert refs == {**REGISTERED, "CGCS2000Quad": f"{url}/tileMatrixSets/CGCS2000Quad"}
    cgcs = httpx.get(f"{url}/tileMatrixSets/CGCS2000Quad").json()
    assert cgcs["crs"] == cgcs["supportedCRS"] == "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert cgcs["identifier"] == cgcs["id"] and cgcs["type"] == "TileMatrixSetType"
    first = cgcs["tileMatrices"][0]
    assert first["identifier"] == "1" and first["topLeftCorner"] == first["pointOfOrigin"] == [90.0, -180.0]
    assert cgcs["boundingBox"]["lowerCorner"] == [-90.0, -180.0]


# run in its own process: GDAL's HTTP calls and the server's thread do not share an interpreter
NEWEST = """
import json, sys
import pyogrio
source, grid = sys.argv[1:]
info = pyogrio.read_info(source, layer="Zoom level 12", API="TILES", TILEMATRIXSET=grid)
meta, _, geometries, _ = pyogrio.raw.read(source, layer="Zoom level 12", API="TILES", TILEMATRIXSET=grid,
                                          bbox=(121.50, 29.80, 121.52, 29.82))
print(json.dumps({"gdal": pyogrio.__gdal_version__, "crs": info["crs"], "fields": list(meta["fields"]),
                  "features": len(geometries)}))
"""


@pytest.mark.parametrize("grid", GRIDS)
def test_newest_gdal_reads_vector_tiles_in_each_grid(served, grid):
    url, key = served
    source = f"OGCAPI:{url}/collections/land_survey?api_key={key}"
    run = subprocess.run([sys.executable, "-c", NEWEST, source, grid], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout)
    assert tuple(found["gdal"][:2]) >= (3, 10)
    assert ("4490" in found["crs"]) == (grid == "CGCS2000Quad")
    assert found["features"] > 5 and "land_code" in found["fields"]


@pytest.mark.parametrize("grid", GRIDS)
def test_debian_gdal_reads_imagery_tiles_in_each_grid(served, grid, tmp_path):
    gdalinfo = shutil.which("gdalinfo")
    if gdalinfo is None:
        pytest.fail("gdalinfo is missing: apt-get install gdal-bin (or run 'make test')")
    url, key = served
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"X-API-Key: {key}", "GDAL_HTTP_TIMEOUT": "60"}
    run = subprocess.run([gdalinfo, "-json", f"OGCAPI:{url}/collections/imagery", "-oo", "API=TILES",
                          "-oo", f"TILEMATRIXSET={grid}"], capture_output=True, text=True, timeout=120,
                         env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert info["driverShortName"] == "OGCAPI" and len(info["bands"]) >= 3
    wkt = info["coordinateSystem"]["wkt"]
    assert ('"EPSG",4490' in wkt) == (grid == "CGCS2000Quad")
    (west, north), (east, south) = info["cornerCoordinates"]["upperLeft"], info["cornerCoordinates"]["lowerRight"]
    assert COUNTY[0] - 0.01 <= west < east <= COUNTY[2] + 0.01 and COUNTY[1] - 0.01 <= south < north <= COUNTY[3] + 0.01
