"""Imagery mosaic tile throughput: OneMap's sheet index against titiler's MosaicJSON, same COGs, same run.

    python load-tests/bench_mosaic.py --peers-venv /work/peers/titiler-mosaic [--data-dir DIR] [--seconds 8]

The peer virtualenv lives outside the repository:

    python3 -m venv /work/peers/titiler-mosaic
    /work/peers/titiler-mosaic/bin/pip install titiler.core titiler.mosaic cogeo-mosaic uvicorn

What it does:
1. Writes the sample imagery at full size as a 4 x 4 grid of sheets per acquisition (16 COG sheets of
   1024 x 1024 px, ``write_sample_rasters(sheets=4)``) and a small vector store, unless ``--data-dir``
   names a directory already holding them (``onemap sample --sheets 4``).
2. Builds a MosaicJSON of the latest acquisition's 16 sheets with cogeo-mosaic (in the peer venv) and
   serves it with titiler.mosaic's ``MosaicTilerFactory``; OneMap serves its ``imagery`` collection
   (no ``datetime``: per area the latest sheet, which covers everything here). Both under uvicorn
   with ``--workers`` workers, OneMap without its response cache (every request reads the COGs).
3. Requests every WebMercatorQuad tile of the footprint at levels 13 to 17 (JPEG), shuffled: levels
   13 and 14 cross sheet edges (a level-13 tile covers all 16 sheets, a level-14 tile four), 15-17
   lie in one sheet. Checks both answer every tile with an image, then alternates the servers for
   ``--rounds`` wrk runs of ``--seconds`` with ``--clients`` connections; reports the median req/s,
   p50/p99 latency, bytes and CPU per request, and the ratios OneMap / titiler.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
from pathlib import Path

import morecantile
from bench_raster import GDAL_ENV, IMAGERY_BBOX, check_outputs
from harness import UNCACHED, Target, api_key, measure, report, start_onemap, start_peer

from server.raster.sample import IMAGERY_ASSETS, write_sample_rasters

WMQ = morecantile.tms.get("WebMercatorQuad")
ZOOMS = (13, 14, 15, 16, 17)
PEER_APP = '''
from cogeo_mosaic.backends.file import FileBackend
from fastapi import FastAPI
from titiler.mosaic.factory import MosaicTilerFactory

app = FastAPI()
app.include_router(MosaicTilerFactory(backend=FileBackend).router, prefix="/mosaicjson")


@app.get("/healthz")
def healthz():
    return {"ok": True}
'''
MAKE_MOSAIC = '''
import sys
from cogeo_mosaic.mosaic import MosaicJSON
mosaic = MosaicJSON.from_urls(sys.argv[2:], minzoom=13, maxzoom=17, quiet=True)
open(sys.argv[1], "w").write(mosaic.model_dump_json(exclude_none=True))
'''


def prepare(data_dir: Path | None) -> Path:
    """A data directory with the 4 x 4-sheet sample imagery and a small vector store."""
    if data_dir is not None:
        return data_dir
    target = Path(tempfile.mkdtemp(prefix="onemap-bench-mosaic-"))
    print(f"writing sample data (16 sheets per acquisition) to {target} ...", flush=True)
    write_sample_rasters(target, sheets=4)
    from server.sample import build_sample
    from server.stores import GPKG_NAME
    from server.stores.geopackage import GeoPackageStore

    build_sample(3000, GeoPackageStore(target / GPKG_NAME))
    return target


def peer_files(venv: Path, data_dir: Path, work: Path) -> Path:
    """Write the peer's app module and the MosaicJSON of the latest acquisition's sheets; returns the JSON."""
    (work / "mosaic_peer.py").write_text(PEER_APP)
    sheets = sorted(str(p) for p in (data_dir / IMAGERY_ASSETS[-1][1]).glob("*.tif"))
    if len(sheets) != 16:
        raise SystemExit(f"expected 16 sheets in {data_dir / IMAGERY_ASSETS[-1][1]}, found {len(sheets)}")
    mosaic = work / "mosaic.json"
    subprocess.run([str(venv / "bin" / "python"), "-c", MAKE_MOSAIC, str(mosaic), *sheets], check=True)
    return mosaic


def tiles(seed: int = 5) -> list[morecantile.Tile]:
    """Every tile of the imagery footprint at levels 13-17, shuffled."""
    out = [t for z in ZOOMS for t in WMQ.tiles(*IMAGERY_BBOX, [z])]
    random.Random(seed).shuffle(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers-venv", type=Path, default=Path("/work/peers/titiler-mosaic"),
                        help="virtualenv with titiler.core, titiler.mosaic, cogeo-mosaic and uvicorn")
    parser.add_argument("--data-dir", type=Path, default=None, help="data dir with 4 x 4-sheet sample imagery")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, the same for both servers")
    args = parser.parse_args(argv)
    data_dir = prepare(args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="onemap-bench-peer-"))
    mosaic = peer_files(args.peers_venv, data_dir, work)
    headers = {"X-API-Key": api_key(data_dir=data_dir, name="bench-mosaic")}
    ours = start_onemap("onemap", args.workers, {"ONEMAP_DATA_DIR": str(data_dir), **UNCACHED, **GDAL_ENV},
                        ready="/collections/imagery", headers=headers)
    theirs = start_peer("titiler-mosaic", args.peers_venv, "mosaic_peer:app", args.workers,
                        {**GDAL_ENV, "PYTHONPATH": str(work)}, ready="/healthz")
    try:
        chosen = tiles()
        our_paths = [f"/collections/imagery/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}?f=jpeg" for t in chosen]
        their_paths = [f"/mosaicjson/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.jpg?url={mosaic}" for t in chosen]
        check_outputs(ours, our_paths, headers)
        check_outputs(theirs, their_paths, None)
        targets = {"OneMap": Target(ours, our_paths, headers), "titiler.mosaic": Target(theirs, their_paths)}
        results = measure(targets, args.clients, args.seconds, args.rounds, warmup=2)
        report(results, baseline="OneMap",
               title=f"imagery JPEG z13-z17 over 16 sheets, {len(chosen)} distinct tiles, {args.clients} clients, "
                     f"{args.workers} worker(s) each, median of {args.rounds} x {args.seconds:.0f} s (alternating)")
    finally:
        ours.stop()
        theirs.stop()


if __name__ == "__main__":
    main()
