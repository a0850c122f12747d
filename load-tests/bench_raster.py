"""Raster tile throughput: OneMap against titiler on the same COGs, in the same run.

Scenarios (16 concurrent clients, no response cache on either side):
  * imagery JPEG, WebMercatorQuad level 14   (titiler: /cog/tiles/WebMercatorQuad/14/x/y.jpg?url=...)
  * imagery PNG,  WebMercatorQuad level 12   (titiler: .png)
  * DEM terrain-RGB PNG, level 12            (titiler: .png?algorithm=terrainrgb)

Both servers run as one uvicorn process on loopback. OneMap runs with its response cache off
(``ONEMAP_CACHE_MEMORY_BYTES=0``, no fast path) but with everything else it ships (API-key check,
audit, ETags). titiler runs from a separate virtualenv (``pip install titiler.application`` into it,
outside the repository) given with ``--peers-venv``. Each scenario alternates the two servers for
``--rounds`` rounds of ``--seconds`` seconds after a warm-up; the report gives the median req/s,
the p99 latency and the ratio OneMap / titiler. The load is generated with ``wrk`` when installed
(Debian package ``wrk``), else with an httpx asyncio client (which takes more of the CPU itself).

    python load-tests/bench_raster.py --peers-venv /tmp/peers-venv [--data-dir DIR]

Without ``--data-dir`` the sample rasters (full size) and a small vector store are written to a
temporary directory first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import morecantile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.raster.sample import DEM_ASSET, IMAGERY_ASSETS, write_sample_rasters  # noqa: E402

WMQ = morecantile.tms.get("WebMercatorQuad")
IMAGERY_BBOX = (121.5088, 29.8407, 121.5527, 29.8787)
COUNTY_BBOX = (121.40, 29.75, 121.70, 29.95)


@dataclass
class Scenario:
    name: str
    ours: list[str]
    theirs: list[str]


@dataclass
class Result:
    rps: float
    p99_ms: float
    errors: int


def _tiles(bbox, z: int) -> list[morecantile.Tile]:
    return list(WMQ.tiles(*bbox, [z]))


def scenarios(data_dir: Path) -> list[Scenario]:
    """The three scenarios, as paths on each server (every tile of the footprint, round robin)."""
    image = data_dir / IMAGERY_ASSETS[-1][1]
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_data(data_dir: Path | None) -> Path:
    """The data directory: the given one, or a new one with the full-size sample rasters."""
    if data_dir is not None:
        return data_dir
    target = Path(tempfile.mkdtemp(prefix="onemap-bench-"))
    print(f"writing sample data to {target} ...", flush=True)
    write_sample_rasters(target)
    from server.sample import build_sample

    build_sample(3000, target)
    return target


def issue_key(data_dir: Path) -> str:
    """A fresh all-collections API key in the data directory's admin store."""
    from server.policy.admin import admin_store
    from server.policy.keys import KeyRecord, new_key
    from server.settings import Settings

    store = admin_store(Settings(data_dir=data_dir))
    try:
        store.setup()
        key_id, key, hashed = new_key()
        store.add_key(KeyRecord(id=key_id, name="bench", secret_hash=hashed, scopes=None))
    finally:
        store.close()
    return key


