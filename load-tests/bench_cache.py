"""Cache benchmark: cached tile throughput with wrk (64 clients), and 2 workers vs 1 sharing Redis.

Builds (or reuses) an embedded sample store with the sample rasters, starts a throwaway
redis-server on loopback, issues an API key, and seeds the base map (levels 12-15 around the county
centre) into Redis with ``onemap seed``. Then ``onemap serve`` runs with 2 workers and with 1
worker on the same Redis; each is warmed for a few seconds (every worker fills its in-process cache
from Redis) and driven by wrk; medians of ``--runs`` runs. ``--map-pan`` adds the locust map-pan
scenario (``locustfile.py``) against 2 workers: hit ratio after warm-up, req/s, p99, errors.

    python load-tests/bench_cache.py                      # sample at --scale 20000 in a temp dir
    python load-tests/bench_cache.py --data-dir data      # an existing store (onemap sample)
    python load-tests/bench_cache.py --map-pan            # locust from /tmp/locust-venv
    python load-tests/bench_cache.py --postgis --map-pan  # tiles rendered by a throwaway PostGIS
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
import urllib.request
from pathlib import Path

import morecantile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import REPO, free_port, median_of, report, start_server, stop_server, wrk  # noqa: E402

AREA = "121.47,29.78,121.63,29.92"  # the county town and surroundings (as in locustfile.py)
SECRET = "bench-secret"


def start_redis(port: int) -> subprocess.Popen:
    """A redis-server on loopback, no persistence, stopped at exit."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    atexit.register(stop_server, proc)
    for _ in range(100):
        out = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
        if out.stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    sys.exit("redis-server did not start")


def issue_key(data_dir: Path, database_url: str | None = None) -> str:
    """An all-collections API key in the store's admin tables."""
    from server.policy.admin import admin_store
    from server.policy.keys import KeyRecord, new_key
    from server.settings import Settings

    store = admin_store(Settings(data_dir=data_dir, database_url=database_url))
    try:
        store.setup()
        key_id, key, hashed = new_key()
        store.add_key(KeyRecord(id=key_id, name="bench", secret_hash=hashed))
    finally:
        store.close()
    return key


