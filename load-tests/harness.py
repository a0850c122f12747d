"""Shared pieces of the benchmarks: the database, API keys, servers on loopback, load with wrk, CPU per
request, medians and tables with ratios.

A benchmark script prepares its data, starts each server with ``start_onemap`` / ``start_peer``, drives
them with ``measure`` (wrk over a list of paths, warm-up then N runs, median) and prints ``report``.
One PostGIS loaded once serves the scripts that need it: ``python -m server.cli sample --scale 200000
--database-url URL --no-rasters``, then ``--database-url URL --skip-load``.
Every run is bounded in time; every process started here is stopped at exit. Loopback only.
Importing this module puts the repository on ``sys.path`` (for ``server`` and ``tests.support``).
"""

from __future__ import annotations

import atexit
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# every request does the work; X-Cache (a debug header) lets the scripts check that it did
UNCACHED = {"ONEMAP_CACHE_MEMORY_BYTES": "0", "ONEMAP_CACHE_FAST_PATH": "false", "ONEMAP_CACHE_DEBUG_HEADER": "true"}
# a line of the URL list is a path, or a path, a tab and the ETag to send as If-None-Match
_LUA = """
local urls = {}
local i = 0
%HEADERS%
init = function(args)
  for line in io.lines(args[1]) do
    local path, etag = line:match("^([^\t]+)\t?(.*)$")
    local headers = nil
    if etag ~= "" then
      headers = {}
      for k, v in pairs(wrk.headers) do headers[k] = v end
      headers["If-None-Match"] = etag
    end
    urls[#urls + 1] = {path, headers}
  end
  i = math.random(#urls)
end
request = function()
  i = (i % #urls) + 1
  return wrk.format("GET", urls[i][1], urls[i][2])
end
"""


# -- data and keys ------------------------------------------------------------------------------


def database(url: str | None, scale: int, skip_load: bool) -> str:
    """The PostGIS to benchmark: ``url``, or a throwaway cluster (stopped at exit); the sample county
    with ``scale`` parcels is loaded into it (overviews and versioning included) unless ``skip_load``."""
    if not url:
        from tests.support.pg import start_cluster

        cluster = start_cluster()
        atexit.register(cluster.stop)
        url = cluster.url
    if not skip_load:
        from server.sample import build_sample
        from server.settings import Settings
        from server.stores.postgis import PostGISStore

        print(f"loading {scale:,} parcels ...", flush=True)
        started = time.perf_counter()
        build_sample(scale, PostGISStore(Settings(database_url=url)))
        print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def api_key(database_url: str | None = None, data_dir: Path | None = None, name: str = "bench") -> str:
    """A fresh all-collections API key in the admin store of OneMap serving this database or data dir."""
    from server.settings import Settings
    from tests.support.api_keys import issue_key

    extra = {"data_dir": Path(data_dir)} if data_dir else {}
    return issue_key(Settings(database_url=database_url, **extra), name=name)


# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A server process started by ``start_server`` and its base URL."""

    name: str
    proc: subprocess.Popen
    base: str

    def stop(self) -> None:
        """Terminate the server (and its workers), killing it after 10 s."""
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a process started here, killing it after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(url: str, headers: dict | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
    """Status, headers (lower-case names) and body of one GET; connection failures raise ``OSError``."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def start_server(
    name: str, cmd: list[str], env: dict | None = None, ready: str = "/", headers: dict | None = None,
    port: int | None = None, ready_timeout: float = 60,
) -> Server:
    """Start ``cmd`` on ``port`` (a free loopback port by default; ``{port}`` in ``cmd``) and wait until
    ``ready`` answers 200 (``ready_timeout`` s at most). The inherited ``ONEMAP_*`` variables are dropped: ``env`` says
    all. Output goes to /tmp/bench-NAME.log."""
    port = port or free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMAP_")}
    log_path = Path(tempfile.gettempdir()) / f"bench-{name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([c.replace("{port}", str(port)) for c in cmd], env={**base_env, **(env or {})},
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    atexit.register(stop_process, proc)
    server = Server(name, proc, f"http://127.0.0.1:{port}")
    deadline = time.time() + ready_timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited early; see {log_path}")
        try:
            if get(server.base + ready, headers, timeout=5)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.5)
    server.stop()
    sys.exit(f"{name} did not become ready; see {log_path}")


def _uvicorn_args(workers: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", "{port}", "--workers", str(workers), "--no-access-log",
            "--log-level", "warning"]


def start_onemap(
    name: str, workers: int, env: dict, ready: str = "/conformance", headers: dict | None = None,
    ready_timeout: float = 60,
) -> Server:
    """``onemap serve`` with ``workers`` workers, configured by ``env`` (``ONEMAP_*`` variables)."""
    return start_server(name, [sys.executable, "-m", "server.cli", "serve", *_uvicorn_args(workers)], env, ready,
                        headers, ready_timeout=ready_timeout)


def start_peer(
    name: str, venv: Path, app: str, workers: int, env: dict | None = None, ready: str = "/", port: int | None = None
) -> Server:
    """Another server's ASGI ``app`` under uvicorn from its own virtualenv ``venv`` (outside the repository)."""
    uvicorn = Path(venv) / "bin" / "uvicorn"
    if not uvicorn.exists():
        sys.exit(f"no uvicorn in {venv}: create that virtualenv as the script's docstring says")
    return start_server(name, [str(uvicorn), app, *_uvicorn_args(workers)], env, ready, port=port)


# -- CPU per request ----------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far (user + system) of each of these processes that is alive."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _socket_ports(pids: list[int]) -> set[int]:
    """Local TCP ports of the sockets these processes hold open."""
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def database_cpu(database_url: str, client_pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of the PostgreSQL backends serving these client processes' connections (the
    backends of other clients of a shared database are not counted)."""
    import psycopg

    ports = _socket_ports(client_pids)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return cpu_seconds([pid for pid, port in rows if port in ports])


def server_pids(server: Server) -> list[int]:
    """The server process and its children (the workers)."""
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    return [server.proc.pid, *(int(p) for p in (children.read_text().split() if children.exists() else []))]


def cpu_snapshot(server: Server, database_url: str | None = None) -> dict[int, float]:
    """CPU seconds so far of the server, its workers and (with ``database_url``) the database backends
    serving them."""
    pids = server_pids(server)
    return {**cpu_seconds(pids), **(database_cpu(database_url, pids) if database_url else {})}


# -- load ---------------------------------------------------------------------------------------


@dataclass
class Result:
    """One wrk run, or the median of several."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    bytes_per_req: float
    requests: int = 0
    cpu_ms: float = math.nan  # server (+ database) CPU per request


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_UNITS_B = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_WRK_FIGURES = (
    r"Requests/sec:\s+([\d.]+)",
    r"50%\s+([\d.]+)(us|ms|s|m|h)\b",
    r"99%\s+([\d.]+)(us|ms|s|m|h)\b",
    r"(\d+) requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read",
)


def _parse_wrk(out: str) -> Result:
    found = [re.search(p, out) for p in _WRK_FIGURES]
    if not all(found):
        raise RuntimeError(f"wrk gave no figures:\n{out[-1500:]}")
    rps, p50, p99, size = found
    total = int(size.group(1))
    read = float(size.group(2)) * _UNITS_B[size.group(3)]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    p50_ms, p99_ms = (float(m.group(1)) * _UNITS_MS[m.group(2)] for m in (p50, p99))
    return Result(float(rps.group(1)), p50_ms, p99_ms, errors, read / max(total, 1), total)


def wrk(
    base: str, paths: list[str], clients: int, seconds: float, threads: int = 2, headers: dict | None = None,
    timeout: int = 30,
) -> Result:
    """One wrk run over ``paths`` (cycled), returning req/s, latency percentiles, errors and bytes/response."""
    work = Path(tempfile.mkdtemp(prefix="wrk-"))
    (work / "urls.txt").write_text("\n".join(paths) + "\n")
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    (work / "urls.lua").write_text(_LUA.replace("%HEADERS%", lines))
    secs = max(1, round(seconds))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{secs}s", "--timeout", f"{timeout}s", "--latency",
         "-s", str(work / "urls.lua"), base, "--", str(work / "urls.txt")],
        capture_output=True, text=True, timeout=secs + 60, check=False,
    ).stdout
    return _parse_wrk(out)