def start(cmd: list[str], env: dict[str, str], url: str, headers: dict[str, str]) -> subprocess.Popen:
    """Start a server and wait (bounded) until ``url`` answers 200."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start: {' '.join(cmd)}")


def start_servers(data_dir: Path, venv: Path, key: str) -> tuple[subprocess.Popen, str, subprocess.Popen, str]:
    """Our server and titiler, one uvicorn process each on loopback."""
    common = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    ours_port, their_port = free_port(), free_port()
    env = {**os.environ, **common, "ONEMAP_DATA_DIR": str(data_dir), "ONEMAP_CACHE_MEMORY_BYTES": "0",
           "ONEMAP_CACHE_FAST_PATH": "false", "PYTHONPATH": str(ROOT)}
    uvicorn_args = ["--host", "127.0.0.1", "--workers", "1", "--no-access-log", "--log-level", "warning"]
    ours = start([sys.executable, "-m", "uvicorn", "--factory", "server.app:create_app", "--port", str(ours_port), *uvicorn_args],
                 env, f"http://127.0.0.1:{ours_port}/collections/imagery", {"X-API-Key": key})
    their_env = {k: v for k, v in os.environ.items() if not k.startswith(("ONEMAP_", "PYTHON"))} | common
    theirs = start([str(venv / "bin" / "python"), "-m", "uvicorn", "titiler.application.main:app",
                    "--port", str(their_port), *uvicorn_args],
                   their_env, f"http://127.0.0.1:{their_port}/healthz", {})
    return ours, f"http://127.0.0.1:{ours_port}", theirs, f"http://127.0.0.1:{their_port}"


def _wrk_script(paths: list[str], headers: dict[str, str], folder: Path) -> Path:
    lines = ["paths = {" + ", ".join(f'"{p}"' for p in paths) + "}", "counter = 0"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lines += ["request = function()", "  counter = counter + 1",
              "  return wrk.format(\"GET\", paths[(counter % #paths) + 1])", "end"]
    script = folder / f"paths-{abs(hash(tuple(paths)))}.lua"
    script.write_text("\n".join(lines))
    return script


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(base: str, paths: list[str], headers: dict[str, str], seconds: float, clients: int, folder: Path) -> Result:
    """One load run with wrk."""
    script = _wrk_script(paths, headers, folder)
    cmd = ["wrk", "-t2", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "60s", "--latency", "-s", str(script), base]
    out = subprocess.run(cmd,
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Result(rps, p99, errors)


async def _httpx_load(base, paths, headers, seconds, clients) -> Result:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(offset: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        i = offset
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = await client.get(paths[i % len(paths)])
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 200
            i += 1

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k, client) for k in range(clients)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return Result(len(latencies) / elapsed, latencies[int(0.99 * (len(latencies) - 1))] * 1000, errors)


def load(base, paths, headers, seconds, clients, folder) -> Result:
    """One load run: wrk when installed, else httpx."""
    if shutil.which("wrk"):
        return run_wrk(base, paths, headers, seconds, clients, folder)
    return asyncio.run(_httpx_load(base, paths, headers, seconds, clients))


def check_outputs(ours: str, theirs: str, scenario: Scenario, headers: dict[str, str]) -> None:
    """Both servers answer every tile with an image (and ours is not served from a cache)."""
    for base, paths, hdrs in ((ours, scenario.ours, headers), (theirs, scenario.theirs, {})):
        for path in paths:
            r = httpx.get(base + path, headers=hdrs, timeout=60)
            if r.status_code != 200 or not r.headers.get("content-type", "").startswith("image/"):
                raise SystemExit(f"{scenario.name}: {base}{path} answered {r.status_code}: {r.text[:200]}")
            if r.headers.get("x-cache") == "hit":
                raise SystemExit(f"{scenario.name}: {base}{path} came from a response cache")


def bench(args, ours: str, theirs: str, key: str, folder: Path) -> list[tuple[str, Result, Result]]:
    """Run every scenario; alternate the servers round by round."""
    out = []
    headers = {"X-API-Key": key}
    for sc in scenarios(args.data_dir):
        if args.only and args.only not in sc.name:
            continue
        check_outputs(ours, theirs, sc, headers)
        load(ours, sc.ours, headers, 2, args.clients, folder)
        load(theirs, sc.theirs, {}, 2, args.clients, folder)
        mine, peer = [], []
        for _ in range(args.rounds):
            mine.append(load(ours, sc.ours, headers, args.seconds, args.clients, folder))
            peer.append(load(theirs, sc.theirs, {}, args.seconds, args.clients, folder))
        out.append((sc.name, _median(mine), _median(peer)))
        print(f"  {sc.name}: done ({len(sc.ours)} distinct tiles)", flush=True)
    return out


def _median(results: list[Result]) -> Result:
    return Result(statistics.median(r.rps for r in results), statistics.median(r.p99_ms for r in results),
                  sum(r.errors for r in results))


def report(rows: list[tuple[str, Result, Result]], args) -> None:
    tool = "wrk" if shutil.which("wrk") else "httpx"
    print(f"\n{args.clients} clients, {args.rounds} x {args.seconds:.0f} s per server and scenario, load by {tool}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'scenario':<20}{'OneMap req/s':>14}{'p99 ms':>9}{'titiler req/s':>15}{'p99 ms':>9}{'ratio':>8}")
    for name, mine, peer in rows:
        ratio = mine.rps / peer.rps if peer.rps else float("inf")
        print(f"{name:<20}{mine.rps:>14.1f}{mine.p99_ms:>9.1f}{peer.rps:>15.1f}{peer.p99_ms:>9.1f}{ratio:>7.2f}x")
        if mine.errors or peer.errors:
            print(f"{'':<20}errors: OneMap {mine.errors}, titiler {peer.errors}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/peers-venv"),
                        help="virtualenv with titiler.application and uvicorn installed")
    parser.add_argument("--data-dir", type=Path, default=None, help="data dir with the sample rasters and store")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=None, help="run the scenarios whose name contains this text")
    args = parser.parse_args(argv)
    if not (args.peers_venv / "bin" / "python").exists():
        raise SystemExit(f"no virtualenv at {args.peers_venv}; create it and pip install titiler.application uvicorn")
    args.data_dir = prepare_data(args.data_dir)
    key = issue_key(args.data_dir)
    ours_proc, ours, their_proc, theirs = start_servers(args.data_dir, args.peers_venv, key)
    try:
        with tempfile.TemporaryDirectory() as folder:
            rows = bench(args, ours, theirs, key, Path(folder))
    finally:
        for proc in (ours_proc, their_proc):
            proc.terminate()
            proc.wait(timeout=10)
    report(rows, args)


if __name__ == "__main__":
    main()
