"""Scale benchmark: cost against data size, and two replicas behind nginx against one.

1. For each ``--database LABEL=URL`` (the sample county loaded the same way at several scales, e.g.
   200,000, 1,000,000 and 5,000,000 parcels: the county keeps its layout, only the density grows),
   OneMap without any cache (``harness.UNCACHED``) serves items pages over the same ~1 km boxes and
   parcels vector tiles at z14 and z16 over the same tiles (chosen on the first database) at
   ``--clients``; the scales take turns run by run. Per scale: req/s, p50, p99, the mean response size,
   server + PostgreSQL CPU per request and per KB sent, and each scale's ratio to the first one.
2. On ``--replicas-on LABEL``: ``onemap serve`` replicas with ``--workers-per-replica`` workers each,
   sharing one Redis, behind nginx (Debian's ``nginx-light``); one replica behind nginx against two,
   taking turns run by run, for cached tiles (warmed by a first pass, X-Cache checked), uncached tiles
   and uncached items ("uncached" there: no in-process cache and Redis entries that lapse after 1 s,
   so every request misses while limits and quotas still go through Redis). Prints req/s, p99, the
   ratio 2 vs 1, the cache outcomes (``/metrics``) and where the CPU went (OneMap processes, PostgreSQL
   backends, nginx, the rest of the machine) against the machine's cores, and says what limits the
   throughput.

    python load-tests/bench_scale.py --database 200k=postgresql://localhost/onemap_200k \\
        --database 1m=postgresql://localhost/onemap_1m --database 5m=postgresql://localhost/onemap_5m \\
        --replicas-on 1m --seconds 10 --runs 3

Every database must already hold the sample (``python -m server.cli sample --scale N --database-url URL
--no-rasters``); nothing is written to it but an API key and the requests' audit rows. Loopback only,
bounded in time.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from bench_features import bboxes
from bench_tiles import tile_paths
from harness import (
    REPO,
    UNCACHED,
    Result,
    Server,
    Target,
    api_key,
    cpu_seconds,
    cpu_snapshot,
    database_cpu,
    get,
    measure,
    median_of,
    server_pids,
    start_onemap,
    wrk,
)

sys.path.insert(0, str(REPO))

from tests.support.failover import Nginx  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

ITEMS = "/collections/parcels/items?limit=100&bbox={}"
TILE = "/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}"


# -- part 1: cost against data size ---------------------------------------------------------------


def parse_databases(specs: list[str]) -> dict[str, str]:
    """``LABEL=URL`` pairs, in the order given (the first is the baseline)."""
    out = {}
    for spec in specs:
        label, sep, url = spec.partition("=")
        if not sep or not label or not url:
            sys.exit(f"--database {spec!r}: expected LABEL=URL")
        out[label] = url
    return out


def parcel_count(url: str) -> int:
    """Parcels in the database."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM parcels").fetchone()[0]


def scale_paths(first_url: str, args: argparse.Namespace) -> dict[str, list[str]]:
    """The same items boxes and tiles for every scale: boxes spread over the built-up county, tiles
    with parcels at each zoom (chosen on the first database), shuffled."""
    cases = {"items": [ITEMS.format(b) for b in bboxes(args.boxes)]}
    for z in (int(z) for z in args.zooms.split(",")):
        cases[f"tiles z{z}"] = [TILE.format(z=z, x=x, y=y) for z, x, y in tile_paths(first_url, z, args.tiles)]
    return cases


def print_scale_table(case: str, rows: dict[str, Result], counts: dict[str, int]) -> None:
    """One case across scales, with each scale's ratios to the first."""
    print(f"\n{case}: {'scale':<10}{'parcels':>11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'KB/resp':>9}"
          f"{'CPU ms/req':>11}{'CPU ms/KB':>10}{'errors':>7}")
    for label, r in rows.items():
        per_kb = r.cpu_ms / max(r.bytes_per_req / 1024, 1e-9)
        print(f"{'':<{len(case) + 2}}{label:<10}{counts[label]:>11,}{r.rps:>9.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
              f"{r.bytes_per_req / 1024:>9.1f}{r.cpu_ms:>11.1f}{per_kb:>10.2f}{r.errors:>7}")
    first_label, first = next(iter(rows.items()))
    for label, r in list(rows.items())[1:]:
        cost = (r.cpu_ms / r.bytes_per_req) / (first.cpu_ms / first.bytes_per_req)
        print(f"  {label} vs {first_label}: {counts[label] / counts[first_label]:.1f}x parcels, "
              f"{r.rps / first.rps:.2f}x req/s, {r.p50_ms / first.p50_ms:.2f}x p50, "
              f"{r.p99_ms / first.p99_ms:.2f}x p99, "
              f"{r.bytes_per_req / first.bytes_per_req:.2f}x bytes/resp, {r.cpu_ms / first.cpu_ms:.2f}x CPU/req, "
              f"{cost:.2f}x CPU per byte")


