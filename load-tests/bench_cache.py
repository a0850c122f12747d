"""Cache benchmark: cached tile throughput with wrk (64 clients), and 2 workers vs 1 sharing Redis.

Builds (or reuses) an embedded sample store with the sample rasters, starts a throwaway
redis-server on loopback, issues an API key, and seeds the base map (levels 12-15 around the county
centre) and the imagery (12-16) into Redis with ``onemap seed``. Then ``onemap serve`` runs with 2
workers and with 1 worker on the same Redis; each is warmed for a few seconds (every worker fills its
in-process cache from Redis) and driven by wrk; medians of ``--runs`` runs. ``--map-pan`` adds the
locust map-pan scenario (``locustfile.py``) against 2 workers: hit ratio after warm-up, req/s, p99,
errors. locust comes from a virtualenv outside the repository (``--locust-venv``):

    python -m venv /tmp/locust-venv && /tmp/locust-venv/bin/pip install locust

    python load-tests/bench_cache.py                      # sample at --scale 20000 in a temp dir
    python load-tests/bench_cache.py --data-dir data      # an existing store (onemap sample)
    python load-tests/bench_cache.py --map-pan            # locust from /tmp/locust-venv, 90 s
    python load-tests/bench_cache.py --postgis --map-pan  # tiles rendered by a throwaway PostGIS
    python load-tests/bench_cache.py --database-url URL   # a PostGIS already loaded (onemap sample)
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import morecantile
from harness import (
    REPO,
    Target,
    api_key,
    database,
    free_port,
    get,
    measure,
    report,
    start_onemap,
    stop_process,
    wrk,
)

AREA = "121.47,29.78,121.63,29.92"  # the county town and surroundings (as in locustfile.py)
SECRET = "bench-secret"


def start_redis(port: int) -> subprocess.Popen:
    """A redis-server on loopback, no persistence, stopped at exit."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    atexit.register(stop_process, proc)
    for _ in range(100):
        out = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False)
        if out.stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    sys.exit("redis-server did not start")


