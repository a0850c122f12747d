"""Unit-code profile and site-compliance benchmark on PostGIS (wrk, 8 clients by default).

Loads the sample county with ``--scale`` parcels into a throwaway PostGIS (or uses ``--database-url``,
loaded unless ``--skip-load``), starts ``onemap serve`` on it with the response cache off, and drives:

* ``GET /codes/{unit_code}`` over up to 400 unit codes of the county town (target: p99 under 100 ms);
* ``POST /processes/site-compliance/execution`` with 1 ha sites (100 m squares; target p50 under
  150 ms) and 1 km² sites (1 km squares; target p50 under 1.5 s), 20 places each, in the CGCS2000
  GK zone of the county (EPSG:4550, northing/easting order).

Medians of ``--runs`` runs of ``--seconds`` s each after a warm-up. Loopback only, bounded in time.

    python load-tests/bench_codes.py --scale 1000000               # the issue's scale (long load)
    python load-tests/bench_codes.py --scale 100000 --runs 3
    python load-tests/bench_codes.py --database-url URL --skip-load  # a PostGIS already loaded
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from harness import (
    UNCACHED,
    Result,
    Target,
    _parse_wrk,
    api_key,
    database,
    get,
    measure,
    median_of,
    report,
    start_onemap,
)
from pyproj import Transformer

TOWN = "121.50,29.82,121.58,29.88"  # the county town, where parcels are dense
EXECUTE = "/processes/site-compliance/execution"
GK = "http://www.opengis.net/def/crs/EPSG/0/4550"
TARGETS = {"profile": ("p99", 100.0), "compliance 1 ha": ("p50", 150.0), "compliance 1 km²": ("p50", 1500.0)}
_POST_LUA = """
local bodies = {}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%HEADERS%
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  i = math.random(#bodies)
end
request = function()
  i = (i % #bodies) + 1
  return wrk.format("POST", "%PATH%", nil, bodies[i])
end
"""


def squares(side_m: float, count: int) -> list[str]:
    """Execute requests for ``count`` squares of ``side_m`` metres spread over the county town."""
    to_gk = Transformer.from_crs(4490, 4550, always_xy=True)
    bodies = []
    for i in range(count):
        lon = 121.50 + 0.07 * ((i * 7) % count) / count
        lat = 29.82 + 0.05 * ((i * 3) % count) / count
        x, y = to_gk.transform(lon, lat)
        ring = [[y, x], [y, x + side_m], [y + side_m, x + side_m], [y + side_m, x], [y, x]]
        inputs = {"geometry": {"type": "Polygon", "coordinates": [ring]}, "crs": GK, "planned_use": "07"}
        bodies.append(json.dumps({"inputs": inputs}))
    return bodies


def wrk_post(base: str, bodies: list[str], clients: int, seconds: float, headers: dict) -> Result:
    """One wrk run POSTing ``bodies`` (cycled) to the execution endpoint."""
    work = Path(tempfile.mkdtemp(prefix="wrk-post-"))
    (work / "bodies.txt").write_text("\n".join(bodies) + "\n")
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    (work / "post.lua").write_text(_POST_LUA.replace("%HEADERS%", lines).replace("%PATH%", EXECUTE))
    secs = max(1, round(seconds))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{secs}s", "--timeout", "30s", "--latency", "-s", str(work / "post.lua"),
         base, "--", str(work / "bodies.txt")],
        capture_output=True, text=True, timeout=secs + 60, check=False,
    ).stdout
    return _parse_wrk(out)


def unit_codes(base: str, headers: dict, limit: int = 400) -> list[str]:
    """Unit codes of parcels in the county town, read through the Features API."""
    status, _, body = get(f"{base}/collections/parcels/items?bbox={TOWN}&limit={limit}&properties=unit_code",
                          headers)
    if status != 200:
        raise SystemExit(f"could not list parcels: {status} {body[:200]!r}")
    return [f["id"] for f in json.loads(body)["features"]]


def parcels_in(url: str) -> int:
    """How many parcels the database holds (the title of a run on a database loaded before)."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM parcels").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000, help="parcels in the sample (1,000,000 in the issue)")
    ap.add_argument("--database-url", help="a PostGIS to use instead of a throwaway cluster")
    ap.add_argument("--skip-load", action="store_true", help="the database already holds the sample")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    url = database(args.database_url, args.scale, args.skip_load)
    key = api_key(database_url=url)
    headers = {"X-API-Key": key}
    env = {"ONEMAP_DATABASE_URL": url, "ONEMAP_POOL_MAX_SIZE": "4", **UNCACHED}
    server = start_onemap("onemap", args.workers, env, headers=headers)
    try:
        codes = unit_codes(server.base, headers)
        rows = measure({"profile": Target(server, [f"/codes/{c}" for c in codes], headers, url)},
                       args.clients, args.seconds, args.runs)
        for name, side in (("compliance 1 ha", 100.0), ("compliance 1 km²", 1000.0)):
            bodies = squares(side, 20)
            wrk_post(server.base, bodies, args.clients, 3, headers)  # warm-up
            rows[name] = median_of([wrk_post(server.base, bodies, args.clients, args.seconds, headers)
                                    for _ in range(args.runs)])
    finally:
        server.stop()
    scale = parcels_in(url) if args.skip_load else args.scale
    report(rows, title=f"{scale:,} parcels in PostGIS, {args.clients} clients, {args.workers} workers, "
                       f"median of {args.runs} x {args.seconds:g} s")
    for name, (stat, limit) in TARGETS.items():
        value = rows[name].p99_ms if stat == "p99" else rows[name].p50_ms
        print(f"  {name}: {stat} {value:.1f} ms (target under {limit:g} ms): {'met' if value < limit else 'MISSED'}")


if __name__ == "__main__":
    main()
