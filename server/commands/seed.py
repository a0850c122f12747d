"""``onemap seed``: pre-render tiles into the shared cache (Redis). A command beside the CLI: it runs the app.

Tiles are requested from the app itself, in process (an ASGI client on ``create_app``), so they
go through the tile route and ``cached()`` exactly as a client's request would and land under
the same keys. Seeding needs Redis (``ONEMAP_REDIS_URL`` or ``--redis-url``): the in-process
cache of a command-line process disappears with it, so seeding without a shared cache is refused.

Resumable: a tile already in Redis answers ``X-Cache: hit-shared`` without being rendered, so an
interrupted run picks up where it stopped. Concurrency is bounded (``--concurrency`` requests in
flight). The same settings as the servers' (edition, namespace, catalog, store) must be used, or
the keys will differ. Tiles are seeded for the anonymous scope unless ``--api-key`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import httpx

from server.catalog import Catalog, VectorCollection
from server.extents import union_bbox
from server.settings import Settings
from server.tiling.matrix_sets import get_tms

BASEMAP = "basemap"  # the dataset tileset (/tiles/...): every vector collection as a layer


class SeedError(Exception):
    """Seeding cannot start or cannot go on; the message says why."""


@dataclass(frozen=True)
class SeedPlan:
    """What to seed: collection ids (or ``basemap``), tile matrix sets, zoom levels, a CRS84 bbox."""

    collections: tuple[str, ...]
    tms_ids: tuple[str, ...]
    zooms: tuple[int, ...]
    bbox: tuple[float, float, float, float] | None = None


def parse_zooms(text: str) -> tuple[int, ...]:
    """``"12"`` or ``"10-14"`` -> the zoom levels (inclusive)."""
    try:
        lo, _, hi = text.partition("-")
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise SeedError(f"--zooms: '{text}' is not a level or a range like 10-14") from None
    if first < 0 or last < first or last > 30:
        raise SeedError(f"--zooms: '{text}' is not a range of levels 0-30 (low-high)")
    return tuple(range(first, last + 1))


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``"minx,miny,maxx,maxy"`` in CRS84 -> a tuple, or ``None``."""
    if not text:
        return None
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise SeedError(f"--bbox: '{text}' is not four numbers minx,miny,maxx,maxy") from None
    if not (w < e and s < n and w >= -180 and e <= 180 and s >= -90 and n <= 90):
        raise SeedError(f"--bbox: '{text}' is not a valid lon/lat box (minx<maxx, miny<maxy)")
    return w, s, e, n


def _intersect(a, b) -> tuple[float, float, float, float] | None:
    if b is None:
        return tuple(a)
    w, s, e, n = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (w, s, e, n) if w < e and s < n else None


def _areas(plan: SeedPlan, catalog: Catalog) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(URL prefix, bbox) per requested collection, bbox clipped to the collection's extent."""
    out = []
    for cid in plan.collections:
        if cid == BASEMAP:
            union = union_bbox(catalog.of_kind(VectorCollection))
            if union is None:
                raise SeedError("the catalog has no vector collection for the base map")
            prefix, extent = "/tiles", union
        else:
            c = catalog.get(cid)
            if c is None:
                raise SeedError(f"--collections: no collection '{cid}'; known: {', '.join(catalog.ids)}, {BASEMAP}")
            prefix, extent = f"/collections/{c.id}/tiles", c.extent.spatial.bbox
        box = _intersect(extent, plan.bbox)
        if box is not None:
            out.append((prefix, box))
    return out


def tile_paths(plan: SeedPlan, catalog: Catalog) -> Iterator[str]:
    """Every tile URL path of the plan, zoom by zoom (lazily)."""
    areas = _areas(plan, catalog)
    for tms_id in plan.tms_ids:
        tms = get_tms(tms_id)
        for z in plan.zooms:
            if not tms.minzoom <= z <= tms.maxzoom:
                continue
            for prefix, (w, s, e, n) in areas:
                for t in tms.tiles(w, s, e, n, [z], truncate=True):
                    yield f"{prefix}/{tms.id}/{t.z}/{t.y}/{t.x}"


