"""Cached hit path against this machine's ceiling: OneMap answering cache hits with everything on, side by
side with a bare ASGI app (``bare_asgi.py``) that sends the same bytes from the same server (uvicorn with
the same loop, parser and worker count), in one run, so every run prints the ratio.

Scenarios, each driven by wrk at ``--clients`` (64) against ``--workers`` (2):

- keyed identity / gzip / br: cached base-map tiles for a key with an IP range, a validity window, a
  rate and a daily quota (all checked on every request), an audit row per request, ETag and Vary; the
  bare app sends a tile of the mean size in the same encoding;
- keyed 304: the same caller revalidating with ``If-None-Match`` (what mobile clients on poor networks
  send most); the bare app answers with an empty body;
- anonymous: the internet edition (a release of the sample, ``onemap release`` + ``onemap import``)
  answering anonymous callers (``--skip-anonymous`` leaves it out);
- workers: OneMap and the bare app with 1 worker, to print how far the second worker scales each.

It builds what it needs in ``--work-dir`` (kept between runs): the sample at ``--scale``, the internet
release, a throwaway Redis on loopback (or ``--redis-url``, kept between runs with its entries), the key,
and the seeded base map (levels 12-15 around the county town, ``onemap seed``). Every run is bounded:
``--runs`` x ``--seconds`` per target, targets taking turns.

    python load-tests/bench_hitpath.py                      # all scenarios, medians of 3 x 10 s
    python load-tests/bench_hitpath.py --runs 1 --seconds 5 # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_cache import AREA, SECRET, check_hits, seed_redis, start_redis, tile_paths
from harness import REPO, Result, Server, Target, free_port, get, measure, report, start_onemap, start_server

LOAD_TESTS = Path(__file__).resolve().parent


def build(work: Path, scale: int) -> tuple[Path, Path]:
    """The sample store and rasters (classified) and its internet-edition release, built once in ``work``."""
    data, internet = work / "data", work / "internet"
    cli = [sys.executable, "-m", "server.cli"]
    if not (data / "onemap.gpkg").exists():
        print(f"building the sample ({scale:,} parcels) in {data} ...", flush=True)
        subprocess.run([*cli, "sample", "--scale", str(scale), "--data-dir", str(data)], cwd=REPO, check=True,
                       timeout=3600)
    if not (internet / "onemap.gpkg").exists():
        print("building the internet-edition release ...", flush=True)
        bundle = work / "internet-bundle"
        env = {**os.environ, "ONEMAP_DATA_DIR": str(data)}
        subprocess.run([*cli, "release", "--edition", "internet", "--out", str(bundle)], env=env, cwd=REPO,
                       check=True, timeout=3600)
        subprocess.run([*cli, "import", str(bundle), "--edition", "internet", "--data-dir", str(internet)],
                       env=env, cwd=REPO, check=True, timeout=3600)
    return data, internet


def full_key(data: Path) -> str:
    """A key with every check a key can carry: loopback range, a validity window, a rate and a daily quota
    (high enough never to refuse the benchmark, so each is checked and passed)."""
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "keys", "--data-dir", str(data), "create", "--name", "bench-hitpath",
         "--cidr", "127.0.0.0/8", "--not-before", "2020-01-01T00:00:00Z", "--not-after", "2100-01-01T00:00:00Z",
         "--rate", "1000000/s", "--daily-quota", "1000000000"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=120).stdout
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("api key"))


def start_bare(workers: int, body: bytes, content_type: str) -> Server:
    """The bare ASGI reference sending ``body``, with ``workers`` workers."""
    fd, path = tempfile.mkstemp(prefix="bare-body-")
    os.write(fd, body)
    os.close(fd)
    env = {"BARE_BODY": path, "BARE_TYPE": content_type, "PYTHONPATH": str(LOAD_TESTS)}
    cmd = [sys.executable, "-m", "uvicorn", "bare_asgi:app", "--host", "127.0.0.1", "--port", "{port}",
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    return start_server(f"bare-{workers}w", cmd, env)


def typical_body(base: str, paths: list[str], encoding: str | None) -> tuple[bytes, str, dict[str, str]]:
    """The response over ``paths`` in ``encoding`` nearest their mean size (what the bare app sends, so
    both move the same bytes per request), its content type, and each path's ETag."""
    headers = {"Accept-Encoding": encoding} if encoding else {"Accept-Encoding": "identity"}
    bodies, etags, kind = [], {}, "application/octet-stream"
    for path in paths:
        status, got, body = get(base + path, headers)
        if status == 200:
            bodies.append(body)
            etags[path] = got.get("etag", "")
            kind = got.get("content-type", kind)
    mean = statistics.fmean(len(b) for b in bodies)
    return min(bodies, key=lambda b: abs(len(b) - mean)), kind, etags