def tile_paths(count: int) -> list[str]:
    """``count`` base map tiles spread over the seeded area, levels 12-15."""
    tms = morecantile.tms.get("WebMercatorQuad")
    w, s, e, n = (float(v) for v in AREA.split(","))
    tiles = list(tms.tiles(w, s, e, n, [12, 13, 14, 15]))
    step = max(1, len(tiles) // count)
    return [f"/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}" for t in tiles[::step]][:count]


def seed_redis(env: dict, data_dir: Path, key: str, redis_url: str) -> None:
    """Render the base map (levels 12-15) and the imagery (12-16) of the area people look at into
    Redis through the tile route (``onemap seed``): what a deployment does before opening."""
    for collections, zooms in (("basemap", "12-15"), ("imagery", "12-16")):
        cmd = [sys.executable, "-m", "server.cli", "seed", "--collections", collections, "--zooms", zooms,
               "--bbox", AREA, "--concurrency", "2", "--data-dir", str(data_dir), "--redis-url", redis_url,
               "--api-key", key]
        subprocess.run(cmd, env=env, cwd=REPO, check=True, timeout=3600)


def check_hits(base: str, paths: list[str]) -> None:
    """Every path answers 200/204 from a cache before measuring."""
    for p in paths[:20]:
        with urllib.request.urlopen(base + p, timeout=30) as r:
            if r.status not in (200, 204) or not r.headers.get("x-cache", "").startswith("hit"):
                sys.exit(f"{p}: {r.status} x-cache={r.headers.get('x-cache')}")


def prepare(args: argparse.Namespace) -> tuple[Path, str, str, dict]:
    """The data directory (sample store and rasters), a running Redis, an API key, the server environment."""
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-cache-"))
    if not (data_dir / "onemap.gpkg").exists():
        from server.sample import build_sample

        print(f"building the sample ({args.scale:,} parcels) in {data_dir} ...", flush=True)
        build_sample(args.scale, data_dir)
    if not (data_dir / "rasters").exists():
        from server.raster.sample import write_sample_rasters

        print("writing the sample rasters ...", flush=True)
        write_sample_rasters(data_dir, scale=2)
    database_url = args.database_url
    if args.postgis and not database_url:
        from server.sample import build_sample
        from tests.support.pg import start_cluster

        cluster = start_cluster()
        atexit.register(cluster.stop)
        database_url = cluster.url
        print(f"loading the sample ({args.scale:,} parcels) into a throwaway PostGIS ...", flush=True)
        build_sample(args.scale, Path(tempfile.mkdtemp()), database_url)
    redis_port = free_port()
    start_redis(redis_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    env.update(ONEMAP_DATA_DIR=str(data_dir), ONEMAP_REDIS_URL=redis_url, ONEMAP_CACHE_SECRET=SECRET)
    if database_url:
        env["ONEMAP_DATABASE_URL"] = database_url
    key = issue_key(data_dir, database_url)
    return data_dir, redis_url, key, env


def serve(workers: int, env: dict) -> tuple[subprocess.Popen, str]:
    """``onemap serve`` with this many workers; the process and its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "server.cli", "serve", "--workers", str(workers), "--port", str(port),
           "--no-access-log", "--log-level", "warning"]
    return start_server(f"onemap-cache-{workers}w", cmd, port, env, ready="/conformance"), f"http://127.0.0.1:{port}"


def measure(base: str, paths: list[str], args: argparse.Namespace):
    """One wrk run; a run that yields no latency figures (a stalled server) is retried once."""
    try:
        return wrk(base, paths, args.clients, args.seconds)
    except AttributeError:
        print("wrk reported no latency figures; running again", flush=True)
        return wrk(base, paths, args.clients, args.seconds)


def throughput(args: argparse.Namespace, env: dict, key: str) -> None:
    """Cached tile req/s and latency with wrk, for each worker count."""
    paths = [f"{p}?api_key={key}" for p in tile_paths(args.tiles)]
    results = {}
    for workers in (int(w) for w in args.workers.split(",")):
        proc, base = serve(workers, env)
        wrk(base, paths, args.clients, 5)  # warm-up: each worker copies the entries from Redis
        check_hits(base, paths)
        name = f"{workers} worker{'s' if workers > 1 else ''} + Redis"
        results[name] = median_of([measure(base, paths, args) for _ in range(args.runs)])
        print(f"{name}: {results[name].rps:.0f} req/s, p99 {results[name].p99_ms:.1f} ms", flush=True)
        stop_server(proc)
    print(f"\ncached base map tiles (MVT, identity), {len(paths)} distinct tiles, {args.clients} clients, "
          f"median of {args.runs} x {args.seconds} s")
    report(results, baseline=list(results)[0])


def map_pan(args: argparse.Namespace, env: dict, key: str) -> None:
    """The locust map-pan scenario against 2 workers sharing Redis: hit ratio, req/s, p99, errors."""
    proc, base = serve(2, env)
    work = Path(tempfile.mkdtemp(prefix="map-pan-"))
    locust_env = {**env, "ONEMAP_BENCH_KEY": key, "MAP_PAN_WARMUP_S": str(args.warmup),
                  "MAP_PAN_RESULT": str(work / "hits.json")}
    cmd = [str(Path(args.locust_venv) / "bin" / "locust"), "-f", str(REPO / "load-tests" / "locustfile.py"),
           "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration}s",
           "--host", base, "--csv", str(work / "run"), "--only-summary"]
    subprocess.run(cmd, env=locust_env, cwd=REPO, timeout=args.duration + 120)
    stop_server(proc)
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
    ap.add_argument("--duration", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=40)
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