class Progress:
    """A one-line text progress bar on a terminal; a line every few seconds otherwise."""

    def __init__(self, total: int, out: IO[str]) -> None:
        self.total, self.out = total, out
        self.counts: Counter[str] = Counter()
        self.started = self._last = time.monotonic()
        self.tty = out.isatty()

    def update(self, outcome: str) -> None:
        self.counts[outcome] += 1
        now = time.monotonic()
        if now - self._last >= (0.25 if self.tty else 5.0):
            self._last = now
            self._print()

    def done(self) -> None:
        self._print(final=True)

    def _print(self, final: bool = False) -> None:
        done = sum(self.counts[k] for k in ("rendered", "present", "failed"))
        pct = 100.0 * done / self.total if self.total else 100.0
        bar = "#" * int(pct / 5) + "." * (20 - int(pct / 5))
        rate = done / max(time.monotonic() - self.started, 1e-6)
        line = (f"[{bar}] {done}/{self.total} {pct:5.1f}% {rate:7.1f} tiles/s  rendered={self.counts['rendered']} "
                f"present={self.counts['present']} empty={self.counts['empty']} failed={self.counts['failed']}")
        end = "\n" if final or not self.tty else ""
        self.out.write(("\r" if self.tty else "") + line + end)
        self.out.flush()


async def _seed_one(client: httpx.AsyncClient, path: str, headers: dict, progress: Progress) -> None:
    try:
        response = await client.get(path, headers=headers)
    except httpx.HTTPError:
        progress.update("failed")
        return
    if response.status_code not in (200, 204):
        progress.update("failed")
        return
    if response.status_code == 204:
        progress.counts["empty"] += 1
    progress.update("present" if response.headers.get("x-cache", "").startswith("hit") else "rendered")


async def seed(settings: Settings, plan: SeedPlan, concurrency: int, api_key: str | None, out: IO[str]) -> Counter:
    """Seed the plan into Redis; the counts of rendered, present (already cached), empty and failed tiles."""
    from server.app import create_app

    if not settings.redis_url:
        raise SeedError("seeding fills the shared cache: set ONEMAP_REDIS_URL or pass --redis-url "
                        "(an in-process cache would vanish with this command)")
    settings = settings.model_copy(update={"cache_memory_bytes": 0, "cache_fast_path": False})
    app = create_app(settings)
    total = sum(1 for _ in tile_paths(plan, app.state.catalog))
    progress = Progress(total, out)
    paths = tile_paths(plan, app.state.catalog)
    headers = {"X-API-Key": api_key} if api_key else {}
    async with app.router.lifespan_context(app):
        shared = app.state.cache.shared
        if not await shared.ping():
            raise SeedError(f"Redis at {settings.redis_url} does not answer")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://seed") as client:

            async def worker() -> None:
                for path in paths:
                    if shared.errors:
                        raise SeedError("Redis failed to answer or store; run the same command again to resume")
                    await _seed_one(client, path, headers, progress)

            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(max(1, concurrency)):
                        group.create_task(worker())
            except ExceptionGroup as eg:
                progress.done()
                raise eg.exceptions[0] from None
    progress.done()
    return progress.counts


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``onemap seed`` command: parse the options, seed, print a summary; 0 when nothing failed."""
    try:
        if args.redis_url:
            settings = settings.model_copy(update={"redis_url": args.redis_url})
        plan = SeedPlan(
            collections=tuple(c.strip() for c in args.collections.split(",") if c.strip()),
            tms_ids=tuple(t.strip() for t in args.tms.split(",") if t.strip()),
            zooms=parse_zooms(args.zooms),
            bbox=parse_bbox(args.bbox),
        )
        for tms_id in plan.tms_ids:
            get_tms(tms_id)
        counts = asyncio.run(seed(settings, plan, args.concurrency, args.api_key, sys.stderr))
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # e.g. an unknown tile matrix set (NotFound), a store that cannot open
        print(f"error: {getattr(exc, 'description', None) or exc}", file=sys.stderr)
        return 2
    print(f"seeded: rendered {counts['rendered']}, already cached {counts['present']}, "
          f"empty {counts['empty']}, failed {counts['failed']}")
    return 1 if counts["failed"] else 0


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``seed`` subcommand and its options (the caller sets ``func``)."""
    s = sub.add_parser("seed", help="pre-render tiles into the shared cache (Redis)")
    s.add_argument("--collections", required=True, help=f"comma-separated collection ids, or {BASEMAP}")
    s.add_argument("--tms", default="WebMercatorQuad", help="comma-separated tile matrix set ids")
    s.add_argument("--zooms", required=True, help="a level or a range, e.g. 10-14")
    s.add_argument("--bbox", help="minx,miny,maxx,maxy in CRS84 (default: each collection's extent)")
    s.add_argument("--concurrency", type=int, default=4, help="tiles rendered at once (default 4)")
    s.add_argument("--redis-url", help="the shared cache (default ONEMAP_REDIS_URL)")
    s.add_argument("--api-key", help="seed for this caller's scope instead of anonymous callers")
    s.add_argument("--database-url")
    s.add_argument("--data-dir")
    return s
