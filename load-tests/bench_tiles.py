"""Uncached vector-tile throughput: OneMap against tipg, same PostGIS table, same run.

    python load-tests/bench_tiles.py [--database-url URL] [--parcels 200000] [--seconds 15]

What it does:
1. Uses the given database, or starts a throwaway PostGIS cluster (``tests/support/pg.py``) and loads
   the sample county with ``--parcels`` parcels (``server.sample.build_sample``), overviews included.
2. Starts OneMap (uvicorn, one worker) and tipg (from its own virtualenv outside the repository,
   ``--tipg-venv``; create it with ``python -m venv /tmp/peers-tipg && /tmp/peers-tipg/bin/pip install
   tipg uvicorn``), both on loopback, each alone while measured.
3. For each zoom (14, 12, 10) takes the WebMercatorQuad tiles over the parcels' extent, and runs
   ``--clients`` concurrent keep-alive clients for ``--seconds`` split into ``--rounds`` rounds, over the
   same shuffled tile list for both servers. Neither server caches tiles; each request builds a tile.
4. Prints, per zoom and server: median req/s over the rounds, p50/p99 latency, mean tile size, and
   the ratio OneMap/tipg.

The load generator is a minimal asyncio HTTP/1.1 client (no third-party client) so that it costs
little CPU next to the servers on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import morecantile  # noqa: E402

ZOOMS = (14, 12, 10)
TABLE = "parcels"


@dataclass
class Result:
    """One server at one zoom."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    errors: int = 0
    cpu_ms: float = float("nan")  # server + database CPU per request (robust on a shared machine)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000


# -- a small HTTP/1.1 keep-alive client ---------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            total += size
            if size == 0:
                return status, total
    if length:
        await reader.readexactly(length)
    return status, length


async def _client(port: int, paths: list[str], start: int, deadline: float, out: Result, extra: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done, i = 0, start
    try:
        while time.perf_counter() < deadline:
            path = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n{extra}\r\n".encode())
            status, size = await _read_response(reader)
            out.latencies.append(time.perf_counter() - t0)
            if status not in (200, 204):
                out.errors += 1
            out.sizes.append(size)
            done += 1
    finally:
        writer.close()
    return done


async def _round(port: int, paths: list[str], clients: int, seconds: float, out: Result, extra: str) -> float:
    t0 = time.perf_counter()
    deadline = t0 + seconds
    step = max(1, len(paths) // clients)
    counts = await asyncio.gather(*(_client(port, paths, k * step, deadline, out, extra) for k in range(clients)))
    return sum(counts) / (time.perf_counter() - t0)


def measure(port: int, paths: list[str], clients: int, seconds: float, rounds: int, headers: str = "") -> Result:
    """Warm up for a second, then ``rounds`` rounds; req/s per round. ``headers``: extra header lines."""
    warm = Result()
    asyncio.run(_round(port, paths, clients, 1.0, warm, headers))
    result = Result()
    for _ in range(rounds):
        result.rates.append(asyncio.run(_round(port, paths, clients, seconds / rounds, result, headers)))
    return result


# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(12).startswith(b"HTTP/1.1 2"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server on port {port} did not become ready")


def onemap_settings(url: str, data_dir: Path):
    """OneMap over the database with every response cache off: each request builds its tile."""
    from server.settings import Settings

    return Settings(database_url=url, data_dir=data_dir, cache_memory_bytes=0, cache_fast_path=False, redis_url=None)


def onemap_key(url: str, data_dir: Path) -> str:
    """An API key for the benchmark client (the classified edition requires one)."""
    from tests.support.api_keys import issue_key

    return issue_key(onemap_settings(url, data_dir), name="bench-tiles")


def start_onemap(url: str, data_dir: Path, port: int, workers: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    env.update(ONEMAP_DATABASE_URL=url, ONEMAP_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT),
               ONEMAP_CACHE_MEMORY_BYTES="0", ONEMAP_CACHE_FAST_PATH="false")
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "server.app:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT)


def start_tipg(venv: Path, url: str, port: int, workers: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONEMAP_", "TIPG_"))}
    env.update(DATABASE_URL=url, TIPG_DB_SCHEMAS='["public"]', TIPG_DB_TABLES=f'["public.{TABLE}"]')
    cmd = [str(venv / "bin" / "uvicorn"), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir())


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- data ---------------------------------------------------------------------------------------


def prepare_database(args) -> tuple[str, Path, object | None]:
    """The database URL, a data directory, and the cluster to stop (None when one was given)."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    cluster = None
    url = args.database_url
    if url is None:
        from tests.support.pg import start_cluster

        cluster = start_cluster()
        url = cluster.url
    if not args.skip_load:
        from server.sample import build_sample

        t0 = time.perf_counter()
        build_sample(args.parcels, data_dir, url)
        print(f"loaded {args.parcels} parcels in {time.perf_counter() - t0:.0f} s", flush=True)
    _ensure_overviews(url)
    return url, data_dir, cluster


def _ensure_overviews(url: str) -> None:
    import psycopg

    from server.catalog import Catalog, load_catalog
    from server.sources.postgis_tiles import build_overviews
    from server.settings import Settings

    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'onemap_tiles' AND tablename LIKE %s", [TABLE + "_z%"]
        ).fetchone()[0]
        if not found:
            catalog = load_catalog(Settings().collections_dir)
            build_overviews(conn, Catalog([catalog.get(TABLE)]))


def tile_paths(url: str, zoom: int, limit: int, seed: int = 7) -> list[tuple[int, int, int]]:
    """Tiles over the parcels' extent at ``zoom`` (those with data), shuffled."""
    import psycopg

    with psycopg.connect(url) as conn:
        xmin, ymin, xmax, ymax = conn.execute(
            f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e FROM {TABLE}) s"
        ).fetchone()
        tms = morecantile.tms.get("WebMercatorQuad")
        tiles = list(tms.tiles(xmin, ymin, xmax, ymax, [zoom]))
        keep = []
        for t in tiles:
            b = tms.bounds(t)
            hit = conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4490))",
                [b.left, b.bottom, b.right, b.top],
            ).fetchone()[0]
            if hit:
                keep.append((t.z, t.x, t.y))
    random.Random(seed).shuffle(keep)
    return keep[:limit]