def tile_paths(count: int) -> list[str]:
    """``count`` base map tiles spread over the seeded area, levels 12-15."""
    tms = morecantile.tms.get("WebMercatorQuad")
    w, s, e, n = (float(v) for v in AREA.split(","))
    tiles = list(tms.tiles(w, s, e, n, [12, 13, 14, 15]))
    step = max(1, len(tiles) // count)
    return [f"/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}" for t in tiles[::step]][:count]


def seed_redis(env: dict, data_dir: Path, key: str | None, redis_url: str,
               layers: tuple[tuple[str, str], ...] = (("basemap", "12-15"), ("imagery", "12-16"))) -> None:
    """Render the base map (levels 12-15) and the imagery (12-16) of the area people look at into
    Redis through the tile route (``onemap seed``): what a deployment does before opening. Without
    ``key``, for anonymous callers."""
    for collections, zooms in layers:
        cmd = [sys.executable, "-m", "server.cli", "seed", "--collections", collections, "--zooms", zooms,
               "--bbox", AREA, "--concurrency", "2", "--data-dir", str(data_dir), "--redis-url", redis_url,
               *(["--api-key", key] if key else [])]
        subprocess.run(cmd, env=env, cwd=REPO, check=True, timeout=3600)


def check_hits(base: str, paths: list[str]) -> None:
    """Every path answers 200/204 from a cache before measuring."""
    for p in paths[:20]:
        status, headers, _ = get(base + p, timeout=30)
        if status not in (200, 204) or not headers.get("x-cache", "").startswith("hit"):
            sys.exit(f"{p}: {status} x-cache={headers.get('x-cache')}")


def prepare(args: argparse.Namespace) -> tuple[Path, str, str, dict]:
    """The data directory (sample store and rasters), a running Redis, an API key, the server environment."""
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-cache-"))
    database_url = None
    if args.postgis or args.database_url:
        database_url = database(args.database_url, args.scale, skip_load=bool(args.database_url))
    elif not (data_dir / "onemap.gpkg").exists():
        from server.sample import build_sample
        from server.stores import GPKG_NAME
        from server.stores.geopackage import GeoPackageStore

        print(f"building the sample ({args.scale:,} parcels) in {data_dir} ...", flush=True)
        build_sample(args.scale, GeoPackageStore(data_dir / GPKG_NAME))
    if not (data_dir / "rasters").exists():
        from server.raster.sample import write_sample_rasters

        print("writing the sample rasters ...", flush=True)
        write_sample_rasters(data_dir, scale=2)
    redis_port = free_port()
    start_redis(redis_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    env.update(ONEMAP_DATA_DIR=str(data_dir), ONEMAP_REDIS_URL=redis_url, ONEMAP_CACHE_SECRET=SECRET,
               ONEMAP_CACHE_DEBUG_HEADER="true")  # X-Cache tells the figures which level answered
    if database_url:
        env["ONEMAP_DATABASE_URL"] = database_url
    return data_dir, redis_url, api_key(database_url, data_dir, name="bench-cache"), env


def throughput(args: argparse.Namespace, env: dict, key: str) -> None:
    """Cached tile req/s and latency with wrk, for each worker count."""
    paths = [f"{p}?api_key={key}" for p in tile_paths(args.tiles)]
    results = {}
    for workers in (int(w) for w in args.workers.split(",")):
        server = start_onemap(f"onemap-cache-{workers}w", workers, env)
        name = f"{workers} worker{'s' if workers > 1 else ''} + Redis"
        wrk(server.base, paths, args.clients, 5)  # warm-up: each worker copies the entries from Redis
        check_hits(server.base, paths)
        results.update(measure({name: Target(server, paths)}, args.clients, args.seconds, args.runs, warmup=0))
        print(f"{name}: {results[name].rps:.0f} req/s, p99 {results[name].p99_ms:.1f} ms", flush=True)
        server.stop()
    report(results, baseline=next(iter(results)),
           title=f"cached base map tiles (MVT, identity), {len(paths)} distinct tiles, {args.clients} clients, "
                 f"median of {args.runs} x {args.seconds} s")


def map_pan(args: argparse.Namespace, env: dict, key: str) -> None:
    """The locust map-pan scenario against 2 workers sharing Redis: hit ratio, req/s, p99, errors."""
    locust = Path(args.locust_venv) / "bin" / "locust"
    if not locust.exists():
        sys.exit(f"no locust in {args.locust_venv}: python -m venv {args.locust_venv} && "
                 f"{args.locust_venv}/bin/pip install locust")
    server = start_onemap("onemap-map-pan", 2, env)
    work = Path(tempfile.mkdtemp(prefix="map-pan-"))
    locust_env = {**env, "ONEMAP_BENCH_KEY": key, "MAP_PAN_WARMUP_S": str(args.warmup),
                  "MAP_PAN_RESULT": str(work / "hits.json")}
    cmd = [str(locust), "-f", str(REPO / "load-tests" / "locustfile.py"),
           "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration}s",
           "--host", server.base, "--csv", str(work / "run"), "--only-summary"]
    subprocess.run(cmd, env=locust_env, cwd=REPO, timeout=args.duration + 120, check=False)
    server.stop()
    hits = json.loads((work / "hits.json").read_text())
    with open(work / "run_stats.csv") as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    print(f"\nmap-pan, {args.users} users, {args.duration} s (hit ratio after {args.warmup} s): "
          f"hit ratio {hits['ratio']:.1%}, {float(total['Requests/s']):.0f} req/s, "
          f"p50 {total['50%']} ms, p99 {total['99%']} ms, {total['Request Count']} requests, "
          f"{total['Failure Count']} errors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", help="an existing data directory (default: build the sample)")
    ap.add_argument("--scale", type=int, default=20_000)
    ap.add_argument("--tiles", type=int, default=200, help="distinct tiles in the URL list")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="2,1", help="worker counts to compare, first is the baseline")
    ap.add_argument("--postgis", action="store_true", help="serve a throwaway PostGIS loaded with the sample")
    ap.add_argument("--database-url", help="serve this PostGIS (already loaded) instead of the embedded store")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--map-pan", action="store_true", help="also run the locust map-pan scenario")
    ap.add_argument("--locust-venv", default="/tmp/locust-venv")
    ap.add_argument("--users", type=int, default=12)
    ap.add_argument("--duration", type=int, default=90, help="map-pan seconds")
    ap.add_argument("--warmup", type=int, default=30, help="map-pan seconds not counted in the hit ratio")
    args = ap.parse_args()

    data_dir, redis_url, key, env = prepare(args)
    print("seeding the base map and imagery into Redis ...", flush=True)
    seed_redis(env, data_dir, key, redis_url)
    if not args.skip_throughput:
        throughput(args, env, key)
    if args.map_pan:
        map_pan(args, env, key)


if __name__ == "__main__":
    main()
