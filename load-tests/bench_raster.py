"""Raster tile throughput: OneMap against titiler on the same COGs, in the same run.

Scenarios (16 concurrent clients, no response cache on either side):
  * imagery JPEG, WebMercatorQuad level 14   (titiler: /cog/tiles/WebMercatorQuad/14/x/y.jpg?url=...)
  * imagery PNG,  WebMercatorQuad level 12   (titiler: .png)
  * DEM terrain-RGB PNG, level 12            (titiler: .png?algorithm=terrainrgb)

Both servers run under uvicorn with ``--workers`` workers (default one) on loopback. OneMap runs
with its response cache off (``ONEMAP_CACHE_MEMORY_BYTES=0``, no fast path) but with everything else
it ships (API-key check, audit, ETags). titiler runs from a separate virtualenv outside the
repository, given with ``--peers-venv``:

    python -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install titiler.application uvicorn
    python load-tests/bench_raster.py --peers-venv /tmp/peers-venv [--data-dir DIR]

Each scenario first checks that both servers answer every tile with an image, then alternates the two
servers for ``--rounds`` wrk runs of ``--seconds`` seconds after a warm-up; the report gives the
median req/s, p50/p99 latency, bytes and CPU per request, and the ratios OneMap / titiler.

Without ``--data-dir`` the sample rasters (full size, each acquisition one sheet: ``onemap sample
--sheets 1``) and a small vector store are written to a temporary directory first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import morecantile
from harness import (
    UNCACHED,
    Server,
    Target,
    api_key,
    get,
    measure,
    report,
    start_onemap,
    start_peer,
)

from server.raster.sample import DEM_ASSET, IMAGERY_ASSETS, write_sample_rasters

WMQ = morecantile.tms.get("WebMercatorQuad")
IMAGERY_BBOX = (121.5088, 29.8407, 121.5527, 29.8787)
COUNTY_BBOX = (121.40, 29.75, 121.70, 29.95)
GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


@dataclass
class Scenario:
    name: str
    ours: list[str]
    theirs: list[str]


def _tiles(bbox, z: int) -> list[morecantile.Tile]:
    return list(WMQ.tiles(*bbox, [z]))


def scenarios(data_dir: Path) -> list[Scenario]:
    """The three scenarios, as paths on each server (every tile of the footprint, round robin)."""
    image = data_dir / IMAGERY_ASSETS[-1][1] / "r0c0.tif"  # one sheet: the whole acquisition
    dem = data_dir / DEM_ASSET[1]
    z14, z12, dem12 = _tiles(IMAGERY_BBOX, 14), _tiles(IMAGERY_BBOX, 12), _tiles(COUNTY_BBOX, 12)
    ours = "/collections/{c}/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}?{q}"
    cog = "/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.{ext}?url={url}{q}"
    return [
        Scenario("imagery JPEG z14", [ours.format(c="imagery", t=t, q="f=jpeg") for t in z14],
                 [cog.format(t=t, ext="jpg", url=image, q="") for t in z14]),
        Scenario("imagery PNG z12", [ours.format(c="imagery", t=t, q="f=png") for t in z12],
                 [cog.format(t=t, ext="png", url=image, q="") for t in z12]),
        Scenario("terrain-RGB z12", [ours.format(c="dem", t=t, q="render=terrain-rgb") for t in dem12],
                 [cog.format(t=t, ext="png", url=dem, q="&algorithm=terrainrgb") for t in dem12]),
    ]


def prepare_data(data_dir: Path | None) -> Path:
    """The data directory: the given one, or a new one with the full-size sample rasters."""
    if data_dir is not None:
        return data_dir
    target = Path(tempfile.mkdtemp(prefix="onemap-bench-"))
    print(f"writing sample data to {target} ...", flush=True)
    write_sample_rasters(target, sheets=1)
    from server.sample import build_sample
    from server.stores import GPKG_NAME
    from server.stores.geopackage import GeoPackageStore

    build_sample(3000, GeoPackageStore(target / GPKG_NAME))
    return target


def check_outputs(server: Server, paths: list[str], headers: dict | None) -> None:
    """The server answers every tile with an image, not from a response cache."""
    for path in paths:
        status, hdrs, body = get(server.base + path, headers)
        if status != 200 or not hdrs.get("content-type", "").startswith("image/"):
            sys.exit(f"{server.name}: {path} answered {status}: {body[:200]!r}")
        if hdrs.get("x-cache", "").startswith("hit"):
            sys.exit(f"{server.name}: {path} came from a response cache")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/peers-venv"),
                        help="virtualenv with titiler.application and uvicorn installed")
    parser.add_argument("--data-dir", type=Path, default=None, help="data dir with the sample rasters and store")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, the same for both servers")
    parser.add_argument("--only", default=None, help="run the scenarios whose name contains this text")
    args = parser.parse_args(argv)
    data_dir = prepare_data(args.data_dir)
    headers = {"X-API-Key": api_key(data_dir=data_dir, name="bench-raster")}
    ours = start_onemap("onemap", args.workers, {"ONEMAP_DATA_DIR": str(data_dir), **UNCACHED, **GDAL_ENV},
                        ready="/collections/imagery", headers=headers)
    theirs = start_peer("titiler", args.peers_venv, "titiler.application.main:app", args.workers, GDAL_ENV,
                        ready="/healthz")
    for sc in scenarios(data_dir):
        if args.only and args.only not in sc.name:
            continue
        check_outputs(ours, sc.ours, headers)
        check_outputs(theirs, sc.theirs, None)
        targets = {"OneMap": Target(ours, sc.ours, headers), "titiler": Target(theirs, sc.theirs)}
        results = measure(targets, args.clients, args.seconds, args.rounds, warmup=2)
        report(results, baseline="OneMap",
               title=f"{sc.name}, {len(sc.ours)} distinct tiles, {args.clients} clients, {args.workers} worker(s) "
                     f"each, median of {args.rounds} x {args.seconds:.0f} s (servers alternating)")
    ours.stop()
    theirs.stop()


if __name__ == "__main__":
    main()