# -- the run ------------------------------------------------------------------------------------


def _cpu_seconds(pids) -> dict[int, float]:
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _server_pids(proc: subprocess.Popen) -> list[int]:
    """The server process and its workers."""
    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return [proc.pid, *(int(p) for p in (kids.read_text().split() if kids.exists() else []))]


def _backend_pids(url: str) -> list[int]:
    """Database backends serving the benchmarked database (other clusters on the machine excluded)."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [r[0] for r in rows]


def run_server(name: str, proc, port: int, cases: dict[int, list[str]], args, url: str, headers: str = "") -> dict:
    try:
        wait_ready(port, "/conformance", proc)
        out = {}
        for zoom, paths in cases.items():
            before = _cpu_seconds(_server_pids(proc) + _backend_pids(url))
            out[zoom] = r = measure(port, paths, args.clients, args.seconds, args.rounds, headers)
            after = _cpu_seconds(_server_pids(proc) + _backend_pids(url))
            requests = len(r.latencies)
            spent = sum(t - before.get(pid, 0.0) for pid, t in after.items())
            r.cpu_ms = spent / requests * 1000 if requests else float("nan")  # warm-up CPU included: an upper bound
            print(f"  {name:7s} {zoom if isinstance(zoom, str) else f'z{zoom}'}: {r.rate:8.1f} req/s  p50 {r.pct(0.5):7.1f} ms  p99 {r.pct(0.99):7.1f} ms"
                  f"  mean {statistics.mean(r.sizes) / 1024 if r.sizes else 0:7.1f} KB  CPU {r.cpu_ms:6.1f} ms/req"
                  f"  errors {r.errors}", flush=True)
        return out
    finally:
        stop(proc)


def report(ours: dict[int, Result], tipg: dict[int, Result]) -> None:
    print("\nzoom | OneMap req/s | tipg req/s | ratio | OneMap p99 ms | tipg p99 ms | OneMap KB | tipg KB"
          " | CPU ms/req OneMap | tipg | CPU ratio")
    for zoom in tipg:
        a, b = ours[zoom], tipg[zoom]
        ratio = a.rate / b.rate if b.rate else float("inf")
        size_a = statistics.mean(a.sizes) / 1024 if a.sizes else 0
        size_b = statistics.mean(b.sizes) / 1024 if b.sizes else 0
        print(f"z{zoom:<3} | {a.rate:12.1f} | {b.rate:10.1f} | {ratio:5.1f}x | {a.pct(0.99):13.1f} | "
              f"{b.pct(0.99):11.1f} | {size_a:9.1f} | {size_b:7.1f} | {a.cpu_ms:17.1f} | {b.cpu_ms:4.1f} | "
              f"{b.cpu_ms / a.cpu_ms:8.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an existing PostGIS database (default: a throwaway cluster)")
    parser.add_argument("--parcels", type=int, default=200_000)
    parser.add_argument("--skip-load", action="store_true", help="the database already holds the sample")
    parser.add_argument("--tipg-venv", type=Path, default=Path("/tmp/peers-tipg"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per server and zoom")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, the same for both servers")
    parser.add_argument("--tiles", type=int, default=400, help="distinct tiles per zoom")
    parser.add_argument("--zooms", default=",".join(map(str, ZOOMS)))
    args = parser.parse_args(argv)

    url, data_dir, cluster = prepare_database(args)
    try:
        zooms = [int(z) for z in args.zooms.split(",")]
        tiles = {z: tile_paths(url, z, args.tiles) for z in zooms}
        print("tiles per zoom:", {z: len(t) for z, t in tiles.items()}, flush=True)
        port = free_port()
        ours_cases = {z: [f"/collections/{TABLE}/tiles/WebMercatorQuad/{z}/{y}/{x}" for z, x, y in t]
                      for z, t in tiles.items()}
        if 10 in tiles:  # the base map (every vector layer) at 10, OneMap only: tipg has no dataset tiles
            ours_cases["base map z10"] = [f"/tiles/WebMercatorQuad/10/{y}/{x}" for _, x, y in tiles[10]]
        print("OneMap:", flush=True)
        key = onemap_key(url, data_dir)
        ours = run_server("OneMap", start_onemap(url, data_dir, port, args.workers), port, ours_cases, args, url,
                          f"X-API-Key: {key}\r\n")
        port = free_port()
        tipg_cases = {z: [f"/collections/public.{TABLE}/tiles/WebMercatorQuad/{z}/{x}/{y}" for z, x, y in t]
                      for z, t in tiles.items()}
        print("tipg:", flush=True)
        theirs = run_server("tipg", start_tipg(args.tipg_venv, url, port, args.workers), port, tipg_cases, args, url)
        report(ours, theirs)
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
