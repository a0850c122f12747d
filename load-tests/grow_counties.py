"""More parcels at the same density: copies of the sample county's parcels as neighbouring counties.

The sample generator numbers parcels per cadastral subzone with the unit code's five-digit sequence, so
one county holds a bounded number of parcels (a few million fail: a subzone would pass 99,999). A
province holds many counties: this script copies the parcels of a database loaded with ``onemap sample``
``--copies`` times, each copy shifted east by ``--step`` degrees with the next county code (in the unit
code and the parcel code), rebuilds the GiST indexes and the parcels' tile overviews, and moves the
data version. The table grows ``copies + 1`` times while a box or a tile over the first county holds
what it held: what the benchmarks then see is the cost of the table's size, not of denser data.

    python -m server.cli sample --scale 1000000 --no-rasters --database-url postgresql://localhost/onemap_5m
    python load-tests/grow_counties.py --database-url postgresql://localhost/onemap_5m --copies 4
"""

from __future__ import annotations

import argparse
import time

import psycopg
from harness import REPO  # noqa: F401  (puts the repository on sys.path)
from psycopg import sql

from server.catalog import Catalog
from server.sample import sample_collections
from server.settings import Settings
from server.stores.postgis import PostGISStore

GROW = """
INSERT INTO parcels (unit_code, parcel_code, ownership, parcel_type, right_type, land_use, land_use_name,
                     area_m2, registration_date, owner_name, owner_id_number, town_code, geom)
SELECT (left(unit_code, 6)::int + k)::text || substr(unit_code, 7),
       (left(parcel_code, 6)::int + k)::text || substr(parcel_code, 7),
       ownership, parcel_type, right_type, land_use, land_use_name, area_m2, registration_date, owner_name,
       owner_id_number, town_code, ST_Translate(geom, %(step)s * k, 0)
FROM parcels, generate_series(1, %(copies)s) AS k
"""


def grow(url: str, copies: int, step: float) -> int:
    """Add the copies (indexes dropped during the insert, then rebuilt); the parcel count after."""
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'parcels' "
                               "AND indexdef LIKE '%USING gist%'").fetchall()
        with conn.transaction():
            for name, _ in indexes:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            conn.execute(GROW, {"copies": copies, "step": step})  # the version trigger moves the data version
            for _, definition in indexes:
                conn.execute(definition)
        conn.execute("VACUUM ANALYZE parcels")
        return int(conn.execute("SELECT count(*) FROM parcels").fetchone()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", required=True, help="a PostGIS loaded with onemap sample")
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--step", type=float, default=0.3, help="degrees east between counties (the county is 0.28 wide)")
    args = ap.parse_args()
    started = time.perf_counter()
    count = grow(args.database_url, args.copies, args.step)
    print(f"{count:,} parcels; rebuilding the parcels' tile overviews ...", flush=True)
    parcels = [c for c in sample_collections() if c.id == "parcels"]
    PostGISStore(Settings(database_url=args.database_url)).prepare(Catalog(parcels))
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
