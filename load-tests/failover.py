"""Failover under load: two ``onemap serve`` replicas sharing one PostGIS and one Redis behind nginx.

Phases, each under the same client load (``--clients`` threads over items pages and tiles):
1. steady state; 2. one replica killed (kill -9, workers included) and restarted after ``--down`` s;
3. Redis stopped and started again after ``--down`` s; 4. (on the throwaway PostGIS) its streaming read
replica, which serves the reads (``ONEMAP_DATABASE_READ_URLS``), stopped and started again after
``--down`` s. Prints the answers per second (ok / errors) and, per fault, the errors seen by clients and
the recovery time (from the fault until the last error, and until the throughput is back to half the
steady rate). Loopback only, bounded (about 5 x --phase s).

    python load-tests/failover.py                          # a throwaway PostGIS with 5,000 parcels
    python load-tests/failover.py --database-url URL --skip-load   # no read replica phase
"""

from __future__ import annotations

import argparse
import atexit
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, api_key, database

sys.path.insert(0, str(REPO))

from tests.support.failover import PATHS_DEFAULT, Load, Nginx, Replica  # noqa: E402
from tests.support.pg import PgCluster, start_cluster  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.replica import start_replica  # noqa: E402


def _report(name: str, load: Load, fault_at: float, steady: float) -> None:
    fault = int(fault_at)
    errors = sum(n for s, n in load.errors.items() if s >= fault)
    last_error = max((s for s, n in load.errors.items() if s >= fault and n), default=None)
    back = next((s for s in sorted(load.ok) if s > fault and load.ok[s] >= steady / 2), None)
    last = "-" if last_error is None else last_error - fault
    print(f"{name} at second {fault}: {errors} client errors; last error {last} s after the fault; "
          f"throughput back to half the steady rate after {'-' if back is None else back - fault} s")


def _series(load: Load) -> None:
    last = max([*load.ok, *load.errors], default=0)
    print("second  ok  errors")
    for s in range(last + 1):
        print(f"{s:>6} {load.ok.get(s, 0):>4} {load.errors.get(s, 0):>6}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database-url")
    p.add_argument("--scale", type=int, default=5000)
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--phase", type=float, default=10, help="seconds per phase")
    p.add_argument("--down", type=float, default=3, help="seconds a faulted component stays down")
    args = p.parse_args()
    primary = None if args.database_url else start_cluster()
    if primary is not None:
        atexit.register(primary.stop)
    url = database(args.database_url or (primary.url if primary else None), args.scale, args.skip_load)
    read = start_replica(primary) if primary else None
    if read is not None:
        atexit.register(read.stop)
    work = Path(tempfile.mkdtemp(prefix="onemap-failover-"))
    redis = RedisServer(work)
    redis.start()
    env = {"ONEMAP_DATABASE_URL": url, "ONEMAP_REDIS_URL": redis.url, "ONEMAP_CACHE_SECRET": "failover",
           "ONEMAP_DATA_DIR": str(work / "data"), **({"ONEMAP_DATABASE_READ_URLS": read.url} if read else {})}
    replicas = [Replica(env, work, workers=2), Replica(env, work, workers=2)]
    for r in replicas:
        r.start()
    nginx = Nginx(work / "nginx", [r.port for r in replicas])
    load = Load(nginx.url, PATHS_DEFAULT, api_key(database_url=url, name="failover"), clients=args.clients)
    try:
        time.sleep(args.phase)
        steady = statistics.median(load.ok.get(s, 0) for s in range(int(args.phase) // 2, int(args.phase)))
        kill_at = time.monotonic() - load.started
        replicas[0].kill()
        time.sleep(args.down)
        replicas[0].start()
        time.sleep(args.phase)
        redis_at = time.monotonic() - load.started
        redis.stop()
        time.sleep(args.down)
        redis.start()
        time.sleep(args.phase)
        read_at = _read_replica_down(read, load, args.down, args.phase)
    finally:
        load.stop()
        nginx.stop()
        for r in replicas:
            r.stop()
        redis.stop()
    _series(load)
    print(f"steady state (median of the second half of the first phase): {steady:.0f} answers/s with "
          f"{args.clients} clients; statuses {dict(load.statuses)}")
    _report("replica killed", load, kill_at, steady)
    _report("redis restarted", load, redis_at, steady)
    if read_at is not None:
        _report("read replica stopped", load, read_at, steady)


def _read_replica_down(read: PgCluster | None, load: Load, down: float, phase: float) -> float | None:
    """Stop the streaming read replica for ``down`` s and start it again; the second of the fault."""
    if read is None:
        return None
    at = time.monotonic() - load.started
    read.halt()
    time.sleep(down)
    read.resume()
    time.sleep(phase)
    return at


if __name__ == "__main__":
    main()
