"""Map-pan scenario: simulated people panning and zooming a web map over the base map and imagery.

Each user holds a 1280 x 800 px viewport over the county's built-up centre, and every 0.5-2 s pans
it (by up to half a screen) or zooms in or out one level (12-16). After each move it fetches the
viewport's tiles the way MapLibre does, six at a time: the base map vector tiles (one MVT with every
layer) and, where the imagery footprint is, the imagery tiles. Tiles carry ``X-Cache`` (on a server
run with ``ONEMAP_CACHE_DEBUG_HEADER=true``); the share
answered from a cache (``hit``/``hit-shared``) after the warm-up is printed at the end.

``python load-tests/bench_cache.py --map-pan`` runs it against 2 workers sharing a seeded Redis and
prints the figures. To run it by hand, with locust from a virtualenv outside the repository:

    python -m venv /tmp/locust-venv && /tmp/locust-venv/bin/pip install locust
    ONEMAP_BENCH_KEY=<api key> /tmp/locust-venv/bin/locust -f load-tests/locustfile.py --headless \
        -u 12 -r 4 -t 90s --host http://127.0.0.1:8000

Environment: ``ONEMAP_BENCH_KEY`` (sent as X-API-Key; none for an anonymous edition),
``MAP_PAN_WARMUP_S`` (default 30: requests before it are not counted in the hit ratio),
``MAP_PAN_RESULT`` (a file to write the hit counts to as JSON).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from typing import ClassVar

from gevent.pool import Pool
from locust import FastHttpUser, between, events, task

VIEW_W, VIEW_H, TILE = 1280, 800, 256
AREA = (121.47, 29.78, 121.63, 29.92)  # where people look: the county town and its surroundings
IMAGERY = (121.5087891, 29.8406439, 121.5527344, 29.8787554)  # the imagery footprint
ZOOMS = (12, 16)
WARMUP_S = float(os.environ.get("MAP_PAN_WARMUP_S", "30"))
KEY = os.environ.get("ONEMAP_BENCH_KEY")
COUNTS = {"hit": 0, "miss": 0, "other": 0, "warmup": 0}
STARTED = [time.monotonic()]


def to_pixels(lon: float, lat: float, z: int) -> tuple[float, float]:
    """WebMercatorQuad pixel coordinates of a lon/lat at level z."""
    size = TILE * 2**z
    s = math.sin(math.radians(lat))
    return (lon + 180) / 360 * size, (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * size


def to_lonlat(px: float, py: float, z: int) -> tuple[float, float]:
    size = TILE * 2**z
    lon = px / size * 360 - 180
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * py / size))))
    return lon, lat


def viewport_tiles(lon: float, lat: float, z: int) -> list[tuple[int, int, int]]:
    """(z, row, col) of every tile a VIEW_W x VIEW_H viewport centred on lon/lat touches."""
    cx, cy = to_pixels(lon, lat, z)
    cols = range(int((cx - VIEW_W / 2) // TILE), int((cx + VIEW_W / 2) // TILE) + 1)
    rows = range(int((cy - VIEW_H / 2) // TILE), int((cy + VIEW_H / 2) // TILE) + 1)
    return [(z, r, c) for r in rows for c in cols]


def touches_imagery(z: int, row: int, col: int) -> bool:
    west, north = to_lonlat(col * TILE, row * TILE, z)
    east, south = to_lonlat((col + 1) * TILE, (row + 1) * TILE, z)
    return west < IMAGERY[2] and east > IMAGERY[0] and south < IMAGERY[3] and north > IMAGERY[1]


@events.test_start.add_listener
def _started(**_kwargs) -> None:
    STARTED[0] = time.monotonic()


@events.request.add_listener
def _count(name: str, response=None, exception=None, **_kwargs) -> None:
    if not name.endswith("tile"):
        return
    if time.monotonic() - STARTED[0] < WARMUP_S:
        COUNTS["warmup"] += 1
        return
    state = (response.headers.get("x-cache") or "") if response is not None and not exception else ""
    COUNTS["hit" if state.startswith("hit") else "miss" if state == "miss" else "other"] += 1


@events.quitting.add_listener
def _report(**_kwargs) -> None:
    counted = COUNTS["hit"] + COUNTS["miss"] + COUNTS["other"]
    ratio = COUNTS["hit"] / counted if counted else 0.0
    print(f"map-pan: tile hit ratio after {WARMUP_S:.0f} s warm-up: {ratio:.1%} "
          f"({COUNTS['hit']} hits, {COUNTS['miss']} misses, {COUNTS['other']} other; {COUNTS['warmup']} in warm-up)")
    if os.environ.get("MAP_PAN_RESULT"):
        with open(os.environ["MAP_PAN_RESULT"], "w") as out:
            json.dump({**COUNTS, "ratio": ratio}, out)


class MapUser(FastHttpUser):
    """One person with a web map open."""

    wait_time = between(0.5, 2.0)
    headers: ClassVar[dict[str, str]] = {"Accept-Encoding": "gzip", **({"X-API-Key": KEY} if KEY else {})}

    def on_start(self) -> None:
        self.lon = random.uniform(AREA[0] + 0.03, AREA[2] - 0.03)
        self.lat = random.uniform(AREA[1] + 0.03, AREA[3] - 0.03)
        self.z = random.randint(13, 15)
        self.pool = Pool(6)  # a browser's connections per host
        self._show()

    def _move(self) -> None:
        roll = random.random()
        if roll < 0.15 and self.z < ZOOMS[1]:
            self.z += 1
        elif roll < 0.30 and self.z > ZOOMS[0]:
            self.z -= 1
        else:
            cx, cy = to_pixels(self.lon, self.lat, self.z)
            dx, dy = random.uniform(-0.5, 0.5) * VIEW_W, random.uniform(-0.5, 0.5) * VIEW_H
            lon, lat = to_lonlat(cx + dx, cy + dy, self.z)
            self.lon = min(max(lon, AREA[0]), AREA[2])
            self.lat = min(max(lat, AREA[1]), AREA[3])

    def _get(self, path: str, name: str) -> None:
        with self.client.get(path, name=name, headers=self.headers, catch_response=True) as r:
            if r.status_code in (200, 204):
                r.success()
            else:
                r.failure(f"status {r.status_code}")

    def _show(self) -> None:
        for z, row, col in viewport_tiles(self.lon, self.lat, self.z):
            self.pool.spawn(self._get, f"/tiles/WebMercatorQuad/{z}/{row}/{col}", "basemap tile")
            if touches_imagery(z, row, col):
                self.pool.spawn(self._get, f"/collections/imagery/tiles/WebMercatorQuad/{z}/{row}/{col}",
                                "imagery tile")
        self.pool.join()

    @task
    def pan_or_zoom(self) -> None:
        self._move()
        self._show()
