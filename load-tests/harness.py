"""Shared pieces of the benchmarks: start servers on loopback, drive them with wrk, report medians.

Every run is bounded in time; every server started here is stopped at exit. Loopback only.
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_LUA = """
local urls = {}
local i = 0
%HEADERS%
init = function(args)
  for line in io.lines(args[1]) do urls[#urls + 1] = line end
  i = math.random(#urls)
end
request = function()
  i = (i % #urls) + 1
  return wrk.format("GET", urls[i])
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    name: str, cmd: list[str], port: int, env: dict | None = None, ready: str = "/", headers: dict | None = None
) -> subprocess.Popen:
    """Start a server process and wait until ``ready`` answers 200 (60 s at most)."""
    log = open(Path(tempfile.gettempdir()) / f"bench-{name}.log", "w")
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    atexit.register(stop_server, proc)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited early; see {log.name}")
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{ready}", headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    sys.exit(f"{name} did not become ready; see {log.name}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    bytes_per_req: float


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    base: str, paths: list[str], clients: int, seconds: int, threads: int = 2, headers: dict | None = None
) -> Result:
    """One wrk run over the given paths (cycled), returning req/s, latency percentiles and errors."""
    work = Path(tempfile.mkdtemp(prefix="wrk-"))
    (work / "urls.txt").write_text("\n".join(paths) + "\n")
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    (work / "urls.lua").write_text(_LUA.replace("%HEADERS%", lines))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         "-s", str(work / "urls.lua"), base, "--", str(work / "urls.txt")],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    size = re.search(r"requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read", out)
    read = float(size.group(1)) * {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[size.group(2)]
    return Result(rps, p50, p99, errors, read / max(total, 1))


def median_of(runs: list[Result]) -> Result:
    return Result(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        statistics.median(r.bytes_per_req for r in runs),
    )


def report(rows: dict[str, Result], baseline: str | None = None) -> None:
    """Print a table of results, with ratios against ``baseline`` (ours / theirs)."""
    print(f"{'server':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'KB/resp':>10}{'errors':>8}")
    for name, r in rows.items():
        print(f"{name:<28}{r.rps:>10.1f}{r.p50_ms:>10.1f}{r.p99_ms:>10.1f}{r.bytes_per_req / 1024:>10.1f}{r.errors:>8}")
    if baseline:
        ours = rows[baseline]
        for name, r in rows.items():
            if name != baseline and r.rps:
                print(f"  {baseline} vs {name}: {ours.rps / r.rps:.2f}x req/s, {r.p99_ms / ours.p99_ms:.2f}x lower p99")