def data_size(dbs: dict[str, str], args: argparse.Namespace) -> None:
    """Part 1: every scale served uncached by its own OneMap, the scales taking turns run by run."""
    counts = {label: parcel_count(url) for label, url in dbs.items()}
    cases = scale_paths(next(iter(dbs.values())), args)
    print("parcels:", {k: f"{v:,}" for k, v in counts.items()}, "| distinct paths:",
          {k: len(v) for k, v in cases.items()}, flush=True)
    servers: dict[str, tuple[Server, dict]] = {}
    try:
        for label, url in dbs.items():
            headers = {"X-API-Key": api_key(url, name="bench-scale")}
            env = {"ONEMAP_DATABASE_URL": url, **UNCACHED}
            servers[label] = (start_onemap(f"scale-{label}", args.workers, env, ready=cases["items"][0],
                                           headers=headers, ready_timeout=args.start_timeout), headers)
        for case, paths in cases.items():
            targets = {label: Target(server, paths, headers, dbs[label])
                       for label, (server, headers) in servers.items()}
            rows = measure(targets, args.clients, args.seconds, args.runs, warmup=args.warmup)
            print_scale_table(case, rows, counts)
    finally:
        for server, _ in servers.values():
            server.stop()
    print(f"(uncached, {args.workers} workers per server, {args.clients} clients, median of {args.runs} x "
          f"{args.seconds} s; CPU = OneMap processes + the database's backends)")


# -- part 2: two replicas against one -------------------------------------------------------------


@dataclass
class Usage:
    """CPU seconds spent by each group of processes, and by the whole machine, over one run."""

    onemap: float = 0.0
    postgres: float = 0.0
    nginx: float = 0.0
    machine: float = 0.0
    wall: float = 0.0


@dataclass
class Setup:
    """What one side of the comparison runs: nginx in front and the replicas behind it."""

    nginx: Server
    replicas: list[Server]
    runs: list[Result] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _usage_snapshot(setup: Setup, url: str) -> tuple[float, dict[int, float], dict[int, float], dict[int, float]]:
    pids = [pid for server in setup.replicas for pid in server_pids(server)]
    return machine_busy(), cpu_seconds(pids), database_cpu(url, pids), cpu_snapshot(setup.nginx)


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def run_setup(setup: Setup, paths: list[str], headers: dict, url: str, args: argparse.Namespace) -> None:
    """One measured wrk run through the setup's nginx, with the CPU each group spent."""
    before = _usage_snapshot(setup, url)
    started = time.perf_counter()
    result = wrk(setup.nginx.base, paths, args.clients, args.seconds, headers=headers)
    wall = time.perf_counter() - started
    after = _usage_snapshot(setup, url)
    usage = Usage(_spent(before[1], after[1]), _spent(before[2], after[2]), _spent(before[3], after[3]),
                  after[0] - before[0], wall)
    result.cpu_ms = (usage.onemap + usage.postgres + usage.nginx) / max(result.requests, 1) * 1000
    setup.runs.append(result)
    setup.usage.append(usage)


def cache_outcomes(replicas: list[Server]) -> dict[str, float]:
    """Response cache lookups by outcome, summed over the replicas (``/metrics``, refreshed every 5 s)."""
    out: dict[str, float] = {}
    for replica in replicas:
        body = get(f"{replica.base}/metrics", timeout=10)[2].decode()
        for level, value in re.findall(r'^onemap_cache_lookups_total\{level="([^"]+)"\} (\S+)$', body, re.M):
            out[level] = out.get(level, 0.0) + float(value)
    return out


