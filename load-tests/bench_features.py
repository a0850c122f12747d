"""Features benchmark: /collections/parcels/items?limit=100&bbox=... over PostGIS, against tipg and pygeoapi.

Loads the sample at the given scale into a throwaway PostGIS, then serves the same table with OneMap,
tipg and pygeoapi (each with the same number of workers) and drives each with wrk at 16 clients over the
same list of bboxes. Peers come from a separate virtualenv outside the repo:

    python -m venv /tmp/peers && /tmp/peers/bin/pip install tipg pygeoapi uvicorn psycopg2-binary
    python load-tests/bench_features.py --peers /tmp/peers --scale 200000
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import free_port, median_of, report, start_server, stop_server, wrk  # noqa: E402

PYGEOAPI_CONFIG = """
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  language: en-US
  limits: {{default_items: 10, max_items: 10000}}
  map: {{url: "http://127.0.0.1/none", attribution: x}}
logging: {{level: ERROR}}
metadata:
  identification: {{title: bench, description: bench, keywords: [bench], keywords_type: theme, terms_of_service: x, url: x}}
  license: {{name: x, url: x}}
  provider: {{name: x, url: x}}
  contact: {{name: x, position: x, address: x, city: x, stateorprovince: x, postalcode: x, country: x, phone: x, email: x@x.x, url: x, role: pointOfContact}}
resources:
  parcels:
    type: collection
    title: parcels
    description: parcels
    keywords: [parcels]
    extents:
      spatial: {{bbox: [121.4, 29.75, 121.7, 29.95], crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84}}
    providers:
      - type: feature
        name: PostgreSQL
        data: {{host: 127.0.0.1, port: {pg_port}, dbname: {dbname}, user: {user}, search_path: [public]}}
        id_field: unit_code
        table: parcels_crs84
        geom_field: geom
"""

# pygeoapi's PostgreSQL provider transforms the bbox into EPSG:4490 in that CRS's lat/lon axis order and
# finds nothing; it is given the same rows as CRS84 through a view, with an index on that expression.
CRS84_VIEW = """
CREATE INDEX IF NOT EXISTS parcels_geom_crs84 ON parcels USING gist (ST_SetSRID(geom, 4326));
CREATE OR REPLACE VIEW parcels_crs84 AS
  SELECT unit_code, parcel_code, ownership, parcel_type, right_type, land_use, land_use_name, area_m2,
         registration_date, owner_name, owner_id_number, town_code, ST_SetSRID(geom, 4326) AS geom
  FROM parcels;
ANALYZE parcels;
"""


def bboxes(n: int, seed: int = 7) -> list[str]:
    """Deterministic ~1 km bboxes over the built-up part of the sample county."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        x, y = rnd.uniform(121.45, 121.64), rnd.uniform(29.78, 29.91)
        out.append(f"{x:.4f},{y:.4f},{x + 0.01:.4f},{y + 0.008:.4f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", default="/tmp/peers", help="virtualenv with tipg, pygeoapi, uvicorn")
    ap.add_argument("--database-url", help="an existing PostGIS (default: a throwaway cluster)")
    ap.add_argument("--scale", type=int, default=200_000)
    ap.add_argument("--skip-load", action="store_true", help="the database already holds the sample")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    url = args.database_url
    if not url:
        from tests.support.pg import start_cluster

        cluster = start_cluster()
        url = cluster.url
    if not args.skip_load:
        from server.sample import build_sample

        print(f"loading {args.scale:,} parcels ...", flush=True)
        build_sample(args.scale, Path(tempfile.mkdtemp()), url)

    from server.settings import Settings
    from tests.support.api_keys import issue_key

    key = issue_key(Settings(database_url=url, data_dir=Path(tempfile.mkdtemp())), "bench-features")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CRS84_VIEW)
    db = urlsplit(url)
    peers = Path(args.peers) / "bin"
    boxes = bboxes(200)
    servers = {
        "onemap": (
            [sys.executable, "-m", "server.cli", "serve", "--workers", str(args.workers), "--no-access-log",
             "--log-level", "warning", "--port", "{port}"],
            {"ONEMAP_DATABASE_URL": url, "ONEMAP_CACHE_MEMORY_BYTES": "0", "ONEMAP_CACHE_FAST_PATH": "false"},
            "/collections/parcels/items?limit=100&bbox={}",
        ),
        "tipg": (
            [str(peers / "uvicorn"), "tipg.main:app", "--workers", str(args.workers), "--no-access-log",
             "--log-level", "warning", "--port", "{port}"],
            {"DATABASE_URL": url, "TIPG_DB_SCHEMAS": '["public"]', "TIPG_MAX_FEATURES_PER_QUERY": "10000"},
            "/collections/public.parcels/items?limit=100&bbox={}",
        ),
        "pygeoapi": (
            [str(peers / "uvicorn"), "pygeoapi.starlette_app:APP", "--workers", str(args.workers),
             "--no-access-log", "--log-level", "warning", "--port", "{port}"],
            {},
            "/collections/parcels/items?limit=100&f=json&bbox={}",
        ),
    }
    results = {}
    for name, (cmd, env, path) in servers.items():
        port = free_port()
        if name == "pygeoapi":
            work = Path(tempfile.mkdtemp(prefix="pygeoapi-"))
            cfg = work / "config.yml"
            cfg.write_text(PYGEOAPI_CONFIG.format(port=port, pg_port=db.port, dbname=db.path.lstrip("/"),
                                                  user=db.username))
            subprocess.run([str(peers / "pygeoapi"), "openapi", "generate", str(cfg), "--output-file",
                            str(work / "openapi.yml")], check=True, capture_output=True)
            env = {"PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(work / "openapi.yml")}
        headers = {"X-API-Key": key} if name == "onemap" else {}
        proc = start_server(name, [c.replace("{port}", str(port)) for c in cmd], port, env,
                            ready=path.format(boxes[0]), headers=headers)
        base = f"http://127.0.0.1:{port}"
        paths = [path.format(b) for b in boxes]
        wrk(base, paths, args.clients, 3, headers=headers)  # warm-up: connections, database caches
        runs = [wrk(base, paths, args.clients, args.seconds, headers=headers) for _ in range(args.runs)]
        results[name] = median_of(runs)
        print(f"{name}: {results[name].rps:.1f} req/s", flush=True)
        stop_server(proc)
    print(f"\n/collections/parcels/items?limit=100&bbox=<~1 km box>, {args.scale:,} parcels, "
          f"{args.clients} clients, {args.workers} workers each, median of {args.runs} x {args.seconds} s")
    report(results, baseline="onemap")


if __name__ == "__main__":
    main()
