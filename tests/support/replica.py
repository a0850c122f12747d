"""A streaming replica of a throwaway test cluster (``pg.start_cluster``): ``pg_basebackup -R`` on loopback."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.pg import PG_BIN, ClusterError, PgCluster, _free_port, _prepare_home, _run


def start_replica(primary: PgCluster, base_dir: Path | None = None) -> PgCluster:
    """Copy ``primary`` with ``pg_basebackup -R`` (streaming replication), start it on a free port, and wait
    until it accepts read-only connections. ``PgCluster.stop()`` removes it."""
    base_dir = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="onemap-replica-"))
    home, link = _prepare_home(base_dir)
    replica = PgCluster(home, port=_free_port(), link=link)
    try:
        _run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
              "-D", str(replica.data_dir), "-R", "-X", "stream", "--no-sync"], timeout=300)
        with open(replica.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\n# streaming replica\nport = {replica.port}\n"
                       f"unix_socket_directories = '{replica.socket_dir}'\nhot_standby = on\n")
        replica.resume()
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(replica.url, connect_timeout=2) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row and row[0]:
                        return replica
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError("the replica did not start")
            time.sleep(0.3)
    except BaseException:
        replica.stop()
        raise
