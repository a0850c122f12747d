"""One PostgreSQL connection of a component's own (admin tables, jobs), reconnected when lost.

Small, serialized statements that must not wait behind the read pool: keys, audit batches, job rows.
A statement that meets a lost connection is retried once on a fresh one; a second failure raises.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg


class OwnConnection:
    """An autocommit connection to ``url`` named ``application_name``, shared by threads one at a time."""

    def __init__(self, url: str, application_name: str) -> None:
        self.url = url
        self.application_name = application_name
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def run(self, sql: str, params: Any = None, many: bool = False, fetch: bool = False) -> list[tuple]:
        """Execute ``sql`` (``executemany`` in one transaction with ``many``); the rows with ``fetch``, else []."""
        with self._lock:
            for attempt in range(2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                                     application_name=self.application_name)
                    with self._conn.cursor() as cur:
                        if many:  # one transaction: one commit for the batch, and all of it or none
                            with self._conn.transaction():
                                cur.executemany(sql, params)
                        else:
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
