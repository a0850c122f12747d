"""Memory soak: worker RSS of ``onemap serve`` at default settings under 64 clients, as a series.

Distinct base-map tiles, parcel tiles and item pages over the county (``tests/support/soak.py``), so
the in-process cache fills and must evict: with the cache budgeted per machine
(``ONEMAP_CACHE_MEMORY_BYTES`` shared by ``--workers``), each worker's RSS levels off. Prints the RSS
of every worker every ``--every`` seconds, then the growth over the last half and the answers by status.

    python load-tests/soak_memory.py --data-dir data                  # 10 minutes, 2 workers, 64 clients
    python load-tests/soak_memory.py --data-dir data --seconds 120    # a shorter run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness import REPO, api_key, start_onemap, stop_process

sys.path.insert(0, str(REPO))

from tests.support.soak import soak  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="a data directory written by onemap sample")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--every", type=float, default=10)
    args = p.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    key = api_key(data_dir=Path(data_dir), name="soak")
    server = start_onemap("onemap-soak", args.workers, {"ONEMAP_DATA_DIR": data_dir})
    try:
        started = time.monotonic()
        series, statuses = soak(server.base, key, server.proc.pid, args.seconds, args.clients, args.every)
        print(f"{'t (s)':>8}  " + "  ".join(f"worker {i + 1} RSS MiB" for i in range(len(series[0][1]))))
        for t, rss in series:
            print(f"{t:>8.0f}  " + "  ".join(f"{v:>17.1f}" for v in rss))
        half = series[len(series) // 2:]
        growth = [round(half[-1][1][w] - half[0][1][w], 1) for w in range(len(half[0][1]))]
        print(f"growth over the last half (MiB per worker): {growth}")
        print(f"answers by status: {dict(sorted(statuses.items()))} in {time.monotonic() - started:.0f} s")
    finally:
        stop_process(server.proc)


if __name__ == "__main__":
    main()