def side_by_side(name: str, ours: Server, bare: Server, paths: list[str], headers: dict | None,
                 args: argparse.Namespace, workers: int | None = None) -> dict[str, Result]:
    """One scenario: OneMap and the bare app, taking turns; prints the table and the ratio."""
    targets = {f"onemap {name}": Target(ours, paths, headers),
               f"bare ASGI {name}": Target(bare, [p.split("\t")[0] for p in paths], headers)}
    results = measure(targets, args.clients, args.seconds, args.runs)
    report(results, title=f"{name}: {args.clients} clients, {workers or args.workers} workers, median of {args.runs} x "
                          f"{args.seconds} s")
    mine, theirs = results[f"onemap {name}"], results[f"bare ASGI {name}"]
    print(f"  OneMap reaches {mine.rps / theirs.rps:.0%} of the bare ASGI req/s (p99 {mine.p99_ms:.1f} ms vs "
          f"{theirs.p99_ms:.1f} ms, CPU {mine.cpu_ms:.3f} vs {theirs.cpu_ms:.3f} ms/request)", flush=True)
    return results


def keyed(args: argparse.Namespace, env: dict, key: str) -> dict[str, Result]:
    """The keyed scenarios (identity, gzip, br, 304) against ``--workers`` workers."""
    paths = [f"{p}?api_key={key}" for p in tile_paths(args.tiles)]
    ours = start_onemap(f"onemap-hitpath-{args.workers}w", args.workers, env)
    found = {}
    try:
        for encoding in ("identity", "gzip", "br"):
            body, kind, etags = typical_body(ours.base, paths, encoding)
            check_hits(ours.base, [p for p in paths if p in etags])
            bare = start_bare(args.workers, body, kind)
            headers = {"Accept-Encoding": encoding}
            found |= side_by_side(f"keyed {encoding}", ours, bare, [p for p in paths if p in etags], headers, args)
            if encoding == "identity":
                revalidate = [f"{p}\t{etags[p]}" for p in paths if p in etags]
                empty = start_bare(args.workers, b"", kind)
                found |= side_by_side("keyed 304", ours, empty, revalidate, headers, args)
                empty.stop()
            bare.stop()
    finally:
        ours.stop()
    return found


def anonymous(args: argparse.Namespace, env: dict, internet: Path, redis_url: str) -> dict[str, Result]:
    """Anonymous internet-edition hits against ``--workers`` workers."""
    env = {**env, "ONEMAP_EDITION": "internet", "ONEMAP_DATA_DIR": str(internet)}
    print("seeding the internet edition's base map for anonymous callers ...", flush=True)
    seed_redis(env, internet, None, redis_url, (("basemap", "12-15"),))
    paths = tile_paths(args.tiles)
    ours = start_onemap(f"onemap-hitpath-internet-{args.workers}w", args.workers, env)
    try:
        body, kind, etags = typical_body(ours.base, paths, "identity")
        check_hits(ours.base, [p for p in paths if p in etags])
        bare = start_bare(args.workers, body, kind)
        found = side_by_side("anonymous identity", ours, bare, [p for p in paths if p in etags],
                             {"Accept-Encoding": "identity"}, args)
        bare.stop()
    finally:
        ours.stop()
    return found


def scaling(args: argparse.Namespace, env: dict, key: str, two: dict[str, Result]) -> None:
    """OneMap and the bare app with one worker against the two-worker figures of the identity scenario."""
    paths = [f"{p}?api_key={key}" for p in tile_paths(args.tiles)]
    ours = start_onemap("onemap-hitpath-1w", 1, env)
    try:
        body, kind, etags = typical_body(ours.base, paths, "identity")
        bare = start_bare(1, body, kind)
        one = side_by_side("keyed identity, 1 worker", ours, bare, [p for p in paths if p in etags],
                           {"Accept-Encoding": "identity"}, args, workers=1)
        bare.stop()
    finally:
        ours.stop()
    for who in ("onemap", "bare ASGI"):
        ratio = two[f"{who} keyed identity"].rps / one[f"{who} keyed identity, 1 worker"].rps
        print(f"  {who}: {args.workers} workers give {ratio:.2f}x one worker's req/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "onemap-bench-hitpath"))
    ap.add_argument("--scale", type=int, default=20_000)
    ap.add_argument("--tiles", type=int, default=200, help="distinct tiles in the URL list")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-anonymous", action="store_true")
    ap.add_argument("--redis-url", help="a Redis kept between runs (seeded entries are reused), not a throwaway one")
    args = ap.parse_args()

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    data, internet = build(work, args.scale)
    redis_url = args.redis_url or f"redis://127.0.0.1:{free_port()}/0"
    if not args.redis_url:
        start_redis(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    key = full_key(data)
    env = {"ONEMAP_DATA_DIR": str(data), "ONEMAP_REDIS_URL": redis_url, "ONEMAP_CACHE_SECRET": SECRET,
           "ONEMAP_CACHE_DEBUG_HEADER": "true", "ONEMAP_REDIS_TIMEOUT_S": "1"}
    print(f"seeding the base map ({AREA}, levels 12-15) for the key ...", flush=True)
    seed_redis(env, data, key, redis_url, (("basemap", "12-15"),))
    two = keyed(args, env, key)
    if not args.skip_anonymous:
        anonymous(args, env, internet, redis_url)
    scaling(args, env, key, two)


if __name__ == "__main__":
    main()
