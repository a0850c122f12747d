"""PostgreSQL connections: where reads go (``read_conninfo``) and one connection of a component's own
(admin tables, jobs) on the primary, reconnected when lost.

Writes (admin, keys, audit, jobs, versioning DDL) always use ``ONEMAP_DATABASE_URL``, the primary. Reads
(features, tiles, lookups, data versions) use ``read_conninfo``: with read replicas, one libpq connection
string naming every replica and then the primary, with ``target_session_attrs=prefer-standby`` and
``load_balance_hosts=random``: each new connection goes to a random replica that answers, and to the
primary only when none does (libpq checks each host as it connects).

``OwnConnection``: small, serialized statements that must not wait behind the read pool: keys, audit
batches, job rows. A statement that meets a lost connection is retried once on a fresh one; a second
failure raises.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SHARED_PARTS = ("dbname", "user", "password")  # one connection string carries one of each


def read_conninfo(primary: str, replicas: Sequence[str]) -> str:
    """Where reads connect: ``primary`` alone, or the replicas first then the primary (see the module docstring).

    Raises ``ValueError`` naming the setting when a replica URL names another database, user or password
    than the primary (libpq takes those once for all hosts) or more than one host."""
    if not replicas:
        return primary
    infos = [conninfo_to_dict(url) for url in (*replicas, primary)]
    base = dict(infos[-1])
    for info in infos[:-1]:
        if "," in str(info.get("host", "")) or any(info.get(k) != base.get(k) for k in SHARED_PARTS):
            raise ValueError("ONEMAP_DATABASE_READ_URLS: each replica URL names one host and the same database, "
                             "user and password as ONEMAP_DATABASE_URL")
    base["host"] = ",".join(str(i.get("host") or "localhost") for i in infos)
    base["port"] = ",".join(str(i.get("port") or 5432) for i in infos)
    base.pop("hostaddr", None)
    return make_conninfo("", **base, target_session_attrs="prefer-standby", load_balance_hosts="random")


class OwnConnection:
    """An autocommit connection to ``url`` named ``application_name``, shared by threads one at a time."""

    def __init__(self, url: str, application_name: str) -> None:
        self.url = url
        self.application_name = application_name
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def run(self, sql: str, params: Any = None, fetch: bool = False) -> list[tuple]:
        """Execute ``sql``; the rows with ``fetch``, else []."""
        with self._lock:
            for attempt in range(2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                                     application_name=self.application_name)
                    with self._conn.cursor() as cur:
                        cur.execute(sql, params)
                        return cur.fetchall() if fetch else []
                except psycopg.OperationalError:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt:
                        raise
        return []

    def close(self) -> None:
        """Close the connection (the next statement opens a new one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
