"""Uncached vector-tile throughput: OneMap against tipg, same PostGIS table, same run.

    python load-tests/bench_tiles.py [--database-url URL --skip-load] [--parcels 200000] [--seconds 15]

What it does:
1. Uses the given database, or starts a throwaway PostGIS cluster (``tests/support/pg.py``) and loads
   the sample county with ``--parcels`` parcels (``server.sample.build_sample``), overviews included.
   A database loaded once with ``python -m server.cli sample --scale 200000 --database-url URL
   --no-rasters`` serves every benchmark: pass ``--database-url URL --skip-load``.
2. Starts OneMap and tipg (from its own virtualenv outside the repository, ``--tipg-venv``; create it
   with ``python -m venv /tmp/peers && /tmp/peers/bin/pip install tipg uvicorn``), both on loopback
   with ``--workers`` uvicorn workers, each alone while measured.
3. For each zoom (14, 12, 10) takes the WebMercatorQuad tiles over the parcels' extent, and drives the
   server with wrk (``--clients`` keep-alive connections) for ``--seconds`` split into ``--rounds`` runs,
   over the same shuffled tile list for both servers. Neither server caches tiles; each request builds
   a tile. OneMap also serves the base map (every vector layer) at 10, which tipg has no counterpart for.
4. Prints, per zoom and server: median req/s over the runs, p50/p99 latency, mean tile size, server +
   database CPU per request, and the ratios OneMap/tipg.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import morecantile
import psycopg
from harness import (
    UNCACHED,
    Result,
    Server,
    Target,
    api_key,
    database,
    measure,
    report,
    start_onemap,
    start_peer,
)

ZOOMS = (14, 12, 10)
TABLE = "parcels"


def tile_paths(url: str, zoom: int, limit: int, seed: int = 7) -> list[tuple[int, int, int]]:
    """Tiles over the parcels' extent at ``zoom`` (those with data), shuffled."""
    with psycopg.connect(url) as conn:
        xmin, ymin, xmax, ymax = conn.execute(
            f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e FROM {TABLE}) s"
        ).fetchone()
        tms = morecantile.tms.get("WebMercatorQuad")
        keep = []
        for t in tms.tiles(xmin, ymin, xmax, ymax, [zoom]):
            b = tms.bounds(t)
            hit = conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4490))",
                [b.left, b.bottom, b.right, b.top],
            ).fetchone()[0]
            if hit:
                keep.append((t.z, t.x, t.y))
    random.Random(seed).shuffle(keep)
    return keep[:limit]


def run_cases(server: Server, cases: dict[str, list[str]], headers: dict | None, url: str, args) -> dict[str, Result]:
    """Each case (a list of tile paths) measured in turn on ``server``, which is stopped afterwards."""
    out = {}
    try:
        for case, paths in cases.items():
            target = Target(server, paths, headers, url)
            out[case] = measure({case: target}, args.clients, args.seconds / args.rounds, args.rounds, warmup=1)[case]
            empty = " (empty tiles: nothing drawn at this level)" if out[case].bytes_per_req < 512 else ""
            print(f"  {server.name} {case}: {out[case].rps:.1f} req/s{empty}", flush=True)
    finally:
        server.stop()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an existing PostGIS database (default: a throwaway cluster)")
    parser.add_argument("--parcels", type=int, default=200_000)
    parser.add_argument("--skip-load", action="store_true", help="the database already holds the sample")
    parser.add_argument("--tipg-venv", "--peers", type=Path, default=Path("/tmp/peers"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per server and zoom")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, the same for both servers")
    parser.add_argument("--tiles", type=int, default=400, help="distinct tiles per zoom")
    parser.add_argument("--zooms", default=",".join(map(str, ZOOMS)))
    args = parser.parse_args(argv)

    url = database(args.database_url, args.parcels, args.skip_load)
    tiles = {z: tile_paths(url, z, args.tiles) for z in (int(z) for z in args.zooms.split(","))}
    print("tiles per zoom:", {z: len(t) for z, t in tiles.items()}, flush=True)
    headers = {"X-API-Key": api_key(url, name="bench-tiles")}
    ours = {f"z{z}": [f"/collections/{TABLE}/tiles/WebMercatorQuad/{z}/{y}/{x}" for z, x, y in t]
            for z, t in tiles.items()}
    if 10 in tiles:
        ours["base map z10"] = [f"/tiles/WebMercatorQuad/10/{y}/{x}" for _, x, y in tiles[10]]
    theirs = {f"z{z}": [f"/collections/public.{TABLE}/tiles/WebMercatorQuad/{z}/{x}/{y}" for z, x, y in t]
              for z, t in tiles.items()}
    server = start_onemap("onemap", args.workers, {"ONEMAP_DATABASE_URL": url, **UNCACHED}, headers=headers)
    mine = run_cases(server, ours, headers, url, args)
    server = start_peer("tipg", args.tipg_venv, "tipg.main:app", args.workers,
                        {"DATABASE_URL": url, "TIPG_DB_SCHEMAS": '["public"]', "TIPG_DB_TABLES": f'["public.{TABLE}"]'},
                        ready="/conformance")
    peer = run_cases(server, theirs, None, url, args)
    for case, result in mine.items():
        rows = {f"OneMap {case}": result, **({f"tipg {case}": peer[case]} if case in peer else {})}
        report(rows, baseline=f"OneMap {case}",
               title=f"{TABLE} MVT {case}, {len(ours[case])} distinct tiles, {args.clients} clients, "
                     f"{args.workers} worker(s) each, median of {args.rounds} x {args.seconds / args.rounds:.0f} s")


if __name__ == "__main__":
    main()
