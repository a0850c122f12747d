"""A memory soak against a running ``onemap serve``: clients request distinct tiles and items while the
resident memory (RSS) of every worker is sampled. Used by tests/test_memory_budget.py (short) and
load-tests/soak_memory.py (long, prints the series).
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import httpx
import morecantile

COUNTY = (121.40, 29.75, 121.70, 29.95)


def worker_pids(parent: int) -> list[int]:
    """The worker processes of a uvicorn parent (the parent itself when it has none)."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    pids = [p for p in pids if b"resource_tracker" not in _cmdline(p)]
    return pids or [parent]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # the process has ended
        return b"resource_tracker"


def rss_mib(pid: int) -> float:
    """Resident memory of one process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak_paths(zooms: range = range(13, 17)) -> list[str]:
    """Distinct base-map and parcel tiles over the county, and item pages: every request a cache miss
    until the cache must evict."""
    tms = morecantile.tms.get("WebMercatorQuad")
    paths = []
    for z in zooms:
        for t in tms.tiles(*COUNTY, [z]):
            paths.append(f"/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}")
            paths.append(f"/collections/parcels/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}")
    for i in range(200):
        x = COUNTY[0] + (i % 20) * 0.015
        y = COUNTY[1] + (i // 20) * 0.02
        paths.append(f"/collections/parcels/items?limit=100&bbox={x:.3f},{y:.3f},{x + 0.02:.3f},{y + 0.02:.3f}")
    return paths


def soak(base: str, key: str, parent: int, seconds: float, clients: int, every_s: float = 2.0
         ) -> tuple[list[tuple[float, list[float]]], dict[int, int]]:
    """Run ``clients`` clients over ``soak_paths`` for ``seconds``; the RSS series (time, MiB per
    worker) sampled every ``every_s`` and the count of answers by status."""
    paths = soak_paths()
    stop = threading.Event()
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as c:
            for path in itertools.islice(itertools.cycle(paths), i * 97, None):
                if stop.is_set():
                    return
                try:
                    status = c.get(path).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    series = []
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        series.append((round(elapsed, 1), [round(rss_mib(p), 1) for p in worker_pids(parent)]))
        time.sleep(every_s)
    stop.set()
    for t in threads:
        t.join(60)
    return series, statuses