def warm(base: str, paths: list[str], headers: dict) -> None:
    """A first pass over every path (8 at a time); then each path, asked twice in a row (so of each replica),
    must be answered from a cache."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: get(base + p, headers), paths))
    for p in paths:
        for _ in range(2):  # nginx alternates replicas: both must answer from a cache
            status, got, _ = get(base + p, headers)
            if status not in (200, 204) or not got.get("x-cache", "").startswith("hit"):
                sys.exit(f"{p}: {status} x-cache={got.get('x-cache')} after the warm-up pass")


def limit_sentence(u: Usage, cores: int) -> str:
    """Where the CPU went during a run, and what that says limits the throughput."""
    share = {"OneMap": u.onemap / u.wall, "PostgreSQL": u.postgres / u.wall, "nginx": u.nginx / u.wall}
    share["the rest (wrk, other users)"] = max(u.machine / u.wall - sum(share.values()), 0.0)
    busy = u.machine / u.wall / cores
    spent = ", ".join(f"{name} {cores_used:.2f}" for name, cores_used in share.items())
    spent = f"cores used: {spent}; the machine {busy:.0%} busy of {cores} cores"
    top = max(share, key=lambda k: share[k])
    if busy >= 0.85:
        return f"{spent} -> CPU-bound on the machine, largest share {top}: a replica adds processes, not cores"
    if share["PostgreSQL"] > share["OneMap"]:
        return f"{spent} -> PostgreSQL does most of the work per request; cores are left idle"
    return f"{spent} -> cores left idle: limited by the clients' concurrency and per-request latency, not CPU"


def print_replicas(case: str, setups: dict[str, Setup], outcomes: dict[str, float], cores: int) -> None:
    """One case: 1 replica against 2, medians, ratio and where the CPU went."""
    rows = {name: median_of(s.runs) for name, s in setups.items()}
    print(f"\n{case}: {'setup':<30}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'KB/resp':>9}{'CPU ms/req':>11}{'errors':>7}")
    for name, r in rows.items():
        print(f"{'':<{len(case) + 2}}{name:<30}{r.rps:>9.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
              f"{r.bytes_per_req / 1024:>9.1f}{r.cpu_ms:>11.2f}{r.errors:>7}")
    one, two = rows.values()
    mids = {name: sorted(s.usage, key=lambda u: u.machine)[len(s.usage) // 2] for name, s in setups.items()}
    used = [(u.onemap + u.postgres) / u.wall for u in mids.values()]
    print(f"  2 vs 1: {two.rps / one.rps:.2f}x req/s, {two.p99_ms / one.p99_ms:.2f}x p99, "
          f"{used[1] / used[0]:.2f}x the cores OneMap + PostgreSQL got")
    for name, mid in mids.items():
        print(f"  {name}: {limit_sentence(mid, cores)}")
    total = sum(outcomes.values())
    if total:
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(outcomes.items()))
        print(f"  cache lookups during the runs: {shares} of {total:.0f}")
    if not case.startswith("cached") and outcomes.get("miss", 0.0) < 0.9 * total:
        print("  (fewer than 90% misses: give more distinct paths, --tiles or --boxes, so that none comes back "
              "within the 1 s the shared entries live)")


def measure_case(case: str, setups: dict[str, Setup], paths: list[str], headers: dict, url: str,
                 args: argparse.Namespace) -> None:
    """One case through both setups: warm-up, then runs taking turns, with the cache outcomes around them."""
    for setup in setups.values():
        setup.runs, setup.usage = [], []
        wrk(setup.nginx.base, paths, args.clients, args.warmup, headers=headers)
    replicas = max((setup.replicas for setup in setups.values()), key=len)  # every replica of the case
    time.sleep(6)  # /metrics counters are refreshed every 5 s
    before = cache_outcomes(replicas)
    for _ in range(args.runs):
        for setup in setups.values():
            run_setup(setup, paths, headers, url, args)
    time.sleep(6)
    outcomes = {k: v - before.get(k, 0.0) for k, v in cache_outcomes(replicas).items()}
    print_replicas(case, setups, outcomes, os.cpu_count() or 1)


def replica_cases(cases: dict[str, list[str]], env: dict, headers: dict, url: str, args: argparse.Namespace,
                  work: Path, cached: bool) -> None:
    """Two replicas started with ``env`` on an emptied Redis (no entry left by the cases before), nginx
    over the first alone and over both, and each case measured through both."""
    with redis.Redis.from_url(env["ONEMAP_REDIS_URL"]) as client:
        client.flushall()
    w = args.workers_per_replica
    slug = "cached" if cached else "uncached"
    replicas: list[Server] = []
    nginxes: list[Nginx] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            replicas = list(pool.map(lambda i: start_onemap(f"scale-{slug}-replica-{i}", w, env,
                                                            ready_timeout=args.start_timeout), (1, 2)))
        ports = [int(r.base.rsplit(":", 1)[1]) for r in replicas]
        nginxes = [Nginx(work / f"nginx-{slug}-{n}", ports[:n]) for n in (1, 2)]
        setups = {f"1 replica x {w} workers": Setup(Server("nginx-1", nginxes[0].proc, nginxes[0].url), replicas[:1]),
                  f"2 replicas x {w} workers": Setup(Server("nginx-2", nginxes[1].proc, nginxes[1].url), replicas)}
        for case, paths in cases.items():
            if cached:
                warm(nginxes[1].url, paths, headers)
            measure_case(case, setups, paths, headers, url, args)
    finally:
        for n in nginxes:
            n.stop()
        for r in replicas:
            r.stop()


def two_replicas(url: str, args: argparse.Namespace) -> None:
    """Part 2: cached tiles, uncached tiles and uncached items, one replica against two behind nginx."""
    work = Path(tempfile.mkdtemp(prefix="onemap-scale-"))
    redis_server = RedisServer(work)
    redis_server.start()
    headers = {"X-API-Key": api_key(url, name="bench-scale-replicas")}
    cases = scale_paths(url, args)
    tiles = [p for case, paths in cases.items() if case != "items" for p in paths]
    base = {"ONEMAP_DATABASE_URL": url, "ONEMAP_REDIS_URL": redis_server.url, "ONEMAP_CACHE_SECRET": "bench-scale",
            "ONEMAP_DATA_DIR": str(work / "data"), "ONEMAP_CACHE_DEBUG_HEADER": "true", "ONEMAP_METRICS": "open"}
    # uncached: no in-process cache, no fast path; Redis still shares limits and quotas, and its entries
    # lapse after 1 s so that a path comes back to a miss (the cache outcomes printed show it did)
    uncached = {**base, **UNCACHED, "ONEMAP_REDIS_TTL_S": "1"}
    cores = os.cpu_count() or 1
    print(f"\nTwo replicas against one on {args.replicas_on}: {args.clients} clients through nginx, "
          f"median of {args.runs} x {args.seconds} s; this machine has {cores} cores", flush=True)
    try:
        replica_cases({"cached tiles": tiles}, base, headers, url, args, work, cached=True)
        replica_cases({"uncached tiles": tiles, "uncached items": cases["items"]}, uncached, headers, url, args, work,
                      cached=False)
    finally:
        redis_server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", action="append", required=True, metavar="LABEL=URL",
                    help="a PostGIS holding the sample; repeat, smallest first (the baseline)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2, help="seconds of load before measuring, per target")
    ap.add_argument("--workers", type=int, default=2, help="workers of each scale's server (part 1)")
    ap.add_argument("--boxes", type=int, default=200, help="distinct ~1 km item boxes")
    ap.add_argument("--tiles", type=int, default=300, help="distinct tiles per zoom")
    ap.add_argument("--zooms", default="14,16")
    ap.add_argument("--replicas-on", metavar="LABEL", help="the database of part 2 (default: skip part 2)")
    ap.add_argument("--workers-per-replica", type=int, default=2)
    ap.add_argument("--start-timeout", type=float, default=180, help="seconds a replica may take to start")
    ap.add_argument("--skip-scales", action="store_true", help="run part 2 only")
    args = ap.parse_args()
    dbs = parse_databases(args.database)
    if args.replicas_on and args.replicas_on not in dbs:
        sys.exit(f"--replicas-on {args.replicas_on}: not one of the --database labels {list(dbs)}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    if not args.skip_scales:
        data_size(dbs, args)
    if args.replicas_on:
        two_replicas(dbs[args.replicas_on], args)


if __name__ == "__main__":
    main()
