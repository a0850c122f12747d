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
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from harness import (
    UNCACHED,
    Server,
    Target,
    api_key,
    database,
    free_port,
    measure,
    report,
    start_onemap,
    start_peer,
)

PATHS = {  # the same query on each server
    "onemap": "/collections/parcels/items?limit=100&bbox={}",
    "tipg": "/collections/public.parcels/items?limit=100&bbox={}",
    "pygeoapi": "/collections/parcels/items?limit=100&f=json&bbox={}",
}
READY = {name: path.format("121.5,29.8,121.51,29.81") for name, path in PATHS.items()}

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
  identification: {{title: bench, description: bench, keywords: [bench], keywords_type: theme,
                   terms_of_service: x, url: x}}
  license: {{name: x, url: x}}
  provider: {{name: x, url: x}}
  contact: {{name: x, position: x, address: x, city: x, stateorprovince: x, postalcode: x, country: x, phone: x,
            email: x@x.x, url: x, role: pointOfContact}}
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


def start_pygeoapi(peers: Path, url: str, workers: int) -> Server:
    """pygeoapi over the CRS84 view, its config and OpenAPI document written to a temporary directory."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CRS84_VIEW)
    db = urlsplit(url)
    work = Path(tempfile.mkdtemp(prefix="pygeoapi-"))
    cfg, port = work / "config.yml", free_port()
    cfg.write_text(PYGEOAPI_CONFIG.format(port=port, pg_port=db.port, dbname=db.path.lstrip("/"), user=db.username))
    subprocess.run([str(peers / "bin" / "pygeoapi"), "openapi", "generate", str(cfg), "--output-file",
                    str(work / "openapi.yml")], check=True, capture_output=True)
    env = {"PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(work / "openapi.yml")}
    return start_peer("pygeoapi", peers, "pygeoapi.starlette_app:APP", workers, env, READY["pygeoapi"], port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", type=Path, default=Path("/tmp/peers"), help="virtualenv with tipg, pygeoapi, uvicorn")
    ap.add_argument("--database-url", help="an existing PostGIS (default: a throwaway cluster)")
    ap.add_argument("--scale", type=int, default=200_000)
    ap.add_argument("--skip-load", action="store_true", help="the database already holds the sample")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    url = database(args.database_url, args.scale, args.skip_load)
    headers = {"X-API-Key": api_key(url, name="bench-features")}
    starters = {
        "onemap": lambda: start_onemap("onemap", args.workers, {"ONEMAP_DATABASE_URL": url, **UNCACHED},
                                       ready=READY["onemap"], headers=headers),
        "tipg": lambda: start_peer("tipg", args.peers, "tipg.main:app", args.workers,
                                   {"DATABASE_URL": url, "TIPG_DB_SCHEMAS": '["public"]',
                                    "TIPG_MAX_FEATURES_PER_QUERY": "10000"}, ready=READY["tipg"]),
        "pygeoapi": lambda: start_pygeoapi(args.peers, url, args.workers),
    }
    boxes = bboxes(200)
    results = {}
    for name, start in starters.items():
        server = start()
        paths = [PATHS[name].format(b) for b in boxes]
        target = Target(server, paths, headers if name == "onemap" else None, url)
        results.update(measure({name: target}, args.clients, args.seconds, args.runs))
        print(f"{name}: {results[name].rps:.1f} req/s", flush=True)
        server.stop()
    report(results, baseline="onemap",
           title=f"/collections/parcels/items?limit=100&bbox=<~1 km box>, {args.scale:,} parcels, {args.clients} "
                 f"clients, {args.workers} workers each, median of {args.runs} x {args.seconds} s")


if __name__ == "__main__":
    main()
