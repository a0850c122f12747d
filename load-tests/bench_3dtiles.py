"""3D Tiles of the buildings: time to build the city's tileset, the size of its content, tile latency.

    python load-tests/bench_3dtiles.py [--data-dir DIR] [--scale 3000]

Steps, against ``onemap serve`` on loopback (response cache off: ``ONEMAP_CACHE_MEMORY_BYTES=0``, no
fast path; everything else as shipped, API-key check and audit included):

1. the first ``tileset.json`` (reads every building the caller may see, samples the DEM under each,
   builds the tree: the build time), then a second one (tree kept by the process, JSON rebuilt);
2. every content tile once: count, buildings, bytes as sent and gzip-compressed;
3. wrk with ``--clients`` clients over all content tiles (uncached: each request reads its cell and
   writes its GLB) for ``--rounds`` runs of ``--seconds`` s: median req/s and p50/p99 latency.

No peer serves 3D Tiles of these buildings from a database, so there is no side-by-side here.
Without ``--data-dir`` the sample (vector store at ``--scale``, full-size rasters) is written to a
temporary directory first.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

from harness import UNCACHED, Target, api_key, get, measure, report, start_onemap

BASE = "/collections/buildings/3dtiles"


def prepare_data(data_dir: Path | None, scale: int) -> Path:
    """The data directory: the given one, or a new one with the sample store and rasters."""
    if data_dir is not None:
        return data_dir
    from server.raster.sample import write_sample_rasters
    from server.sample import build_sample
    from server.stores import GPKG_NAME
    from server.stores.geopackage import GeoPackageStore

    target = Path(tempfile.mkdtemp(prefix="onemap-bench-3d-"))
    print(f"writing sample data to {target} ...", flush=True)
    write_sample_rasters(target)
    build_sample(scale, GeoPackageStore(target / GPKG_NAME))
    return target


def leaves(tile: dict) -> list[str]:
    """The content URIs of a tileset's tree."""
    own = [tile["content"]["uri"]] if "content" in tile else []
    return own + [u for child in tile.get("children", []) for u in leaves(child)]


def timed_get(url: str, headers: dict) -> tuple[float, bytes]:
    """Seconds and body of one GET that must answer 200."""
    start = time.perf_counter()
    status, _, body = get(url, headers, timeout=600)
    if status != 200:
        raise SystemExit(f"{url} answered {status}: {body[:300]!r}")
    return time.perf_counter() - start, body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--scale", type=int, default=3000, help="sample size when writing a new data dir")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    data_dir = prepare_data(args.data_dir, args.scale)
    headers = {"X-API-Key": api_key(data_dir=data_dir, name="bench-3dtiles")}
    server = start_onemap("onemap-3d", args.workers, {"ONEMAP_DATA_DIR": str(data_dir), **UNCACHED},
                          ready="/collections/buildings", headers=headers)
    build_s, body = timed_get(f"{server.base}{BASE}/tileset.json", headers)
    again_s, _ = timed_get(f"{server.base}{BASE}/tileset.json", headers)
    uris = leaves(json.loads(body)["root"])
    sizes, zipped, slowest = [], [], 0.0
    for uri in uris:
        seconds, glb = timed_get(f"{server.base}{BASE}/{uri}", headers)
        sizes.append(len(glb))
        zipped.append(len(gzip.compress(glb, 6)))
        slowest = max(slowest, seconds)
    print(f"\ntileset: first build {build_s:.2f} s, again (tree kept) {again_s * 1000:.0f} ms; "
          f"{len(uris)} content tiles, {sum(sizes) / 2**20:.1f} MiB GLB ({sum(zipped) / 2**20:.1f} MiB gzip), "
          f"largest tile {max(sizes) / 1024:.0f} KiB, slowest first fetch {slowest * 1000:.0f} ms")
    paths = [f"{BASE}/{u}" for u in uris]
    results = measure({"OneMap 3D Tiles content": Target(server, paths, headers)}, args.clients, args.seconds,
                      args.rounds, warmup=2)
    report(results, title=f"GLB content tiles, {len(paths)} distinct, uncached, {args.clients} clients, "
                          f"{args.workers} worker(s), median of {args.rounds} x {args.seconds:.0f} s")
    server.stop()


if __name__ == "__main__":
    main()