@dataclass
class Target:
    """What to drive: a server, the paths to cycle, request headers, and the database whose backends
    count in its CPU per request."""

    server: Server
    paths: list[str]
    headers: dict | None = None
    database_url: str | None = None


def _run(target: Target, clients: int, seconds: float) -> Result:
    """One measured wrk run with the CPU it cost; a run without figures (a stalled server) is retried once."""
    before = cpu_snapshot(target.server, target.database_url)
    try:
        result = wrk(target.server.base, target.paths, clients, seconds, headers=target.headers)
    except RuntimeError as exc:
        print(f"{target.server.name}: {exc}; running again", flush=True)
        before = cpu_snapshot(target.server, target.database_url)
        result = wrk(target.server.base, target.paths, clients, seconds, headers=target.headers)
    after = cpu_snapshot(target.server, target.database_url)
    spent = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    result.cpu_ms = spent / result.requests * 1000 if result.requests else math.nan
    settle(target.server)
    return result


def settle(server: Server, idle: float = 0.1, limit: float = 15) -> None:
    """Wait (``limit`` s at most) until the server uses under ``idle`` of a core: requests wrk gave up on
    may still be running, and must not load the next server's run."""
    deadline = time.time() + limit
    last = sum(cpu_snapshot(server).values())
    while time.time() < deadline:
        time.sleep(0.5)
        now = sum(cpu_snapshot(server).values())
        if now - last < idle * 0.5:
            return
        last = now


def measure(
    targets: dict[str, Target], clients: int, seconds: float, runs: int, warmup: float = 3,
) -> dict[str, Result]:
    """Warm each target up for ``warmup`` s, then ``runs`` runs of ``seconds`` s each, the targets taking
    turns run by run (fair on a shared machine, each run once the previous server has settled); the
    median per target."""
    for target in targets.values():
        if warmup:
            wrk(target.server.base, target.paths, clients, warmup, headers=target.headers)
            settle(target.server)
    done: dict[str, list[Result]] = {name: [] for name in targets}
    for _ in range(runs):
        for name, target in targets.items():
            done[name].append(_run(target, clients, seconds))
    return {name: median_of(results) for name, results in done.items()}


def median_of(runs: list[Result]) -> Result:
    """Median req/s, latencies, size and CPU of several runs; errors and requests summed."""
    return Result(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        statistics.median(r.bytes_per_req for r in runs),
        sum(r.requests for r in runs),
        statistics.median(r.cpu_ms for r in runs),
    )


def report(rows: dict[str, Result], baseline: str | None = None, title: str | None = None) -> None:
    """Print a table of results, with ratios of ``baseline`` against every other row."""
    if title:
        print(f"\n{title}")
    print(f"{'server':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'KB/resp':>10}{'CPU ms/req':>12}{'errors':>8}")
    for name, r in rows.items():
        print(f"{name:<28}{r.rps:>10.1f}{r.p50_ms:>10.1f}{r.p99_ms:>10.1f}{r.bytes_per_req / 1024:>10.1f}"
              f"{r.cpu_ms:>12.1f}{r.errors:>8}")
    ours = rows.get(baseline) if baseline else None
    for name, r in rows.items():
        if ours is not None and name != baseline and r.rps:
            print(f"  {baseline} vs {name}: {ours.rps / r.rps:.2f}x req/s, {r.p99_ms / ours.p99_ms:.2f}x lower p99, "
                  f"{r.cpu_ms / ours.cpu_ms:.2f}x less CPU per request")
